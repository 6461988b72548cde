"""The model table of prediction runs: per model, temperature, top_p, n (choices per
request), context limit (tokens) and prices (USD per 1M tokens).

`models.yaml` ships with the package; a user's table (same shape: model name -> fields)
overrides or adds entries field by field. `default` fills what an entry leaves out and stands
for a model the table does not name.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchsmith.errors import ConfigError

DEFAULT = "default"


class _Fields(BaseModel):
    """One entry as written: every field optional (a user's entry may set one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    context_limit: int | None = Field(None, ge=1)
    input_price: float | None = Field(None, ge=0)
    output_price: float | None = Field(None, ge=0)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    temperature: float
    top_p: float | None
    n: int
    context_limit: int | None
    input_price: float | None
    output_price: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "n": self.n,
                "context_limit": self.context_limit, "input_price": self.input_price,
                "output_price": self.output_price}


def _entries(data: Any, file: str) -> dict[str, dict[str, Any]]:
    """Validated entries of a table (only the fields each sets)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", "must map model names to their settings "
                          "(e.g. `gpt-4.1: {temperature: 0, context_limit: 128000}`)")
    out = {}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise ConfigError(file, str(name), "must be a mapping of settings "
                              f"({', '.join(_Fields.model_fields)})")
        try:
            entry = _Fields.model_validate(fields)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            msg = ("unknown field; allowed: " + ", ".join(_Fields.model_fields)
                   if err["type"] == "extra_forbidden" else err["msg"])
            raise ConfigError(file, f"{name}.{field}", msg) from None
        out[str(name)] = {k: getattr(entry, k) for k in entry.model_fields_set}
    return out


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "--model-table", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "--model-table", f"cannot read: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "yaml"
        raise ConfigError(str(path), where, f"not valid YAML: {getattr(e, 'problem', e)}") from None


def load_table(user: Path | None = None) -> dict[str, dict[str, Any]]:
    """The shipped table with the user's entries laid over it, field by field."""
    text = resources.files("benchsmith.recipes.edit_predict").joinpath("models.yaml")
    table = _entries(yaml.safe_load(text.read_text("utf-8")), "models.yaml")
    if user is not None:
        for name, fields in _entries(_read(user), str(user)).items():
            table[name] = {**table.get(name, {}), **fields}
    return table


def entry_for(table: dict[str, dict[str, Any]], name: str) -> ModelEntry:
    """The settings of model `name`: its entry over `default`."""
    base = {"temperature": 0.0, "top_p": None, "n": 1, "context_limit": None,
            "input_price": None, "output_price": None}
    fields = {**base, **table.get(DEFAULT, {}), **table.get(name, {})}
    return ModelEntry(name=name, **fields)
