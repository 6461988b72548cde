"""The answer schema obeys OpenAI strict mode, and every reason a plan is invalid comes back
as one line naming the step, the tool and the parameter."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from benchsmith.recipes.schema import strict_mode_problems
from benchsmith.skyrl.inventory import example_inventory_path, load_inventory
from benchsmith.skyrl.plan import answer_schema, check_plan, parse_answer

INV = load_inventory(example_inventory_path())

# wire-formats.md 2.6: the keywords strict mode accepts, per type, plus the shared ones.
COMMON = {"type", "description", "enum", "anyOf", "$ref", "$defs", "title"}
PER_TYPE = {
    "string": {"pattern", "format"},
    "number": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "integer": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
    "boolean": set(), "null": set(),
}


def strict_problems(schema: dict, path: str = "$", depth: int = 0) -> list[str]:
    """Rules 2-4 of 2.6, the supported keywords, and the (older, lower) nesting limit."""
    problems = []
    types = schema.get("type")
    types = types if isinstance(types, list) else [types] if types else []
    allowed = set(COMMON).union(*(PER_TYPE[t] for t in types))
    problems += [f"{path}: keyword {k}" for k in schema if k not in allowed]
    if "object" in types:
        depth += 1
        if depth > 5:
            problems.append(f"{path}: nested deeper than 5 objects")
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties must be false")
        props = schema.get("properties", {})
        if set(schema.get("required", [])) != set(props):
            problems.append(f"{path}: every property must be required")
        for k, sub in props.items():
            problems += strict_problems(sub, f"{path}.{k}", depth)
    if "items" in schema:
        problems += strict_problems(schema["items"], f"{path}[]", depth)
    for i, sub in enumerate(schema.get("anyOf", [])):
        problems += strict_problems(sub, f"{path}.anyOf[{i}]", depth)
    return problems


def enums(schema: dict) -> list[list]:
    found = [schema["enum"]] if "enum" in schema else []
    subs = [*schema.get("properties", {}).values()] + ([schema["items"]] if "items" in schema
                                                        else [])
    for sub in subs:
        found += enums(sub)
    return found


def count_properties(schema: dict) -> int:
    props = schema.get("properties", {})
    return len(props) + sum(count_properties(s) for s in props.values()) + (
        count_properties(schema["items"]) if "items" in schema else 0)


def test_the_strict_checker_catches_each_breach():
    bad = {"type": "object", "required": ["a"], "additionalProperties": False,
           "properties": {"a": {"type": "string", "minLength": 1, "default": "x"},
                          "b": {"type": "object", "properties": {}}}}
    assert strict_problems(bad) == [
        "$: every property must be required", "$.a: keyword minLength", "$.a: keyword default",
        "$.b: additionalProperties must be false"]


@pytest.mark.parametrize("with_task", [True, False])
def test_answer_schema_obeys_strict_mode(with_task):
    schema = answer_schema(INV, with_task=with_task)
    assert schema["type"] == "object" and "anyOf" not in schema
    assert strict_problems(schema) == []
    assert strict_mode_problems(schema) == []
    Draft202012Validator.check_schema(schema)
    values = [v for e in enums(schema) for v in e]
    assert len(values) <= 500 and sum(len(str(v)) for v in values) <= 15_000
    assert count_properties(schema) <= 100


def test_schema_fields_and_name_enums():
    full = answer_schema(INV, with_task=True)
    assert list(full["properties"]) == [
        "user_prompt", "system_prompt", "tool_sequence", "success", "limits", "domain",
        "assumptions", "complexity", "rubric"]
    plan_only = answer_schema(INV, with_task=False)
    assert list(plan_only["properties"]) == ["tool_sequence", "success", "limits", "rubric"]
    step = full["properties"]["tool_sequence"]["items"]["properties"]
    assert list(step) == ["step", "server", "tool", "params_json"]
    assert step["server"]["enum"] == INV.server_names()
    assert step["tool"]["enum"] == INV.tool_names()
    assert step["params_json"]["type"] == "string"
    must = full["properties"]["success"]["properties"]["must_call_tool"]["items"]
    assert must["enum"] == INV.qualified_names() and "git.commit" in must["enum"]
    assert full["properties"]["complexity"]["enum"] == ["simple", "moderate", "complex"]


def _answer(steps, *, must=("database.query",), limits=(2, 3), with_task=True, **extra):
    data = {
        "tool_sequence": [{"step": i + 1, "server": s, "tool": t,
                           "params_json": p if isinstance(p, str) else json.dumps(p)}
                          for i, (s, t, p) in enumerate(steps)],
        "success": {"must_call_tool": list(must)},
        "limits": {"max_servers": limits[0], "max_tools": limits[1]},
        "rubric": "Lists the tables, then answers from the query result.",
    }
    if with_task:
        data = {"user_prompt": "How many orders shipped late last week?",
                "system_prompt": None, **data, "domain": "retail analytics",
                "assumptions": ["a table of orders exists"], "complexity": "moderate"}
    data.update(extra)
    return data


GOOD = [("database", "list_tables", {}),
        ("database", "describe_table", {"table": "orders"}),
        ("database", "query", {"sql": "SELECT count(*) FROM orders", "max_rows": 10})]


@pytest.mark.parametrize("with_task", [True, False])
def test_a_valid_answer_parses_to_a_sample(with_task):
    answer = _answer(GOOD, with_task=with_task)
    assert not list(Draft202012Validator(answer_schema(INV, with_task=with_task))
                    .iter_errors(answer))
    sample, problems = parse_answer(json.dumps(answer), INV, with_task=with_task)
    assert problems == []
    assert sample["tool_sequence"][2] == {
        "step": 3, "server": "database", "tool": "query",
        "params": {"sql": "SELECT count(*) FROM orders", "max_rows": 10}}
    assert sample["success"] == {"must_call_tool": ["database.query"]}
    assert ("user_prompt" in sample) is with_task
    assert list(sample)[:1] == (["user_prompt"] if with_task else ["tool_sequence"])


def test_the_schema_itself_refuses_unknown_names():
    bad = _answer([("database", "push", {})])
    errors = list(Draft202012Validator(answer_schema(INV, with_task=True)).iter_errors(bad))
    assert any(list(e.absolute_path) == ["tool_sequence", 0, "tool"] for e in errors)


def _problems(steps, **kw):
    sample, problems = parse_answer(json.dumps(_answer(steps, **kw)), INV, with_task=True)
    assert sample is not None
    return problems


def test_unknown_server():
    assert _problems([*GOOD, ("postgres", "query", {"sql": "x"})]) == [
        "step 4: unknown server 'postgres'; servers: filesystem, git, web_search, database"]


def test_unknown_tool():
    assert _problems([*GOOD, ("git", "push", {"repo_path": "."})]) == [
        "step 4: unknown tool 'push'; tools of git: status, diff, log, add, commit, "
        "create_branch"]


def test_tool_not_on_that_server():
    assert _problems([("git", "query", {"sql": "x"}), *GOOD]) == [
        "step 1: tool 'query' is not on server 'git'; it is on database"]


def test_missing_required_parameter():
    assert _problems([*GOOD[:2], ("database", "query", {"max_rows": 5})]) == [
        "step 3 (database.query): missing required parameter 'sql'"]


def test_wrong_type():
    steps = [*GOOD[:2], ("database", "query", {"sql": "SELECT 1", "max_rows": "10"})]
    assert _problems(steps) == [
        "step 3 (database.query): parameter 'max_rows': expected integer, got string \"10\""]
    nested = [("git", "add", {"repo_path": ".", "files": ["a.py", 3]})]
    assert _problems(nested, must=("git.add",)) == [
        "step 1 (git.add): parameter 'files[1]': expected string, got integer 3"]


def test_value_not_in_enum():
    steps = [("web_search", "search", {"query": "pyarrow", "recency": "decade"})]
    assert _problems(steps, must=("web_search.search",)) == [
        "step 1 (web_search.search): parameter 'recency': \"decade\" is not one of \"day\", "
        "\"week\", \"month\", \"year\", \"any\""]


def test_parameter_not_allowed_by_the_schema():
    steps = [*GOOD[:2], ("database", "query", {"sql": "SELECT 1", "timeout": 5})]
    assert _problems(steps) == [
        "step 3 (database.query): parameter 'timeout' is not allowed (parameters: sql, "
        "max_rows)"]


def test_other_schema_keywords_are_enforced_too():
    steps = [("web_search", "search", {"query": "x", "max_results": 500})]
    (problem,) = _problems(steps, must=("web_search.search",))
    assert problem.startswith("step 1 (web_search.search): parameter 'max_results': 500 ")


def test_more_distinct_servers_and_tools_than_the_sample_limits():
    steps = [*GOOD, ("git", "status", {"repo_path": "."}),
             ("web_search", "search", {"query": "late shipping"})]
    assert _problems(steps, limits=(2, 4)) == [
        "the plan uses 3 distinct servers (database, git, web_search) but limits.max_servers "
        "is 2",
        "the plan uses 5 distinct tools (database.list_tables, database.describe_table, "
        "database.query, git.status, web_search.search) but limits.max_tools is 4"]


def test_the_same_tool_twice_counts_once():
    steps = [*GOOD, ("database", "query", {"sql": "SELECT 2"})]
    assert _problems(steps, limits=(1, 3)) == []


def test_run_maximums_from_check_plan():
    sample, _ = parse_answer(json.dumps(_answer(GOOD, limits=(1, 3))), INV, with_task=True)
    assert check_plan(INV, sample) == []
    assert check_plan(INV, sample, max_tools=2) == [
        "the plan uses 3 distinct tools (database.list_tables, database.describe_table, "
        "database.query); at most 2 are allowed"]
    _, problems = parse_answer(json.dumps(_answer(GOOD, limits=(1, 3))), INV, with_task=True,
                               max_tools=2, max_servers=1)
    assert problems == check_plan(INV, sample, max_tools=2)
    sample["limits"] = {"max_servers": 4, "max_tools": 3}
    assert check_plan(INV, sample, max_servers=2) == ["limits.max_servers is 4; at most 2 is "
                                                      "allowed"]
    sample["limits"] = {"max_servers": 0, "max_tools": 3}
    assert check_plan(INV, sample) == ["limits.max_servers must be a whole number of at "
                                       "least 1"]


def test_required_tools_must_be_real_and_called():
    assert _problems(GOOD, must=("database.query", "git.commit")) == [
        "success.must_call_tool: 'git.commit' is never called in the tool_sequence"]
    assert _problems(GOOD, must=("database.drop",)) == [
        "success.must_call_tool: 'database.drop' is not a tool of the inventory; write "
        "server.tool, e.g. filesystem.read_file"]
    assert _problems(GOOD, must=()) == [
        "success.must_call_tool is empty: name at least one server.tool the plan calls"]


def test_params_json_that_is_not_an_object():
    steps = [*GOOD[:2], ("database", "query", "{'sql': 'SELECT 1'}"),
             ("database", "query", "[1, 2]")]
    problems = _problems(steps)
    assert problems[0].startswith("step 3: params_json is not a JSON object (Expecting "
                                  "property name enclosed in double quotes)")
    assert problems[1].startswith("step 4: params_json is not a JSON object (a JSON array)")
    assert len(problems) == 2  # no second complaint about the same steps' parameters


def test_answers_that_are_not_the_schema_shape():
    assert parse_answer("{not json", INV, with_task=True) == (
        None, ["the answer is not valid JSON: Expecting property name enclosed in double "
               "quotes at line 1 column 2"])
    assert parse_answer("[]", INV, with_task=False) == (
        None, ["answer: expected object, got list"])
    answer = _answer(GOOD, with_task=False)
    del answer["limits"]
    answer["tool_sequence"][0]["params_json"] = {}
    sample, problems = parse_answer(json.dumps(answer), INV, with_task=False)
    assert sample is None
    assert problems == ["answer: missing required field 'limits'",
                        "tool_sequence[0].params_json: expected string, got dict"]


def test_a_fenced_answer_from_a_chat_backend_parses():
    text = "```json\n" + json.dumps(_answer(GOOD)) + "\n```"
    sample, problems = parse_answer(text, INV, with_task=True)
    assert problems == [] and len(sample["tool_sequence"]) == 3


def test_empty_texts_and_an_empty_plan():
    assert _problems(GOOD, user_prompt="  ", rubric="") == [
        "user_prompt is empty", "rubric is empty: say how a solution is judged"]
    assert _problems([], must=()) == ["tool_sequence is empty: give at least one tool call"]


def test_many_problems_are_capped_for_the_re_ask():
    steps = [("git", "nope", {})] * 20
    assert len(_problems(steps)) == 12


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_params_json_with_nan_or_infinity_is_refused(bad):
    """Python's json reads them, but they are not JSON: a ground truth holding one would not
    load in a strict JSON reader."""
    steps = [*GOOD[:2], ("database", "query", f'{{"sql": "SELECT 1", "max_rows": {bad}}}')]
    (problem,) = _problems(steps)
    assert problem.startswith(f"step 3: params_json is not a JSON object ({bad} is not JSON")
