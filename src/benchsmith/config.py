"""The YAML run config, validated by pydantic. The only module that reads environment variables.

Unknown keys are rejected so a typo fails with the file, the field path and what is allowed.
Secrets are never part of the config: `openai.api_key_env` names an environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator

from benchsmith.dotenv import read_dotenv
from benchsmith.config_sections import (  # noqa: F401 - re-exported
    REASONING_MODEL_PREFIXES,
    DEFAULT_LOCAL_MODEL,
    _Strict,
    FieldMap,
    SOURCES,
    DatasetConfig,
    ModelConfig,
    OpenAIConfig,
    LocalConfig,
    EngineConfig,
    BatchConfig,
    Price,
    BudgetConfig,
    LeakConfig,
    OutputsConfig,
)
from benchsmith.errors import ConfigError
from benchsmith.recipes.registry import (
    DEFAULT_RECIPE,
    RecipeSpec,
    UnknownRecipe,
    get_spec,
    legacy_keys,
)
from benchsmith.store.names import DATASET_RULE, is_dataset_name
from benchsmith.userfiles import read_user_text

# Parameters that reasoning models (o-series, gpt-5 family) reject.

class RunConfig(_Strict):
    """The whole run config."""

    run_dir: str = Field("runs", description="Parent folder of run directories.")
    recipe: str = Field(
        DEFAULT_RECIPE,
        description="What to generate: a registered recipe (`benchsmith recipes` lists them).",
    )
    recipe_options: dict[str, Any] = Field(
        default_factory=dict,
        description="The recipe's own options (see \"Recipe options\"); unknown keys are refused.",
    )
    provider: Literal["openai", "local"] = Field(
        "openai", description="`openai` (any compatible endpoint) or `local` (llama-cpp-python)."
    )
    datasets: dict[str, DatasetConfig] = Field(
        default_factory=lambda: {"humaneval": DatasetConfig()},
        description="Datasets by name.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    multi_model: bool = Field(
        False, description="Use model1/model2/model3 for call 1/2/3 (cycled beyond 3)."
    )
    model1: ModelConfig | None = Field(None, description="Model of call 1 with multi_model.")
    model2: ModelConfig | None = Field(None, description="Model of call 2 with multi_model.")
    model3: ModelConfig | None = Field(None, description="Model of call 3 with multi_model.")
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    leaks: LeakConfig = Field(default_factory=LeakConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    prices: dict[str, Price] = Field(
        default_factory=dict, description="Price table by model name (USD per 1M tokens)."
    )
    config_dir: str = Field(".", description="Set by the loader; relative paths resolve here.")
    # Notes for the user about the file (old section names); the CLI prints them.
    _deprecations: tuple[str, ...] = PrivateAttr(default=())
    # The section of the file that held the recipe's options (errors name it as written).
    _options_key: str = PrivateAttr(default="recipe_options")

    @model_validator(mode="after")
    def _llama_cpp_is_chat(self) -> RunConfig:
        if self.openai.structured_output == "llama_cpp" and self.openai.api != "chat":
            raise ValueError(
                "openai.structured_output: llama_cpp needs openai.api: chat "
                "(llama-cpp-python serves no /v1/responses)"
            )
        return self

    @model_validator(mode="after")
    def _multi_model_needs_models(self) -> RunConfig:
        if self.multi_model and self.model1 is None:
            raise ValueError("multi_model: true needs model1 (and model2/model3 for calls 2/3)")
        return self

    @field_validator("datasets")
    @classmethod
    def _datasets_valid(cls, v: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        if not v:
            raise ValueError("at least one dataset is required")
        for name, ds in v.items():
            if not is_dataset_name(name):
                raise ValueError(f"dataset name {name!r} {DATASET_RULE}")
            src = ds.source_for(name)
            if src not in ("humaneval", "generated") and not ds.path and not ds.hf_name:
                raise ValueError(f"dataset {name!r} (source {src}) needs `path` or `hf_name`")
        return v

    @field_validator("model1", "model2", "model3", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @property
    def deprecations(self) -> tuple[str, ...]:
        return self._deprecations

    @property
    def options_key(self) -> str:
        return self._options_key

    def recipe_spec(self) -> RecipeSpec:
        return get_spec(self.recipe)

    def options(self) -> Any:
        """The recipe's validated options."""
        return self.recipe_spec().options(self.recipe_options)

    def models_by_call(self) -> list[ModelConfig]:
        """The model of each call of a task (index = call index); with multi_model, for
        recipes whose calls may each take their own model."""
        spec = self.recipe_spec()
        if spec.model_calls is None:
            return [self.model]
        n = spec.model_calls(self.options())
        if not self.multi_model:
            return [self.model] * n
        chosen = [m for m in (self.model1, self.model2, self.model3) if m is not None]
        return [chosen[i % len(chosen)] for i in range(n)]

    def all_models(self) -> list[ModelConfig]:
        seen: dict[str, ModelConfig] = {}
        for m in self.models_by_call():
            seen.setdefault(m.name, m)
        return list(seen.values())

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else Path(self.config_dir) / p))

    def price_for(self, model: str) -> Price | None:
        return self.prices.get(model)

    def public_dict(self) -> dict[str, Any]:
        """The resolved config as JSON-able data; holds env var names, never secret values."""
        return self.model_dump(mode="json")


