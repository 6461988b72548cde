"""The recipe of an existing run, built from its config snapshot (config/run_config.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.recipes.base import Recipe


def recipe_from_snapshot(data: dict[str, Any], file: Path, run_root: Path) -> Recipe:
    """Build the recipe a config snapshot names; ConfigError naming `file` if it cannot be."""
    from benchsmith.config import parse_config
    from benchsmith.recipes import get_recipe

    data = dict(data)
    cfg_dir = data.pop("config_dir", str(run_root))
    if isinstance(data.get("openai"), dict):
        # No recipe reads the key variable; the snapshot's may be unset here.
        data["openai"] = {**data["openai"], "api_key_env": None}
    try:
        cfg = parse_config(data, file=str(file), config_dir=str(cfg_dir))
        return get_recipe(cfg)
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
