"""Tool plans: the strict answer schema sent to the model, parsing its answer, and checking a
plan against the inventory.

Strict structured output cannot hold a free-form object per tool, so each step carries its
arguments as `params_json`, a JSON-encoded object string; it is parsed here and checked
against that tool's `parameters` schema. Every problem is one short line naming the step,
the tool and the parameter, meant to be fed back to the model when the answer is re-asked.

`success.must_call_tool` names tools as `server.tool` (e.g. `git.commit`): a bare tool name
can be on several servers; the schema's enum lists exactly the inventory's pairs.
"""

from __future__ import annotations

import json
from typing import Any

from benchsmith.recipes.schema import validate_instance
from benchsmith.skyrl.inventory import Inventory, split_qualified

COMPLEXITIES = ("simple", "moderate", "complex")
MAX_PROBLEMS = 12  # a re-ask message stays short; the first problems are enough to fix


def answer_schema(inv: Inventory, *, with_task: bool) -> dict[str, Any]:
    """The strict JSON schema of the model's answer: a task and its plan (`with_task`, synth)
    or only the plan for a given prompt (retrofit)."""
    return _schema(inv.server_names(), inv.tool_names(), inv.qualified_names(), with_task)


def _obj(props: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "required": list(props),
                           "additionalProperties": False}
    if description:
        out["description"] = description
    return out


def _name(values: list[str] | None, description: str) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string", "description": description}
    if values is not None:
        s["enum"] = values
    return s


def _schema(servers: list[str] | None, tools: list[str] | None, qualified: list[str] | None,
            with_task: bool) -> dict[str, Any]:
    """Enums None: the same shape without name enums (used to check structure, so unknown
    names get the clearer messages of check_plan)."""
    step = _obj({
        "step": {"type": "integer", "description": "1, 2, 3, ... in call order."},
        "server": _name(servers, "The MCP server that has the tool."),
        "tool": _name(tools, "A tool of that server."),
        "params_json": {"type": "string", "description": "The call's arguments as a JSON "
                        "object following the tool's parameters schema, e.g. "
                        "{\"path\": \"src/app.py\"}; {} when it takes none."},
    })
    plan: dict[str, Any] = {
        "tool_sequence": {"type": "array", "items": step,
                          "description": "The tool calls that solve the task, in order."},
        "success": _obj({"must_call_tool": {
            "type": "array", "items": _name(qualified, "A tool as server.tool."),
            "description": "Tools any correct solution must call, as server.tool."}}),
        "limits": _obj({
            "max_servers": {"type": "integer", "description": "Most distinct servers allowed."},
            "max_tools": {"type": "integer", "description": "Most distinct tools allowed."},
        }),
    }
    rubric = {"type": "string", "description": "How to judge a solution: criteria, one a line."}
    if not with_task:
        return _obj({**plan, "rubric": rubric})
    return _obj({
        "user_prompt": {"type": "string", "description": "The user's request, self-contained."},
        "system_prompt": {"type": ["string", "null"],
                          "description": "A system prompt for the agent, or null."},
        **plan,
        "domain": {"type": "string"},
        "assumptions": {"type": "array", "items": {"type": "string"},
                        "description": "Facts about the environment the plan relies on."},
        "complexity": {"type": "string", "enum": list(COMPLEXITIES)},
        "rubric": rubric,
    })