# Fields whose value an error message never repeats (a key pasted by mistake).
# api_key_env may be a pasted key; base_url messages quote the URL themselves, unless it
# holds credentials.
_NEVER_ECHOED = {"openai.api_key_env", "openai.base_url"}


def _echoable(field: str, value: Any) -> bool:
    if field in _NEVER_ECHOED:
        return False
    return not (isinstance(value, str) and value.lower().startswith(("sk-", "sk_")))


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(cur, type) and issubclass(cur, BaseModel) and part in cur.model_fields:
            ann = cur.model_fields[part].annotation
            args = getattr(ann, "__args__", ())
            cands = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
            cur = cands[0] if cands else None
        elif cur is not None and isinstance(part, str):
            continue  # dict key (dataset name)
        else:
            return []
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return sorted(k for k in cur.model_fields if k != "config_dir")
    return []


def _raise_validation(e: ValidationError, file: str, root: type[BaseModel], prefix: str = "") -> None:
    """The first problem of a pydantic error as a one-line ConfigError naming the field."""
    err = e.errors()[0]
    loc = tuple(err["loc"])
    field = ".".join(p for p in (prefix, _format_loc(loc) if loc else "") if p) or "<root>"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, loc)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        raise ConfigError(file, field, f"unknown key{hint}") from None
    msg = err["msg"]
    if "ctx" in err and "expected" in err["ctx"]:
        msg = f"must be {err['ctx']['expected']}"
    more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    value = err.get("input")
    got = f"; got {value!r}" if loc and value is not None and _echoable(field, value) else ""
    msg = msg.removeprefix("Value error, ")
    raise ConfigError(file, field, f"{msg}{got}{more}") from None


def _recipe_options(
    data: dict[str, Any], legacy: dict[str, Any], spec: RecipeSpec, file: str
) -> tuple[Any, list[str]]:
    """The recipe's validated options from `recipe_options:` or the old section names."""
    notes: list[str] = []
    own = [k for k in spec.aliases if k in legacy]
    for k, v in legacy.items():
        if not isinstance(v, dict):
            raise ConfigError(file, k, "must be a mapping of settings")
    raw = data.get("recipe_options")
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(file, "recipe_options", "must be a mapping of the recipe's settings")
    if raw and own:
        raise ConfigError(
            file, own[0], "is the old name of recipe_options; set only recipe_options"
        )
    options = dict(raw) if raw else spec.legacy_options(legacy)
    # A section is in use when the options read from the old sections change without it.
    used = [] if raw else [
        k for k in legacy
        if spec.legacy_options({j: v for j, v in legacy.items() if j != k}) != options
    ]
    unused = [k for k in legacy if k not in used]
    if used:
        keys = ", ".join(f"`{k}:`" for k in used)
        notes.append(f"{file}: {keys} deprecated; move these settings under `recipe_options:`")
    if unused:
        keys = ", ".join(f"`{k}:`" for k in unused)
        notes.append(f"{file}: {keys} not used by recipe {spec.name}; remove it")
    prefix = own[0] if (own and not raw) else "recipe_options"
    try:
        return spec.options(options), notes
    except ValidationError as e:
        _raise_validation(e, file, spec.Options, prefix)
        raise  # unreachable: _raise_validation always raises


def _same_options(a: str, b: str) -> bool:
    try:
        return get_spec(a).Options is get_spec(b).Options
    except UnknownRecipe:
        return False


