"""The YAML run config, validated by pydantic. The only module that reads environment variables.

Unknown keys are rejected so a typo fails with the file, the field path and what is allowed.
Secrets are never part of the config: `openai.api_key_env` names an environment variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchsmith.errors import ConfigError

# Parameters that reasoning models (o-series, gpt-5 family) reject.
REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")
DEFAULT_LOCAL_MODEL = "../shared/data/models/stories260K/stories260K.gguf"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """How a generic JSONL row maps onto a Task."""

    id: str = Field("task_id", description="Row key holding the task id.")
    primary: str = Field("prompt", description="Row key shown under [PRIMARY_TASK].")
    context: list[str] = Field(
        default_factory=list, description="Row keys shown under [CONTEXT_FIELDS]."
    )
    gold: list[str] = Field(
        default_factory=list,
        description="Answer keys: kept in the task's extras, never put in a prompt.",
    )


SOURCES = ("humaneval", "swebench_verified", "swebench_lite", "swebench", "refactorbench_py", "jsonl")


class DatasetConfig(_Strict):
    """One dataset to load tasks from."""

    source: (
        Literal["humaneval", "swebench_verified", "swebench_lite", "swebench", "refactorbench_py", "jsonl"]
        | None
    ) = Field(
        None,
        description="Loader; default: the dataset's name when it is a known source "
        "(humaneval, swebench_verified, swebench_lite, swebench, refactorbench_py), else jsonl.",
    )
    path: str | None = Field(
        None,
        description="Local file: .jsonl, .jsonl.gz or .parquet (humaneval: optional override).",
    )
    hf_name: str | None = Field(
        None, description="Hugging Face dataset name, used when `path` is not set (needs network)."
    )
    split: str = Field("test", description="Split of the Hugging Face dataset.")
    fields: FieldMap | None = Field(None, description="Field mapping for the `jsonl` source.")
    max_tasks: int | None = Field(
        None, ge=1, description="Keep the first N tasks after sorting by task id."
    )
    task_ids_file: str | None = Field(
        None, description="JSON list or one-id-per-line file: only these task ids are used."
    )

    def source_for(self, name: str) -> str:
        if self.source:
            return self.source
        return name if name in SOURCES else "jsonl"


class PlansConfig(_Strict):
    """The plans recipe."""

    calls_per_task: int = Field(3, ge=1, le=100, description="Model calls per task.")
    plans_per_call: int = Field(4, ge=1, le=20, description="Plans asked for in each call.")
    max_validation_retries: int = Field(
        2, ge=0, le=10, description="Re-asks, with the validation error fed back, per call."
    )
    min_steps: int = Field(2, ge=1, description="Fewest steps a valid plan may have.")
    prompt_template: str | None = Field(
        None, description="Path to a prompt template file; default is the built-in one."
    )
    diversity: bool = Field(
        True,
        description="Calls of a task run in order; each is shown the plans already accepted "
        "and asked for different approaches.",
    )
    similarity_threshold: float = Field(
        0.85,
        gt=0,
        le=1,
        description="A plan at least this similar (rapidfuzz token-sort ratio of normalized "
        "text, 0..1) to an accepted plan is rejected as `duplicate_of:<plan id>`.",
    )


class RolloutConfig(_Strict):
    """Agentless-style SWE-bench rollouts (recipes agentless_bugfix / agentless_testgen)."""

    structure_dir: str | None = Field(
        None, description="Folder of Agentless repo-structure files `<instance_id>.json`."
    )
    repos_dir: str | None = Field(
        None,
        description="Folder of local clones (`<owner>__<name>` or `<name>`); structures are "
        "built from them at base_commit without touching the checkout, and cached.",
    )
    cache_dir: str | None = Field(
        None, description="Built-structure cache; default ~/.cache/benchsmith/repo_structure."
    )
    passk: int = Field(1, ge=1, le=100, description="Samples per instance.")
    max_context_tokens: int = Field(
        20_000, ge=500, description="Budget for file contents in the repair prompt (~4 chars a "
        "token); files beyond it are dropped and recorded.",
    )
    max_files: int = Field(5, ge=1, le=50, description="Most files stage 1 may choose.")
    convert_crlf: bool = Field(False, description="Normalize problem-statement line endings.")
    start: int | None = Field(None, ge=0, description="First index in the sorted instance ids.")
    end: int | None = Field(None, ge=0, description="End index (exclusive) in the sorted ids.")
    model_name_or_path: str | None = Field(
        None, description="Name written to preds.jsonl; default: the model name."
    )
    enable_thinking: bool | None = Field(
        None, description="Sent as chat_template_kwargs.enable_thinking (vLLM/SGLang)."
    )
    thinking_budget: int | None = Field(None, ge=1, description="Sent as thinking_budget.")


class ModelConfig(_Strict):
    """The model and its sampling parameters."""

    name: str = Field("gpt-5-mini", description="Model name sent to the endpoint.")
    temperature: float | None = Field(None, ge=0, le=2, description="Dropped for reasoning models.")
    top_p: float | None = Field(None, gt=0, le=1, description="Dropped for reasoning models.")
    seed: int | None = Field(None, description="Dropped for reasoning models.")
    reasoning_effort: (
        Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None
    ) = Field(None, description="Sent as `reasoning.effort` / `reasoning_effort`.")
    max_output_tokens: int = Field(
        4000, ge=1, description="Output cap per request; also the budget's worst case."
    )
    reasoning: bool | None = Field(
        None,
        description="Treat as a reasoning model (drops temperature/top_p/seed). "
        "Default: guessed from the name (o1/o3/o4/gpt-5...).",
    )

    def request_params(self) -> tuple[dict[str, Any], list[str]]:
        """Neutral request params, and the names dropped because reasoning models reject them."""
        params: dict[str, Any] = {"max_output_tokens": self.max_output_tokens}
        dropped = []
        for key in ("temperature", "top_p", "seed", "reasoning_effort"):
            val = getattr(self, key)
            if val is None:
                continue
            if key != "reasoning_effort" and self.is_reasoning():
                dropped.append(key)
                continue
            params[key] = val
        return params, dropped

    def is_reasoning(self) -> bool:
        if self.reasoning is not None:
            return self.reasoning
        return self.name.lower().startswith(REASONING_MODEL_PREFIXES)


class OpenAIConfig(_Strict):
    """An OpenAI-compatible endpoint."""

    base_url: str = Field("https://api.openai.com/v1", description="Endpoint base URL.")
    api: Literal["responses", "chat"] = Field(
        "responses", description="`responses` (POST /v1/responses) or `chat` (/v1/chat/completions)."
    )
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the key; comma-separated keys are used "
        "round-robin. The key itself is never written anywhere.",
    )
    structured_output: Literal["openai", "llama_cpp"] = Field(
        "openai",
        description="How the JSON schema is requested: OpenAI strict json_schema, or "
        "llama-cpp-python's `json_object` + `schema`.",
    )
    use_batch_api: bool = Field(
        False, description="Run through the Batch API (half price, up to 24 h) instead of online."
    )
    prompt_cache_enabled: bool = Field(
        False, description="Send `prompt_cache_key` (and retention) with every request."
    )
    prompt_cache_key_prefix: str = Field(
        "benchsmith", description="Prefix of the stable per-task, per-template cache key."
    )
    prompt_cache_retention: Literal["24h", "in_memory"] | None = Field(
        None, description="`prompt_cache_retention` to send when caching is enabled."
    )


class LocalConfig(_Strict):
    """The `local` provider: benchsmith starts llama-cpp-python's server itself."""

    model_path: str = Field(
        DEFAULT_LOCAL_MODEL, description="GGUF model file (relative paths: to the config file)."
    )
    n_ctx: int = Field(2048, ge=128, description="Context window of the local server.")
    max_string_chars: int = Field(
        200, ge=1, description="llama-cpp schema adapter: longest string the grammar allows."
    )
    max_array_items: int = Field(
        8, ge=1, description="llama-cpp schema adapter: most items an array may have."
    )


