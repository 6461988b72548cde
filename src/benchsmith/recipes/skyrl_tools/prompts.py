"""The messages the skyrl_tools recipe sends: a task and its plan (synth), or a plan for a
given prompt (retrofit). The inventory is shown whole: server and tool names, descriptions and
parameter schemas (the answer schema lists the names only)."""

from __future__ import annotations

import json
from typing import Any

from benchsmith.recipes.skyrl_tools.options import SkyrlToolsOptions

SYSTEM = (
    "You write training data for AI agents that solve tasks by calling tools on MCP servers. "
    "Every plan you write must work with exactly the tools listed, with arguments that follow "
    "each tool's parameters schema. Answer with the JSON object the response format asks for."
)

GUIDE = {
    "simple": "one or two tool calls on one server",
    "moderate": "three or four tool calls, on one or two servers",
    "complex": "five or more tool calls across servers, later calls using earlier results",
}

PLAN_RULES = """\
- tool_sequence: the calls that solve the task, in order, numbered step 1, 2, 3, ...; each names
  its server and tool, and params_json holds the call's arguments as a JSON object string that
  follows the tool's parameters schema (e.g. "{{\\"path\\": \\"README.md\\"}}"; "{{}}" for none).
- success.must_call_tool: the tools any correct solution must call, as server.tool.
- limits: the most distinct servers and tools this task needs (max_servers <= {max_servers},
  max_tools <= {max_tools}).
- rubric: how to judge a solution, one criterion per line.
- At most {max_turns} steps, {max_servers} distinct servers and {max_tools} distinct tools."""

SYNTH = """\
Write one task for an AI agent that can call the MCP tools listed below, and the tool plan that
solves it.

Task {slot}: domain "{domain}", complexity "{complexity}" ({guide}).
Where it fits the domain, make the task need {anchor}.

- user_prompt: what a real user of this domain would ask: concrete (names, paths, values),
  self-contained, one to four sentences, never naming the tools or the plan.
- system_prompt: null, unless the agent needs standing instructions.
- domain: "{domain}"; complexity: "{complexity}".
- assumptions: the facts about the environment the plan relies on (files that exist, tables
  and their columns, a repository's branches, ...).
{rules}

Tools:
{tools}"""

RETROFIT = """\
An AI agent that can call the MCP tools listed below is given the prompt below. Write the
tool plan that solves it.

Prompt (its messages, as JSON):
{prompt}

{rules}

Tools:
{tools}"""


def inventory_text(inv: Any) -> str:
    """Servers, tools, descriptions and parameter schemas, one tool per line."""
    out = []
    for s in inv.servers:
        out.append(f"## {s.name}: {s.description}".rstrip(": "))
        for t in s.tools:
            params = json.dumps(t.parameters, ensure_ascii=False, sort_keys=True,
                                separators=(",", ":"))
            out.append(f"- {s.name}.{t.name}: {t.description} parameters: {params}")
    return "\n".join(out)


def _rules(o: SkyrlToolsOptions) -> str:
    return PLAN_RULES.format(max_servers=o.server_cap, max_tools=o.max_tools,
                             max_turns=o.max_turns)


def anchor_tool(inv: Any, seed: int) -> str:
    """A tool picked by the slot's seed for the task to need: tasks spread over the whole
    inventory instead of crowding on its first tools."""
    names = [f"{s.name}.{t.name}" for s in inv.servers for t in s.tools]
    return names[seed % len(names)]


def synth_messages(o: SkyrlToolsOptions, inv: Any, tools: str, *, slot: str, domain: str,
                   complexity: str, seed: int) -> tuple[dict[str, str], ...]:
    user = SYNTH.format(slot=slot, domain=domain, complexity=complexity,
                        guide=GUIDE.get(complexity, complexity), anchor=anchor_tool(inv, seed),
                        rules=_rules(o), tools=tools)
    return ({"role": "system", "content": SYSTEM}, {"role": "user", "content": user})


def retrofit_messages(o: SkyrlToolsOptions, prompt: list[dict[str, Any]], tools: str
                      ) -> tuple[dict[str, str], ...]:
    shown = json.dumps(prompt, ensure_ascii=False, indent=1)
    user = RETROFIT.format(prompt=shown, rules=_rules(o), tools=tools)
    return ({"role": "system", "content": SYSTEM}, {"role": "user", "content": user})