def parse_answer(text: str, inv: Inventory, *, with_task: bool, max_tools: int | None = None,
                 max_servers: int | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """The model's answer as a sample and its problems (empty: valid), the plan checked as
    check_plan does (with the run's `max_tools` / `max_servers` when given).

    The sample has the answer's fields with `tool_sequence` items {step, server, tool, params}
    (params parsed from params_json). It is None when the answer is not the schema's shape;
    otherwise it is returned even with problems, so a caller can record what was wrong.
    """
    try:
        data = json.loads(_unfence(text))
    except json.JSONDecodeError as e:
        return None, [f"the answer is not valid JSON: {e.msg} at line {e.lineno} column "
                      f"{e.colno}"]
    shape = _schema(None, None, None, with_task)
    problems = [_from_root(p) for p in validate_instance(data, shape)]
    if problems:
        return None, problems[:MAX_PROBLEMS]
    steps: list[dict[str, Any]] = []
    unparsed: set[int] = set()
    for i, item in enumerate(data["tool_sequence"]):
        params = _params(item["params_json"])
        if isinstance(params, str):
            problems.append(f"{_step_label(item, i)}: params_json is not a JSON object "
                            f"({params}); write the arguments as e.g. {{\"path\": \"a.txt\"}}")
            params = None
            unparsed.add(i)
        steps.append({"step": item["step"], "server": item["server"], "tool": item["tool"],
                      "params": params})
    sample = dict(data)
    sample["tool_sequence"] = steps  # same key, same place: the answer's field order is kept
    if with_task and not data["user_prompt"].strip():
        problems.append("user_prompt is empty")
    if not data["rubric"].strip():
        problems.append("rubric is empty: say how a solution is judged")
    problems.extend(_check(inv, sample, max_tools, max_servers, unparsed))
    return sample, problems[:MAX_PROBLEMS]


def _params(text: str) -> dict[str, Any] | str:
    """The parsed arguments, or why they are not a JSON object."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return e.msg
    except ValueError as e:
        return str(e)
    return value if isinstance(value, dict) else f"a JSON {_json_type(value)}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; write a number or null")


def _from_root(problem: str) -> str:
    """`$.success.must_call_tool: ...` -> `success.must_call_tool: ...`."""
    return problem[2:] if problem.startswith("$.") else "answer" + problem[1:]


def check_plan(inv: Inventory, sample: dict[str, Any], *, max_tools: int | None = None,
               max_servers: int | None = None) -> list[str]:
    """Problems of a sample's plan against the inventory: unknown server or tool, a tool not
    on its server, parameters not allowed by the tool's schema, required tools that are not
    real or never called, and more distinct servers/tools than the sample's `limits` or than
    the run's `max_servers` / `max_tools`."""
    return _check(inv, sample, max_tools, max_servers, set())[:MAX_PROBLEMS]


def _check(inv: Inventory, sample: dict[str, Any], max_tools: int | None,
           max_servers: int | None, unparsed: set[int]) -> list[str]:
    steps = sample.get("tool_sequence")
    if not isinstance(steps, list) or not steps:
        return ["tool_sequence is empty: give at least one tool call"]
    problems: list[str] = []
    servers: dict[str, None] = {}
    tools: dict[str, None] = {}
    for i, st in enumerate(steps):
        label = _step_label(st, i)
        if not isinstance(st, dict):
            problems.append(f"{label}: must be an object {{step, server, tool, params}}")
            continue
        server, name = st.get("server"), st.get("tool")
        if inv.server(server) is None:
            problems.append(f"{label}: unknown server {server!r}; servers: "
                            f"{', '.join(inv.server_names())}")
            continue
        tool = inv.tool(server, name)
        if tool is None:
            elsewhere = inv.servers_of(name) if isinstance(name, str) else []
            if elsewhere:
                problems.append(f"{label}: tool {name!r} is not on server {server!r}; it is on "
                                f"{', '.join(elsewhere)}")
            else:
                names = ", ".join(t.name for t in inv.server(server).tools)
                problems.append(f"{label}: unknown tool {name!r}; tools of {server}: {names}")
            continue
        servers[server] = None
        tools[f"{server}.{name}"] = None
        if i not in unparsed:
            problems.extend(f"{label} ({server}.{name}): {p}"
                            for p in param_problems(tool.parameters, st.get("params")))
    problems.extend(_required_problems(inv, sample.get("success"), tools))
    problems.extend(_limit_problems(sample.get("limits"), servers, tools, max_servers,
                                    max_tools))
    return problems


def _step_label(item: Any, i: int) -> str:
    n = item.get("step") if isinstance(item, dict) else None
    return f"step {n if isinstance(n, int) and not isinstance(n, bool) else i + 1}"


def param_problems(schema: dict[str, Any], params: Any) -> list[str]:
    """Why `params` does not follow a tool's parameters schema (JSON Schema Draft 2020-12)."""
    if not isinstance(params, dict):
        return [f"params must be a JSON object of arguments, got {_json_type(params)}"]
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(params),
                    key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    out: dict[str, None] = {}
    for e in errors:
        where = _param_path(list(e.absolute_path))
        if e.validator == "required":
            for r in e.validator_value:
                if isinstance(e.instance, dict) and r not in e.instance:
                    out[f"missing required parameter {_join(where, r)!r}"] = None
        elif e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = list(e.schema.get("properties", {}))
            for k in e.instance:
                if k not in known:
                    allowed = ", ".join(known) or "none"
                    out[f"parameter {_join(where, k)!r} is not allowed (parameters: "
                        f"{allowed})"] = None
        elif e.validator == "type":
            out[f"parameter {where!r}: expected {_or(e.validator_value)}, got "
                f"{_json_type(e.instance)} {_short(e.instance)}"] = None
        elif e.validator == "enum":
            out[f"parameter {where!r}: {_short(e.instance)} is not one of "
                f"{', '.join(json.dumps(v) for v in e.validator_value)}"] = None
        else:
            out[f"parameter {where or '(all)'!r}: {e.message[:200]}"] = None
    return list(out)


def _param_path(path: list[Any]) -> str:
    s = ""
    for p in path:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _or(t: Any) -> str:
    return " or ".join(t) if isinstance(t, list) else str(t)


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(v), type(v).__name__)


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 60 else s[:57] + "..."