class EngineConfig(_Strict):
    """Concurrency, rate limits and retries."""

    concurrency: int = Field(64, ge=1, le=5000, description="Requests in flight at once.")
    rpm: int | None = Field(None, ge=1, description="Client-side requests-per-minute limit.")
    tpm: int | None = Field(None, ge=1, description="Client-side tokens-per-minute limit.")
    max_retries: int = Field(
        6, ge=0, le=50, description="Retries on 429/5xx/timeouts/connection errors."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    backoff_base_s: float = Field(0.5, gt=0, description="First backoff delay.")
    backoff_max_s: float = Field(60.0, gt=0, description="Longest backoff delay.")


class BatchConfig(_Strict):
    """The Batch API executor (`openai.use_batch_api: true` or `run --mode batch`)."""

    price_multiplier: float = Field(
        0.5, gt=0, le=1, description="Batch price as a fraction of the online price."
    )
    max_requests_per_file: int = Field(
        50_000, ge=1, le=50_000, description="Requests per batch input file (API limit 50,000)."
    )
    max_bytes_per_file: int = Field(
        200_000_000, ge=1_000, le=200_000_000, description="Bytes per input file (API limit 200 MB)."
    )
    poll_interval_s: float = Field(5.0, gt=0, description="First delay between status polls.")
    max_poll_interval_s: float = Field(60.0, gt=0, description="Longest delay between polls.")


class Price(_Strict):
    """USD per 1M tokens."""

    input: float = Field(..., ge=0, description="USD per 1M input tokens.")
    cached_input: float | None = Field(
        None, ge=0, description="USD per 1M cached input tokens; default: the input price."
    )
    output: float = Field(..., ge=0, description="USD per 1M output tokens (reasoning included).")


class BudgetConfig(_Strict):
    """Spend limit."""

    max_usd: float | None = Field(
        None, ge=0, description="Hard cap: no request is sent that could push spend past it."
    )


class RunConfig(_Strict):
    """The whole run config."""

    run_dir: str = Field("runs", description="Parent folder of run directories.")
    recipe: Literal["plans", "agentless_bugfix", "agentless_testgen"] = Field(
        "plans", description="What to generate (`rollout bugfix|testgen` set the agentless ones)."
    )
    provider: Literal["openai", "local"] = Field(
        "openai", description="`openai` (any compatible endpoint) or `local` (llama-cpp-python)."
    )
    datasets: dict[str, DatasetConfig] = Field(
        default_factory=lambda: {"humaneval": DatasetConfig()},
        description="Datasets by name.",
    )
    plans: PlansConfig = Field(default_factory=PlansConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
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
    prices: dict[str, Price] = Field(
        default_factory=dict, description="Price table by model name (USD per 1M tokens)."
    )
    config_dir: str = Field(".", description="Set by the loader; relative paths resolve here.")

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
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise ValueError(f"dataset name {name!r} must be letters, digits, - or _")
            src = ds.source_for(name)
            if src != "humaneval" and not ds.path and not ds.hf_name:
                raise ValueError(f"dataset {name!r} (source {src}) needs `path` or `hf_name`")
        return v

    @field_validator("model1", "model2", "model3", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    def models_by_call(self) -> list[ModelConfig]:
        """The model of each call of a task (index = call index)."""
        n = self.plans.calls_per_task
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


def parse_config(data: Any, file: str = "<config>", config_dir: str = ".") -> RunConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", "top level must be a mapping of settings")
    data = {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in data.items()}
    if "config_dir" in data:
        raise ConfigError(file, "config_dir", "is set by benchsmith; remove it")
    try:
        return RunConfig.model_validate({**data, "config_dir": config_dir})
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        field = _format_loc(loc)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(RunConfig, loc)
            hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
            raise ConfigError(file, field, f"unknown key{hint}") from None
        msg = err["msg"]
        if "ctx" in err and "expected" in err["ctx"]:
            msg = f"must be {err['ctx']['expected']}"
        more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        got = f"; got {err.get('input')!r}" if loc else ""
        msg = msg.removeprefix("Value error, ")
        raise ConfigError(file, field, f"{msg}{got}{more}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), "", "config file not found; create one with `benchsmith init-config`")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "yaml"
        raise ConfigError(str(p), where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    return parse_config(data, file=str(p), config_dir=str(p.resolve().parent))


def api_keys(cfg: RunConfig) -> list[str]:
    """Read the API key(s) from the environment; comma-separated values are round-robined."""
    if cfg.provider == "local" or not cfg.openai.api_key_env:
        return ["local"] if cfg.provider == "local" else []
    raw = os.environ.get(cfg.openai.api_key_env, "")
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ConfigError(
            "environment",
            cfg.openai.api_key_env,
            f"is not set; export {cfg.openai.api_key_env}=<key> "
            "(or set openai.api_key_env: null for endpoints without auth)",
        )
    return keys
