"""Shared by the batch executor tests: run helpers, ledger readers, spec checks.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

from fake_batches_support import spec_validator  # OpenAPI 3.0 -> JSON Schema 2020-12 (nullable)
from fake_openai import BatchScript, FakeBatch, FakeOpenAI
from helpers import (
    cfg_dict,
    deep_merge,
    ledger_rows,
    make_cfg,
    write_yaml,
)

from benchsmith import api

MODEL = "gpt-5-mini"
PRICE = {"input": 1.25, "cached_input": 0.125, "output": 10.0}
FAST = {"batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.05}}
NO_DIV = {"recipe_options": {"diversity": False}}
RESPONSES, CHAT = "/v1/responses", "/v1/chat/completions"
SPEC_BODY = {RESPONSES: "CreateResponse", CHAT: "CreateChatCompletionRequest"}



# --------------------------------------------------------------------------- helpers


def run_batch(tmp_path: Path, server: FakeOpenAI, overrides: dict | None = None, *,
              tasks: int = 3, run_id: str = "R", resume: bool = False,
              mode: str = "batch") -> tuple[api.RunSummary, Path]:
    cfg = make_cfg(tmp_path, server.base_url, deep_merge(FAST, overrides or {}), tasks=tasks)
    summary = api.run(cfg, run_id, resume, mode=mode)
    return summary, tmp_path / "runs" / run_id


def input_lines(server: FakeOpenAI, batch: FakeBatch) -> list[dict[str, Any]]:
    """The request lines of a batch, parsed from the uploaded input file's bytes."""
    content = server.files[batch.input_file_id].content
    return [json.loads(raw) for raw in content.split(b"\n") if raw.strip()]


def batches_in_order(server: FakeOpenAI) -> list[FakeBatch]:
    return list(server.batches.values())


def uploads(server: FakeOpenAI) -> list[Any]:
    return [f for f in server.files.values() if f.purpose == "batch"]


def response_text(body: dict[str, Any]) -> str:
    """The assistant text of a Response or ChatCompletion object."""
    if "choices" in body:
        return body["choices"][0]["message"]["content"]
    return "".join(
        part["text"]
        for item in body["output"] if item.get("type") == "message"
        for part in item["content"] if part.get("type") == "output_text"
    )


def online_answer(server: FakeOpenAI, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the fake's online endpoint answers for exactly this request body."""
    assert url.startswith("/v1/")
    req = urllib.request.Request(
        server.base_url + url[len("/v1"):], data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-test"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def check_request_line(line: dict[str, Any], endpoint: str, unit_ids: set[str]) -> None:
    """One input line: exactly {custom_id, method, url, body}, valid against the spec."""
    assert set(line) == {"custom_id", "method", "url", "body"}, line.keys()
    spec_validator("BatchRequestInput").validate(line)
    spec_validator(SPEC_BODY[endpoint]).validate(line["body"])
    cid = line["custom_id"]
    assert cid in unit_ids, cid
    assert cid.isascii() and 0 < len(cid) <= 64, cid
    assert line["method"] == "POST"
    assert line["url"] == endpoint


def settled_cost(usage: dict[str, Any], price: dict[str, float], multiplier: float) -> float:
    """USD for a usage object from a Response or ChatCompletion body."""
    if "input_tokens" in usage:
        n_in, n_out = usage["input_tokens"], usage["output_tokens"]
        cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
    else:
        n_in, n_out = usage["prompt_tokens"], usage["completion_tokens"]
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    online = ((n_in - cached) * price["input"] + cached * price["cached_input"]
              + n_out * price["output"]) / 1e6
    return online * multiplier


def ledger_batches(rd: Path) -> list[dict[str, Any]]:
    cols = ("local_id", "batch_id", "status", "model", "endpoint", "input_file_id",
            "n_requests", "reserved_usd", "reconciled_at")
    rows = ledger_rows(rd, f"SELECT {', '.join(cols)} FROM batches ORDER BY created_at, local_id")
    return [dict(zip(cols, r)) for r in rows]


def local_ids(rd: Path) -> dict[str, str]:
    """provider batch id -> local id"""
    return {b["batch_id"]: b["local_id"] for b in ledger_batches(rd)}


def statuses(atts: list[dict[str, Any]]) -> list[str]:
    return [a["status"] for a in atts]


def first_batch_plan(make: Any) -> Any:
    """A `batch_plan` applying `make(custom_ids)` to the first batch only."""
    seen: list[str] = []

    def plan(bid: str, lines: list[Any]) -> BatchScript | None:
        seen.append(bid)
        if len(seen) == 1:
            return make(sorted(ln["custom_id"] for ln in lines))
        return None

    return plan




def _cli_cfg(tmp_path: Path, server: FakeOpenAI, tasks: int = 3) -> Path:
    return write_yaml(tmp_path / "run.yaml",
                      cfg_dict(tmp_path, server.base_url, deep_merge(FAST, NO_DIV), tasks=tasks))


def _kill(proc: Any) -> None:
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(20)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _no_traceback(res: Any) -> None:
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
