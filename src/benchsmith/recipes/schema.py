"""A small JSON Schema checker for the strict-mode subset, plus strict-mode rule checks.

Hand-written because it runs on every answer in the hot path and the subset is small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_ok(value: Any, t: str) -> bool:
    if t in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(t, (object,)))


def validate_instance(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Issues of `value` against `schema` (types, enum, required, closed objects, array sizes)."""
    issues: list[str] = []
    if "anyOf" in schema:
        if not any(not validate_instance(value, s, path) for s in schema["anyOf"]):
            issues.append(f"{path}: matches none of the allowed shapes")
        return issues
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_type_ok(value, x) for x in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        issues.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                issues.append(f"{path}: missing required field {key!r}")
        if schema.get("additionalProperties") is False:
            for key in value:
                if key not in props:
                    issues.append(f"{path}: unexpected field {key!r}")
        for key, sub in props.items():
            if key in value:
                issues.extend(validate_instance(value[key], sub, f"{path}.{key}"))
    elif isinstance(value, list):
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        if lo is not None and len(value) < lo:
            issues.append(f"{path}: {len(value)} items; at least {lo} required")
        if hi is not None and len(value) > hi:
            issues.append(f"{path}: {len(value)} items; at most {hi} allowed")
        items = schema.get("items")
        if items:
            for i, v in enumerate(value):
                issues.extend(validate_instance(v, items, f"{path}[{i}]"))
    return issues


Validator = Callable[[Any, str], list[str]]


def compile_validator(schema: dict[str, Any]) -> Callable[[Any], list[str]]:
    """A function with the same result as `validate_instance(value, schema)`, several times
    faster: the schema is walked once, here, instead of on every answer."""
    check = _compile(schema)
    return lambda value: check(value, "$")


def _compile(schema: dict[str, Any]) -> Validator:
    if "anyOf" in schema:
        branches = [_compile(s) for s in schema["anyOf"]]

        def any_of(value: Any, path: str) -> list[str]:
            if any(not b(value, path) for b in branches):
                return []
            return [f"{path}: matches none of the allowed shapes"]

        return any_of
    t = schema.get("type")
    types = (t if isinstance(t, list) else [t]) if t is not None else None
    enum = schema.get("enum")
    props = {k: _compile(v) for k, v in schema.get("properties", {}).items()}
    required = list(schema.get("required", []))
    closed = schema.get("additionalProperties") is False
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    items = _compile(schema["items"]) if schema.get("items") else None
    simple_str = types == ["string"] and enum is None

    def check(value: Any, path: str) -> list[str]:
        if simple_str:
            return [] if isinstance(value, str) else [
                f"{path}: expected string, got {type(value).__name__}"
            ]
        if types is not None and not any(_type_ok(value, x) for x in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
        issues: list[str] = []
        if enum is not None and value not in enum:
            issues.append(f"{path}: {value!r} is not one of {enum}")
        if isinstance(value, dict):
            for key in required:
                if key not in value:
                    issues.append(f"{path}: missing required field {key!r}")
            if closed:
                for key in value:
                    if key not in props:
                        issues.append(f"{path}: unexpected field {key!r}")
            for key, sub in props.items():
                if key in value:
                    issues.extend(sub(value[key], f"{path}.{key}"))
        elif isinstance(value, list):
            if lo is not None and len(value) < lo:
                issues.append(f"{path}: {len(value)} items; at least {lo} required")
            if hi is not None and len(value) > hi:
                issues.append(f"{path}: {len(value)} items; at most {hi} allowed")
            if items is not None:
                for i, v in enumerate(value):
                    issues.extend(items(v, f"{path}[{i}]"))
        return issues

    return check


_UNSUPPORTED = ("allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas")


def strict_mode_problems(schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where `schema` breaks OpenAI strict structured-output rules."""
    problems: list[str] = []
    if path == "$" and (schema.get("type") != "object" or "anyOf" in schema):
        problems.append("$: root must be type object and not anyOf")
    for kw in _UNSUPPORTED:
        if kw in schema:
            problems.append(f"{path}: keyword {kw!r} is not supported in strict mode")
    if "default" in schema:
        problems.append(f"{path}: 'default' is not supported in strict mode")
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: objects need additionalProperties: false")
        props = schema.get("properties", {})
        missing = set(props) - set(schema.get("required", []))
        if missing:
            problems.append(f"{path}: every property must be required; missing {sorted(missing)}")
        for k, sub in props.items():
            problems.extend(strict_mode_problems(sub, f"{path}.{k}"))
    if "array" in types and "items" in schema:
        problems.extend(strict_mode_problems(schema["items"], f"{path}[]"))
    for i, sub in enumerate(schema.get("anyOf", [])):
        problems.extend(strict_mode_problems(sub, f"{path}.anyOf[{i}]"))
    for name, sub in schema.get("$defs", {}).items():
        problems.extend(strict_mode_problems(sub, f"$defs.{name}"))
    return problems