def parse_config(
    data: Any, file: str = "<config>", config_dir: str = ".", recipe: str | None = None
) -> RunConfig:
    """Validate a config mapping; `recipe` (a recipe verb of the CLI) overrides the file's."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", "top level must be a mapping of settings")
    data = {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in data.items()}
    if "config_dir" in data:
        raise ConfigError(file, "config_dir", "is set by benchsmith; remove it")
    notes: list[str] = []
    if recipe is not None:
        named = data.get("recipe")
        if isinstance(named, str) and named != recipe and "recipe_options" in data \
                and not _same_options(named, recipe):
            # the file's options are another recipe's; the command's recipe gets its defaults
            del data["recipe_options"]
            notes.append(f"{file}: recipe_options are recipe {named}'s; not used by {recipe}")
        data["recipe"] = recipe
    legacy = {k: data.pop(k) for k in legacy_keys() if k in data}
    try:
        cfg = RunConfig.model_validate({**data, "config_dir": config_dir})
    except ValidationError as e:
        _raise_validation(e, file, RunConfig)
        raise
    try:
        spec = get_spec(cfg.recipe)
    except UnknownRecipe as e:
        raise ConfigError(file, "recipe", str(e)) from None
    options, more = _recipe_options(data, legacy, spec, file)
    cfg = cfg.model_copy(update={"recipe_options": options.model_dump(mode="json")})
    cfg._deprecations = (*notes, *more)
    own = [k for k in spec.aliases if k in legacy]
    cfg._options_key = own[0] if own and not data.get("recipe_options") else "recipe_options"
    return cfg


def with_recipe(cfg: RunConfig, recipe: str | None = None, /, **overrides: Any) -> RunConfig:
    """The config with another recipe and/or some options changed (command-line flags),
    validated like the file's options (an override of None sets the option to null)."""
    name = recipe or cfg.recipe
    try:
        spec = get_spec(name)
    except UnknownRecipe as e:
        raise ConfigError("command line", "--recipe", str(e)) from None
    base = cfg.recipe_options if name == cfg.recipe else {}
    data = {**base, **overrides}
    try:
        options = spec.options(data)
    except ValidationError as e:
        _raise_validation(e, "command line", spec.Options, "recipe_options")
        raise
    new = cfg.model_copy(update={"recipe": name, "recipe_options": options.model_dump(mode="json")})
    new._deprecations = cfg.deprecations
    return new


def load_config(path: str | Path, recipe: str | None = None) -> RunConfig:
    """Read and validate a YAML run config (`recipe` overrides the file's)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), "", "config file not found; create one with `benchsmith init-config`")
    text = read_user_text(p, "")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "yaml"
        raise ConfigError(str(p), where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    return parse_config(data, file=str(p), config_dir=str(p.resolve().parent), recipe=recipe)


def env_var(name: str) -> str:
    """An environment variable, else the same name in `.env` of the working directory (the
    real environment always wins); "" when neither sets it."""
    if name in os.environ:
        return os.environ[name]
    return read_dotenv(Path.cwd() / ".env").get(name, "")


def api_keys(cfg: RunConfig) -> list[str]:
    """Read the API key(s) from the environment; comma-separated values are round-robined."""
    if cfg.provider == "local" or not cfg.openai.api_key_env:
        return ["local"] if cfg.provider == "local" else []
    raw = env_var(cfg.openai.api_key_env)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys and raw.strip():
        raise ConfigError(
            "environment", cfg.openai.api_key_env,
            f"holds no key, only commas and blanks; export {cfg.openai.api_key_env}=<key> "
            "(several: <key1>,<key2>)",
        )
    if not keys:
        raise ConfigError(
            "environment",
            cfg.openai.api_key_env,
            f"is not set; export {cfg.openai.api_key_env}=<key> or put it in ./.env "
            "(or set openai.api_key_env: null for endpoints without auth)",
        )
    return keys


# The variables the original edit-prediction tool reads: several keys (comma-separated, used
# round-robin) or one, and the endpoint.
ENV_KEY_NAMES = ("OPENAI_KEYS", "OPENAI_KEY")
ENV_BASE_URL = "BASE_URL"


def with_env_endpoint(cfg: RunConfig) -> RunConfig:
    """The config with `openai.api_key_env` / `openai.base_url` taken from the environment
    when the config does not set them: the key variable is OPENAI_KEYS, else OPENAI_KEY (the
    first that is set; its NAME is kept, never the key), the URL is BASE_URL. The config
    wins over both."""
    oa = cfg.openai
    given = oa.model_fields_set
    update: dict[str, Any] = {}
    if "api_key_env" not in given:
        # the first variable holding a key; else the first set at all (only commas or
        # blanks), so that the error names it
        held = [n for n in ENV_KEY_NAMES if any(k.strip() for k in env_var(n).split(","))]
        blank = [n for n in ENV_KEY_NAMES if env_var(n).strip()]
        if held or blank:
            update["api_key_env"] = (held or blank)[0]
    url = env_var(ENV_BASE_URL).strip()
    if "base_url" not in given and url:
        from benchsmith.config_sections import url_problem

        problem = url_problem(url)
        if problem:
            raise ConfigError("environment", ENV_BASE_URL, problem)
        update["base_url"] = url
    if not update:
        return cfg
    new = cfg.model_copy(update={"openai": oa.model_copy(update=update)})
    new._deprecations = cfg.deprecations
    new._options_key = cfg.options_key
    return new