def _required_problems(inv: Inventory, success: Any, called: dict[str, None]) -> list[str]:
    must = success.get("must_call_tool") if isinstance(success, dict) else None
    if not isinstance(must, list) or not must:
        return ["success.must_call_tool is empty: name at least one server.tool the plan calls"]
    problems = []
    for name in must:
        server, tool = split_qualified(name) if isinstance(name, str) else ("", "")
        if inv.tool(server, tool) is None:
            problems.append(f"success.must_call_tool: {name!r} is not a tool of the inventory; "
                            "write server.tool, e.g. "
                            f"{inv.qualified_names()[0]}")
        elif name not in called:
            problems.append(f"success.must_call_tool: {name!r} is never called in the "
                            "tool_sequence")
    return problems


def _limit_problems(limits: Any, servers: dict[str, None], tools: dict[str, None],
                    max_servers: int | None, max_tools: int | None) -> list[str]:
    problems: list[str] = []
    own = limits if isinstance(limits, dict) else {}
    for key, used, run_max in (("max_servers", servers, max_servers),
                               ("max_tools", tools, max_tools)):
        what = key.removeprefix("max_")
        value = own.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            problems.append(f"limits.{key} must be a whole number of at least 1")
            continue
        if value is not None and len(used) > value:
            problems.append(f"the plan uses {len(used)} distinct {what} ({', '.join(used)}) "
                            f"but limits.{key} is {value}")
        if run_max is not None and len(used) > run_max:
            problems.append(f"the plan uses {len(used)} distinct {what} ({', '.join(used)}); "
                            f"at most {run_max} are allowed")
        elif run_max is not None and value is not None and value > run_max:
            problems.append(f"limits.{key} is {value}; at most {run_max} is allowed")
    return problems


def _unfence(text: str) -> str:
    """A ```json fenced answer (chat backends without strict mode) as its JSON text."""
    s = text.strip()
    if s.startswith("```") and s.endswith("```") and "\n" in s:
        return s[s.index("\n") + 1:-3]
    return s
