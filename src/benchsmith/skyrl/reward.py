"""A reference reward for tool-use rollouts: score the tool calls an agent made against a
row's reward_spec. Standard library only, so an MCPToolEnv can import it as is.

    from benchsmith.skyrl.reward import score
    result = score([{"server": "git", "tool": "status", "params": {"repo_path": "."}}],
                   extras["reward_spec"])
    reward = result["reward"]

A call is {server, tool, params} (`arguments`, MCP's name, is accepted for params, and a
JSON string for either). A call matches a plan step when the tool is the same and so is the
server (a call without a server matches on the tool alone).

Components, each in [0, 1]:
- required: the fraction of success.must_call_tool (server.tool) called at least once; the
  plan's own tools when that list is empty.
- order: the longest run of plan steps the calls follow in order (a subsequence, other
  calls may come between), over the plan's length; `order_ok` when it is the whole plan.
- params: over the plan's steps, the fraction of each step's parameters the matched call
  gave with the same value (a step without parameters counts 1 when matched, 0 unmatched).
  Calls are matched to steps by the alignment of `order` that also gives the most
  parameter agreement.
- efficiency: plan length / number of calls, at most 1 (0 when no call matches a step):
  calling every tool many times does not earn the full reward.
reward = 0.3 required + 0.3 order + 0.3 params + 0.1 efficiency (WEIGHTS); 1.0 exactly
when the calls are the plan.
"""

from __future__ import annotations

import json
from typing import Any

WEIGHTS = {"required": 0.3, "order": 0.3, "params": 0.3, "efficiency": 0.1}


def score(tool_calls: list[dict[str, Any]], reward_spec: dict[str, Any]) -> dict[str, Any]:
    """{reward, required_called, required_fraction, missing_tools, order_ok, order_score,
    params_match, matched_steps, plan_steps, calls, efficiency}. ValueError when the
    reward_spec holds no tool plan."""
    plan, must = _ground_truth(reward_spec)
    calls = [_call(c) for c in tool_calls]
    called = {f"{c[0]}.{c[1]}" for c in calls if c[0] is not None}
    called_tools = {c[1] for c in calls if c[0] is None}
    required = must or list(dict.fromkeys(f"{s}.{t}" for s, t, _ in plan))
    missing = [m for m in required
               if m not in called and m.partition(".")[2] not in called_tools]
    required_fraction = 1 - len(missing) / len(required)
    matched, param_sum = _align(plan, calls)
    order_score = matched / len(plan)
    params_match = param_sum / len(plan)
    efficiency = min(1.0, len(plan) / len(calls)) if matched else 0.0
    parts = {"required": required_fraction, "order": order_score, "params": params_match,
             "efficiency": efficiency}
    reward = sum(WEIGHTS[k] * v for k, v in parts.items())
    return {
        "reward": round(min(1.0, max(0.0, reward)), 6),
        "required_called": not missing,
        "required_fraction": required_fraction,
        "missing_tools": missing,
        "order_ok": matched == len(plan),
        "order_score": order_score,
        "params_match": params_match,
        "matched_steps": matched,
        "plan_steps": len(plan),
        "calls": len(calls),
        "efficiency": efficiency,
    }


Step = tuple[Any, Any, dict[str, Any]]


def _ground_truth(spec: dict[str, Any]) -> tuple[list[Step], list[str]]:
    truth = spec.get("ground_truth") if isinstance(spec, dict) else None
    if isinstance(truth, str):
        try:
            truth = json.loads(truth)
        except json.JSONDecodeError as e:
            raise ValueError(f"reward_spec.ground_truth is not valid JSON: {e.msg}") from None
    steps = truth.get("tool_sequence") if isinstance(truth, dict) else None
    if not isinstance(steps, list) or not steps:
        raise ValueError("reward_spec.ground_truth has no tool_sequence")
    plan = [(s.get("server"), s.get("tool"), s.get("params") or {}) for s in steps
            if isinstance(s, dict)]
    success = truth.get("success")
    must = success.get("must_call_tool") if isinstance(success, dict) else None
    return plan, [m for m in must or [] if isinstance(m, str)]


def _call(call: Any) -> Step:
    """(server or None, tool, params) of one call; a malformed call matches nothing."""
    if not isinstance(call, dict):
        return (None, None, {})
    params = call.get("params", call.get("arguments"))
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError:
            params = {}
    return (call.get("server"), call.get("tool"), params if isinstance(params, dict) else {})


def _matches(step: Step, call: Step) -> bool:
    return call[1] is not None and call[1] == step[1] and call[0] in (None, step[0])


def _param_fraction(expected: dict[str, Any], given: dict[str, Any]) -> float:
    if not expected:
        return 1.0
    same = sum(1 for k, v in expected.items() if k in given and _equal(v, given[k]))
    return same / len(expected)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _align(plan: list[Step], calls: list[Step]) -> tuple[int, float]:
    """(steps matched, sum of their parameter fractions) of the best in-order alignment:
    most steps first, then most parameter agreement (dynamic programming, O(steps x calls))."""
    best = [[(0, 0.0)] * (len(calls) + 1) for _ in range(len(plan) + 1)]
    for i in range(1, len(plan) + 1):
        for j in range(1, len(calls) + 1):
            cand = max(best[i - 1][j], best[i][j - 1])
            if _matches(plan[i - 1], calls[j - 1]):
                n, p = best[i - 1][j - 1]
                cand = max(cand, (n + 1, p + _param_fraction(plan[i - 1][2], calls[j - 1][2])))
            best[i][j] = cand
    return best[len(plan)][len(calls)]
