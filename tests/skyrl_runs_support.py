"""Shared by the skyrl_tools run tests: a small tool inventory, a scripted model for the fake
server (valid tasks and plans built from what each request asks), readers of the outputs."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from fake_openai import Reply
from helpers import request_messages

INVENTORY = {"servers": [
    {"name": "files", "description": "Project files.", "tools": [
        {"name": "read_file", "description": "Read a file.", "parameters": {
            "type": "object", "properties": {"path": {"type": "string"}},
            "required": ["path"], "additionalProperties": False}},
        {"name": "write_file", "description": "Write a file.", "parameters": {
            "type": "object", "properties": {"path": {"type": "string"},
                                             "content": {"type": "string"}},
            "required": ["path", "content"], "additionalProperties": False}},
    ]},
    {"name": "search", "description": "Web search.", "tools": [
        {"name": "web", "description": "Search the web.", "parameters": {
            "type": "object", "properties": {"query": {"type": "string"},
                                             "limit": {"type": "integer", "minimum": 1}},
            "required": ["query"], "additionalProperties": False}},
    ]},
]}
# Words the scripted prompts are drawn from: prompts of different slots share few of them.
WORDS = ("audit budget cache deploy export filter graph index journal kernel ledger metric "
         "network outage patch query report schema ticket upgrade vendor webhook backup "
         "cluster dataset forecast gateway invoice latency migration notebook payroll quota "
         "release sensor throughput uptime warehouse").split()
TASK = re.compile(r'Task (slot-\d+): domain "([^"]+)", complexity "(\w+)"')
STEPS = {"simple": 1, "moderate": 2, "complex": 3}


def write_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(INVENTORY, sort_keys=False), encoding="utf-8")
    return path


def asked(body: dict[str, Any] | None) -> dict[str, str] | None:
    """slot, domain, complexity of a synth request (its first user message), else None."""
    msgs = request_messages(body)
    m = TASK.search(str(msgs[1]["content"])) if len(msgs) > 1 else None
    return None if m is None else dict(zip(("slot", "domain", "complexity"), m.groups()))


def is_reask(body: dict[str, Any] | None) -> bool:
    return len(request_messages(body)) > 2


def prompt_for(slot: str) -> str:
    words = random.Random(slot).sample(WORDS, 10)
    return f"Please {' '.join(words)} today."


def plan(slot: str, n_steps: int) -> dict[str, Any]:
    steps = [("files", "read_file", {"path": f"notes/{slot}.md"}),
             ("search", "web", {"query": f"{slot} background", "limit": 3}),
             ("files", "write_file", {"path": f"out/{slot}.md", "content": "summary"})]
    chosen = steps[:n_steps]
    return {
        "tool_sequence": [{"step": i + 1, "server": s, "tool": t, "params_json": json.dumps(p)}
                          for i, (s, t, p) in enumerate(chosen)],
        "success": {"must_call_tool": [f"{s}.{t}" for s, t, _ in chosen[:1]]},
        "limits": {"max_servers": len({s for s, _, _ in chosen}),
                   "max_tools": len({(s, t) for s, t, _ in chosen})},
        "rubric": "reads the notes\nwrites the summary",
    }


def task_answer(slot: str, domain: str, complexity: str, prompt: str | None = None
                ) -> dict[str, Any]:
    return {"user_prompt": prompt or prompt_for(slot), "system_prompt": None,
            **plan(slot, STEPS[complexity]), "domain": domain,
            "assumptions": [f"notes/{slot}.md exists"], "complexity": complexity}


def synth_script(received: Any, _index: int) -> Reply | None:
    """A model that answers every synth request with a valid task (None: not a synth one)."""
    a = asked(received.body)
    if a is None:
        return None
    return Reply.text(task_answer(a["slot"], a["domain"], a["complexity"]),
                      usage={"reasoning_tokens": 42})


def retrofit_script(received: Any, _index: int) -> Reply:
    """A model that answers every retrofit request with a one-step plan."""
    return Reply.text(plan("row", 1), usage={"reasoning_tokens": 5})


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def dataset(out: Path) -> list[dict[str, Any]]:
    """train + validation rows of an output folder."""
    return read_parquet(out / "train.parquet") + read_parquet(out / "validation.parquet")


def raw_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def ground_truth(row: dict[str, Any]) -> dict[str, Any]:
    gt = json.loads(row["reward_spec"]["ground_truth"])
    assert isinstance(gt, dict)
    return gt
