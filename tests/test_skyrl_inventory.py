"""Tool inventories: the shipped example, and every mistake reported as one line naming the
file and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from benchsmith.errors import ConfigError
from benchsmith.skyrl.inventory import example_inventory_path, load_inventory, split_qualified


def _base() -> dict:
    return {"servers": [
        {"name": "filesystem", "description": "files", "tools": [
            {"name": "read_file", "description": "read", "parameters": {
                "type": "object", "properties": {"path": {"type": "string"}},
                "required": ["path"], "additionalProperties": False}},
            {"name": "list_directory", "parameters": {
                "type": "object", "properties": {"path": {"type": "string"}}}},
        ]},
        {"name": "git", "description": "repo", "tools": [
            {"name": "status", "description": "status", "parameters": {
                "type": "object", "properties": {"repo_path": {"type": "string"}},
                "required": ["repo_path"]}},
        ]},
    ]}


def _load(tmp_path: Path, data: object, name: str = "tools.yaml") -> object:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return load_inventory(path)


def _error(tmp_path: Path, data: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, data)
    err = info.value
    assert "\n" not in str(err) and str(err).startswith(str(tmp_path / "tools.yaml"))
    return err


def test_example_inventory_has_the_four_servers_and_checks_out():
    inv = load_inventory(example_inventory_path())
    assert inv.server_names() == ["filesystem", "git", "web_search", "database"]
    fs = {t.name for t in inv.server("filesystem").tools}
    assert {"read_file", "write_file", "list_directory", "search_files"} <= fs
    assert {t.name for t in inv.server("git").tools} >= {"status", "diff", "log", "commit"}
    assert {t.name for t in inv.server("web_search").tools} == {"search", "fetch_url"}
    assert {t.name for t in inv.server("database").tools} == {
        "list_tables", "describe_table", "query"}
    query = inv.tool("database", "query")
    assert query.parameters["required"] == ["sql"]
    assert query.parameters["properties"]["max_rows"]["type"] == "integer"
    assert inv.tool("web_search", "search").parameters["properties"]["recency"]["enum"]
    assert inv.tool("git", "query") is None and inv.tool("nope", "query") is None
    assert inv.servers_of("query") == ["database"]
    assert len(inv.qualified_names()) == sum(len(s.tools) for s in inv.servers)
    assert all(t.description for s in inv.servers for t in s.tools)


def test_yaml_and_json_files_give_the_same_inventory(tmp_path):
    a = _load(tmp_path, _base(), "tools.yaml")
    b = _load(tmp_path, _base(), "tools.json")
    assert a == b
    assert a.tool("filesystem", "list_directory").description == ""
    assert a.tool_names() == ["read_file", "list_directory", "status"]
    assert a.qualified_names() == ["filesystem.read_file", "filesystem.list_directory",
                                   "git.status"]


def test_the_same_tool_name_on_two_servers_is_allowed(tmp_path):
    data = _base()
    data["servers"][1]["tools"].append(copy.deepcopy(data["servers"][0]["tools"][0]))
    inv = _load(tmp_path, data)
    assert inv.tool_names().count("read_file") == 1
    assert inv.servers_of("read_file") == ["filesystem", "git"]


def test_split_qualified_keeps_dots_of_the_tool_name():
    assert split_qualified("git.status") == ("git", "status")
    assert split_qualified("web.search.v2") == ("web", "search.v2")


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d.clear() or d.update({"tools": []}), "servers", "missing"),
    (lambda d: d.update({"version": 2}), "version", "unknown key"),
    (lambda d: d.update({"servers": []}), "servers", "non-empty list"),
    (lambda d: d["servers"][1].update({"name": "filesystem"}), "servers[1].name",
     "listed twice"),
    (lambda d: d["servers"][0].update({"name": "file system"}), "servers[0].name",
     "not a usable name"),
    (lambda d: d["servers"][0].update({"name": "fs.v2"}), "servers[0].name", "no dot"),
    (lambda d: d["servers"][0].pop("tools"), "servers[0].tools", "missing"),
    (lambda d: d["servers"][0].update({"tools": []}), "servers[0].tools", "non-empty list"),
    (lambda d: d["servers"][0].update({"url": "x"}), "servers[0].url", "unknown key"),
    (lambda d: d["servers"][0].update({"description": 3}), "servers[0].description",
     "must be a string"),
    (lambda d: d["servers"][0]["tools"][1].update({"name": "read_file"}),
     "servers[0].tools[1].name", "listed twice on server 'filesystem'"),
    (lambda d: d["servers"][0]["tools"][0].update({"name": "read file"}),
     "servers[0].tools[0].name", "not a usable name"),
    (lambda d: d["servers"][0]["tools"][0].update({"name": 7}),
     "servers[0].tools[0].name", "not a usable name"),
    (lambda d: d["servers"][0]["tools"][0].update({"params": {}}),
     "servers[0].tools[0].params", "unknown key"),
    (lambda d: d["servers"][0]["tools"][0].pop("parameters"),
     "servers[0].tools[0].parameters", "missing"),
    (lambda d: d["servers"][0]["tools"][0].update({"parameters": "path"}),
     "servers[0].tools[0].parameters", "JSON Schema object"),
    (lambda d: d["servers"][1]["tools"][0]["parameters"].update({"type": "string"}),
     "servers[1].tools[0].parameters.type", "must be `object`"),
    (lambda d: d["servers"][1]["tools"][0]["parameters"].update({"properties": ["a"]}),
     "servers[1].tools[0].parameters.properties", "mapping"),
    (lambda d: d["servers"][1]["tools"][0]["parameters"]["properties"].update({"n": "int"}),
     "servers[1].tools[0].parameters.properties.n", "JSON Schema mapping"),
    (lambda d: d["servers"][1]["tools"][0]["parameters"].update({"required": ["repo"]}),
     "servers[1].tools[0].parameters.required", "'repo' is not in properties (repo_path)"),
    (lambda d: d["servers"][1]["tools"][0]["parameters"].update({"required": "repo_path"}),
     "servers[1].tools[0].parameters.required", "list of parameter names"),
    (lambda d: d["servers"][0]["tools"][0]["parameters"]["properties"]["path"].update(
        {"type": "strin"}),
     "servers[0].tools[0].parameters.properties.path.type", "not valid JSON Schema"),
])
def test_each_mistake_names_its_field(tmp_path, mutate, field, words):
    data = _base()
    mutate(data)
    err = _error(tmp_path, data)
    assert err.field == field
    assert words in err.problem


def test_a_file_that_is_not_a_mapping_or_not_parseable(tmp_path):
    assert "mapping" in _error(tmp_path, ["servers"]).problem
    bad = tmp_path / "tools.json"
    bad.write_text('{"servers": [')
    with pytest.raises(ConfigError, match="tools.json: not valid JSON"):
        load_inventory(bad)
    bad = tmp_path / "tools.yaml"
    bad.write_text("servers: [\n  - name: x\n bad")
    with pytest.raises(ConfigError, match="tools.yaml: not valid YAML"):
        load_inventory(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_inventory(tmp_path / "missing.yaml")


def test_too_many_names_for_one_strict_schema(tmp_path):
    def server(name: str) -> dict:
        return {"name": name, "tools": [
            {"name": f"{name}_tool_{i}", "parameters": {"type": "object"}} for i in range(300)]}

    _load(tmp_path, {"servers": [server("a")]})  # 1 + 300 + 300 + 3 enum values: fine
    err = _error(tmp_path, {"servers": [server("a"), server("b")]})
    assert err.field == "servers" and "1205 names" in err.problem


def test_an_unquoted_comma_in_a_yaml_flow_mapping_is_named(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text(
        "servers:\n"
        "  - name: fs\n    description: Files.\n    tools:\n"
        "      - name: read_file\n        description: Read a file.\n"
        "        parameters:\n          type: object\n          properties:\n"
        "            path: {type: string, description: Path of the file, relative to root.}\n",
        encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_inventory(path)
    msg = str(e.value)
    assert "properties.path" in msg and "'relative to root.'" in msg and "quote" in msg
    assert "\n" not in msg


def test_long_names_past_strict_modes_enum_characters_are_refused(tmp_path):
    # 300 tools of 60-character names: one enum of more than 250 values holding more than
    # 15,000 characters, which strict structured output refuses (a 400 on every request).
    tools = [{"name": f"t{i:03d}_" + "x" * 55, "parameters": {"type": "object"}}
             for i in range(300)]
    err = _error(tmp_path, {"servers": [{"name": "srv", "tools": tools}]})
    assert err.field == "servers" and "15,000" in err.problem and "characters" in err.problem
    assert "split the inventory" in err.problem
    _load(tmp_path, {"servers": [{"name": "srv", "tools": tools[:250]}]})  # 250 values: fine


def test_an_empty_file_and_a_yaml_mistake_say_what_and_where(tmp_path):
    empty = tmp_path / "tools.yaml"
    empty.write_text("\n# nothing yet\n")
    with pytest.raises(ConfigError, match="tools.yaml: the file is empty; list the servers"):
        load_inventory(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  - name: x\n    tools: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line \d+"):
        load_inventory(bad)
