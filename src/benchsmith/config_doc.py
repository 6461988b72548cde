"""Generate the README's config reference from the pydantic models' field descriptions."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from benchsmith.config import RunConfig


def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(ann))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(ann))
    if origin is dict:
        k, v = typing.get_args(ann)
        return f"map of {_type_name(k)} → {_type_name(v)}"
    if origin is list:
        return f"list of {_type_name(typing.get_args(ann)[0])}"
    if ann is type(None):
        return "null"
    return getattr(ann, "__name__", str(ann))


def _default(field: Any) -> str:
    if field.default_factory is not None:
        val = field.default_factory()
        if isinstance(val, BaseModel):
            return "(section)"
        return f"`{json.dumps(val, default=lambda o: o.model_dump() if isinstance(o, BaseModel) else str(o))}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{json.dumps(field.default)}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, f in model.model_fields.items():
        if name == "config_dir":
            continue
        ann = f.annotation
        sub = [a for a in (ann, *typing.get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)]
        dict_sub = None
        if typing.get_origin(ann) is dict:
            v = typing.get_args(ann)[1]
            if isinstance(v, type) and issubclass(v, BaseModel):
                dict_sub = v
        path = f"{prefix}{name}"
        desc = (f.description or (sub[0].__doc__ or "").strip().splitlines()[0] if sub else f.description or "")
        rows.append(f"| `{path}` | {_type_name(ann)} | {_default(f)} | {desc} |")
        if sub and typing.get_origin(ann) is None:
            rows.extend(_rows(sub[0], path + "."))
        elif dict_sub is not None:
            rows.extend(_rows(dict_sub, path + ".<name>."))
        elif sub:
            rows.extend(_rows(sub[0], path + "."))
    return rows


HEAD = "| key | type | default | meaning |\n|---|---|---|---|"


def recipe_options_markdown() -> str:
    """One table of `recipe_options` per options model of the registered recipes."""
    from benchsmith.recipes.registry import get_spec, names

    groups: dict[type[BaseModel], list[Any]] = {}
    for name in names():
        spec = get_spec(name)
        groups.setdefault(spec.Options, []).append(spec)
    out = []
    for options, specs in groups.items():
        which = ", ".join(f"`recipe: {s.name}`" for s in specs)
        old = sorted({a for s in specs for a in s.aliases})
        alias = f" (formerly the `{'`/`'.join(old)}:` section)" if old else ""
        doc = (options.__doc__ or specs[0].summary).strip().splitlines()[0]
        out.append(f"**{which}**{alias}: {doc}\n")
        out.append(HEAD + "\n" + "\n".join(_rows(options, "recipe_options.")) + "\n")
    return "\n".join(out)


def config_reference_markdown() -> str:
    return (HEAD + "\n" + "\n".join(_rows(RunConfig, "")) + "\n\nRecipe options, by recipe:\n\n"
            + recipe_options_markdown())


if __name__ == "__main__":
    print(config_reference_markdown(), end="")
