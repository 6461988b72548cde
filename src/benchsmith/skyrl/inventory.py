"""The tool inventory: MCP servers and their tools, read from a YAML or JSON file.

    servers:
      - name: filesystem            # letters, digits, _ and - (it becomes an enum value)
        description: Local files
        tools:
          - name: read_file         # letters, digits, _ . and -; unique on its server
            description: Read a text file
            parameters:             # a JSON Schema object (Draft 2020-12)
              type: object
              properties: {path: {type: string}}
              required: [path]

A tool is named `server.tool` where one name must cover both (success.must_call_tool):
server names have no dot, so the first dot splits it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchsmith.errors import ConfigError

SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Strict structured output's size limits (OpenAI's Structured Outputs guide): at most 1000
# enum values in one schema, and a string enum of more than 250 values may hold at most
# 15,000 characters; property names and enum values together at most 120,000 characters.
MAX_ENUM_VALUES = 1000
BIG_ENUM = 250
MAX_BIG_ENUM_CHARS = 15_000
MAX_SCHEMA_CHARS = 120_000


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Server:
    name: str
    description: str
    tools: tuple[Tool, ...]


@dataclass(frozen=True)
class Inventory:
    servers: tuple[Server, ...]

    def server(self, name: str) -> Server | None:
        return next((s for s in self.servers if s.name == name), None)

    def tool(self, server: str, tool: str) -> Tool | None:
        s = self.server(server)
        return next((t for t in s.tools if t.name == tool), None) if s else None

    def server_names(self) -> list[str]:
        return [s.name for s in self.servers]

    def tool_names(self) -> list[str]:
        """Every tool name once, in inventory order (a name may be on several servers)."""
        return list(dict.fromkeys(t.name for s in self.servers for t in s.tools))

    def qualified_names(self) -> list[str]:
        """`server.tool` for every tool of every server."""
        return [f"{s.name}.{t.name}" for s in self.servers for t in s.tools]

    def servers_of(self, tool: str) -> list[str]:
        return [s.name for s in self.servers if any(t.name == tool for t in s.tools)]


def split_qualified(name: str) -> tuple[str, str]:
    """`server.tool` -> (server, tool); the tool part may itself hold dots."""
    server, _, tool = name.partition(".")
    return server, tool


def example_inventory_path() -> Path:
    return Path(__file__).with_name("example_inventory.yaml")


def load_inventory(path: Path) -> Inventory:
    """Read and check an inventory file; every mistake is a ConfigError naming the field."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(where, "", f"cannot read the inventory: {e}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(where, "", f"not valid YAML{at}: {e.problem or e.context}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(where, "", f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                          f"{first}") from None
    if data is None:
        raise ConfigError(where, "", "the file is empty; list the servers: servers: [{name, "
                          "description, tools: [{name, description, parameters}]}]")
    return inventory_from_data(data, where)


def inventory_from_data(data: Any, where: str) -> Inventory:
    _keys(data, where, "", {"servers"}, set())
    servers_data = data["servers"]
    if not isinstance(servers_data, list) or not servers_data:
        raise ConfigError(where, "servers", "must be a non-empty list of {name, description, tools}")
    servers: list[Server] = []
    for i, sd in enumerate(servers_data):
        field = f"servers[{i}]"
        _keys(sd, where, field, {"name", "tools"}, {"description"})
        name = _name(sd["name"], SERVER_NAME, where, f"{field}.name",
                     "letters, digits, _ and - (no dot), at most 64 characters")
        if any(s.name == name for s in servers):
            raise ConfigError(where, f"{field}.name", f"server {name!r} is listed twice")
        tools_data = sd["tools"]
        if not isinstance(tools_data, list) or not tools_data:
            raise ConfigError(where, f"{field}.tools", "must be a non-empty list of "
                              "{name, description, parameters}")
        tools: list[Tool] = []
        for j, td in enumerate(tools_data):
            tf = f"{field}.tools[{j}]"
            _keys(td, where, tf, {"name", "parameters"}, {"description"})
            tname = _name(td["name"], TOOL_NAME, where, f"{tf}.name",
                          "letters, digits, _ . and -, at most 64 characters")
            if any(t.name == tname for t in tools):
                raise ConfigError(where, f"{tf}.name", f"tool {tname!r} is listed twice on "
                                  f"server {name!r}")
            _check_parameters(td["parameters"], where, f"{tf}.parameters")
            tools.append(Tool(tname, _description(td, where, tf), td["parameters"]))
        servers.append(Server(name, _description(sd, where, field), tuple(tools)))
    inv = Inventory(tuple(servers))
    _check_strict_limits(inv, where)
    return inv


def _check_strict_limits(inv: Inventory, where: str) -> None:
    """The answer schema (which names the servers and tools as enums) within strict mode's
    size limits: past them every request would be refused with a 400."""
    from benchsmith.skyrl.plan import answer_schema

    enums: list[list[str]] = []
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("enum"), list):
                enums.append([str(v) for v in node["enum"]])
            if isinstance(node.get("properties"), dict):
                names.extend(node["properties"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(answer_schema(inv, with_task=True))
    fix = "split the inventory into smaller files"
    n_enum = sum(len(e) for e in enums)
    if n_enum > MAX_ENUM_VALUES:
        raise ConfigError(where, "servers", f"{n_enum} names in the answer schema's enums; "
                          f"strict structured output allows {MAX_ENUM_VALUES}: {fix}")
    for e in enums:
        chars = sum(len(v) for v in e)
        if len(e) > BIG_ENUM and chars > MAX_BIG_ENUM_CHARS:
            raise ConfigError(where, "servers", f"an enum of the answer schema has {len(e)} "
                              f"names of {chars:,} characters in all; strict structured output "
                              f"allows {MAX_BIG_ENUM_CHARS:,} characters in an enum of more "
                              f"than {BIG_ENUM} values: use shorter names or {fix}")
    total = sum(len(v) for e in enums for v in e) + sum(len(n) for n in names)
    if total > MAX_SCHEMA_CHARS:
        raise ConfigError(where, "servers", f"the answer schema's names and enum values hold "
                          f"{total:,} characters; strict structured output allows "
                          f"{MAX_SCHEMA_CHARS:,}: use shorter names or {fix}")


def _keys(obj: Any, where: str, field: str, required: set[str], optional: set[str]) -> None:
    if not isinstance(obj, dict):
        raise ConfigError(where, field, f"must be a mapping with {', '.join(sorted(required))}")
    dot = f"{field}." if field else ""
    missing = sorted(required - set(obj))
    if missing:
        raise ConfigError(where, dot + missing[0], "missing")
    extra = sorted(set(obj) - required - optional, key=str)
    if extra:
        allowed = ", ".join(sorted(required | optional))
        raise ConfigError(where, f"{dot}{extra[0]}", f"unknown key; allowed: {allowed}")


def _name(value: Any, pattern: re.Pattern[str], where: str, field: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(where, field, f"{value!r} is not a usable name: {rule}")
    return value


def _description(obj: dict[str, Any], where: str, field: str) -> str:
    d = obj.get("description", "")
    if d is None:
        return ""
    if not isinstance(d, str):
        raise ConfigError(where, f"{field}.description", "must be a string")
    return d.strip()


def _check_parameters(schema: Any, where: str, field: str) -> None:
    """An object schema: type object, properties a mapping, required a subset of them, and
    valid JSON Schema (Draft 2020-12) throughout."""
    if not isinstance(schema, dict):
        raise ConfigError(where, field, "must be a JSON Schema object: {type: object, "
                          "properties: {...}, required: [...]}")
    if schema.get("type") != "object":
        raise ConfigError(where, f"{field}.type", "must be `object` (a tool takes named "
                          "parameters)")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise ConfigError(where, f"{field}.properties", "must be a mapping of parameter name "
                          "to schema")
    for pname, psch in props.items():
        if not isinstance(psch, dict):
            raise ConfigError(where, f"{field}.properties.{pname}", "must be a JSON Schema "
                              "mapping, e.g. {type: string}")
        empty = [k for k, v in psch.items() if v is None]
        if empty:  # `{description: a, b}` in YAML: the comma made a key of " b"
            raise ConfigError(where, f"{field}.properties.{pname}", f"key {empty[0]!r} has no "
                              "value; quote text holding a comma inside {...} in YAML")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ConfigError(where, f"{field}.required", "must be a list of parameter names")
    unknown = [r for r in required if r not in props]
    if unknown:
        raise ConfigError(where, f"{field}.required", f"{unknown[0]!r} is not in properties "
                          f"({', '.join(props) or 'none'})")
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        sub = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
        raise ConfigError(where, field + sub, f"not valid JSON Schema: {e.message}") from None
