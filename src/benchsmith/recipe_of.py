"""Which recipe a config or an existing run uses, built with its RecipeContext.

Recipes never see the run config: this module turns a config (or a run's snapshot,
config/run_config.json) into the recipe's options and context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from benchsmith.config import RunConfig, load_config
from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.leaks.guard import guard_for, guard_recipe
from benchsmith.recipes.base import Recipe
from benchsmith.recipes.context import ModelSlot, PromptCache, RecipeContext
from benchsmith.recipes.registry import RecipeBuildError, get_recipe

# Where recipes may keep what they build once (repository structures, ...).
CACHE_DIR = Path("~/.cache/benchsmith")


def context_for(cfg: RunConfig, echo: Any = None) -> RecipeContext:
    """The run as its recipe sees it: models per call, paths, prompt caching."""
    slots = []
    for m in cfg.models_by_call():
        params, _dropped = m.request_params()
        window = m.max_context_tokens
        if cfg.provider == "local":
            # the local server counts the prompt only against n_ctx (it shortens the output),
            # while a recipe measures prompt + output reserve against the window
            window = (window or cfg.local.n_ctx) + m.max_output_tokens
        slots.append(ModelSlot(m.name, params, window))
    oa = cfg.openai
    cache = None
    if oa.prompt_cache_enabled and cfg.provider != "local":
        cache = PromptCache(oa.prompt_cache_key_prefix, oa.prompt_cache_retention or None)
    ctx = RecipeContext(Path(cfg.config_dir), tuple(slots), CACHE_DIR.expanduser(), cache)
    return ctx if echo is None else RecipeContext(
        ctx.config_dir, ctx.models, ctx.cache_dir, ctx.prompt_cache, echo
    )


def recipe_for(cfg: RunConfig, echo: Any = None) -> Recipe:
    """The recipe a config names, built from its options, its requests checked by the
    config's gold-leak guard (leaks/guard.py)."""
    return guard_recipe(get_recipe(cfg.recipe, cfg.options(), context_for(cfg, echo)),
                        guard_for(cfg))


def check_recipe(cfg: RunConfig, file: str = "<config>") -> None:
    """Build the recipe once, so that what only building finds (a bad prompt template) is
    refused with the config, before a run folder is made; errors name the section the file
    used (an old section name, or recipe_options)."""
    try:
        recipe_for(cfg)
    except RecipeBuildError as e:
        raise ConfigError(file, "recipe", str(e)) from None
    except ConfigError as e:
        key = cfg.options_key
        if key != "recipe_options" and e.field.startswith("recipe_options."):
            raise ConfigError(e.file, key + e.field.removeprefix("recipe_options"),
                              e.problem) from None
        raise


def load_checked(path: str | Path, recipe: str | None = None) -> RunConfig:
    """`config.load_config`, then `check_recipe`: what commands load a run config with."""
    cfg = load_config(path, recipe=recipe)
    check_recipe(cfg, str(path))
    return cfg


def recipe_from_snapshot(data: dict[str, Any], file: Path, run_root: Path) -> Recipe:
    """Build the recipe a config snapshot names; ConfigError naming `file` if it cannot be."""
    from benchsmith.config import parse_config

    data = dict(data)
    cfg_dir = data.pop("config_dir", str(run_root))
    if isinstance(data.get("openai"), dict):
        # No recipe reads the key variable; the snapshot's may be unset here.
        data["openai"] = {**data["openai"], "api_key_env": None}
    try:
        cfg = parse_config(data, file=str(file), config_dir=str(cfg_dir))
        return recipe_for(cfg)
    except (BenchsmithError, OSError, ValueError) as e:
        raise ConfigError(str(file), "", f"the run's recipe cannot be built ({e})") from None


def recipe_of_run(run_root: Path, config_file: Path | None = None) -> Recipe:
    """The recipe of the run at `run_root` (from `config_file`, default its snapshot)."""
    file = config_file or run_root / "config" / "run_config.json"
    try:
        data = orjson.loads(file.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise ConfigError(str(file), "", f"cannot read the run's config snapshot ({why})") from None
    if not isinstance(data, dict):
        raise ConfigError(str(file), "", "the run's config snapshot is not an object")
    return recipe_from_snapshot(data, file, run_root)
