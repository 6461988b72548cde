"""A task whose prompt cannot fit the model's context is skipped with a reason, never sent:
at plan time (online and batch) and before each send (a chain's next call that grew)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchsmith import api
from benchsmith.config import parse_config
from benchsmith.engine.context import ContextLimits
from fake_openai import FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_terminal_invariants,
    cfg_dict,
    cli_env,
    ledger_rows,
    nonempty_lines,
    read_jsonl,
    run_cli,
    write_yaml,
)

HUGE_BYTES = 3_000_000
LIMIT = 100_000
REASON = re.compile(r"prompt_too_long: ~(\d+) tokens > limit (\d+)")


def _dataset(tmp_path: Path) -> Path:
    """Three ordinary tasks and one whose prompt is a 3 MB line."""
    rows = [{"task_id": f"t{i}", "prompt": f"Write a function that returns {i} squared."}
            for i in range(3)]
    rows.append({"task_id": "huge", "prompt": "Sort this list: " + "7, " * (HUGE_BYTES // 3)})
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(tmp_path: Path, base_url: str, over: dict[str, Any] | None = None) -> dict[str, Any]:
    data = cfg_dict(tmp_path, base_url, {
        "model": {"max_context_tokens": LIMIT},
        "batch": {"poll_interval_s": 0.01, "max_poll_interval_s": 0.05},
        **(over or {}),
    })
    data["datasets"] = {"rows": {"source": "jsonl", "path": str(_dataset(tmp_path))}}
    return data


def _states(rd: Path) -> dict[str, tuple[str, str | None]]:
    return {t: (s, r) for t, s, r in ledger_rows(rd, "SELECT task_id, state, reason FROM units")}


def _assert_huge_skipped(rd: Path, fake: FakeOpenAI) -> None:
    states = _states(rd)
    state, reason = states["huge"]
    assert state == "skipped", states
    m = REASON.fullmatch(reason or "")
    # ~4 bytes a token: a 3 MB prompt is ~750k tokens.
    assert m and int(m.group(1)) > HUGE_BYTES // 4 and int(m.group(2)) == LIMIT, reason
    # One unit for it (a skipped call does not plan the next), the others all ok.
    assert ledger_rows(rd, "SELECT COUNT(*) FROM units WHERE task_id='huge'") == [(1,)]
    assert {s for t, (s, _) in states.items() if t != "huge"} == {"ok"}
    assert_terminal_invariants(rd)
    # Never sent: no request (nor batch input file) comes near its size.
    assert fake.requests and max(len(r.raw) for r in fake.requests) < 100_000
    assert not any(b"7, 7, 7, 7" in r.raw for r in fake.requests)


def test_too_long_prompt_is_skipped_online(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", _config(tmp_path, fake_openai.base_url))
    env = cli_env(**{KEY_ENV: SECRET})
    res = run_cli(["run", "--config", str(cfg), "--run-id", "R", "--quiet"], env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    warn = [ln for ln in nonempty_lines(res.stderr)
            if ln.startswith("warning: 1 request(s) skipped")]
    assert warn and "model.max_context_tokens" in warn[0], res.stderr
    rd = tmp_path / "runs" / "R"
    _assert_huge_skipped(rd, fake_openai)
    st = run_cli(["status", str(rd), "--json"], env=env)
    assert json.loads(st.stdout)["failure_reasons"] == {"prompt_too_long": 1}
    assert not (rd / "manifests" / "rows_complete_task_ids.json").read_text().count("huge")

    # With a larger limit the unit is planned again (and nothing else changes).
    data = _config(tmp_path, fake_openai.base_url, {"model": {"max_context_tokens": 10_000_000}})
    write_yaml(tmp_path / "c.yaml", data)
    res = run_cli(["dry-run", "--config", str(cfg), "--run-id", "R"], env=env)
    assert res.returncode == 0, res.stderr
    assert _states(rd)["huge"] == ("pending", None)


def test_too_long_prompt_is_skipped_in_batch_mode(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", _config(tmp_path, fake_openai.base_url))
    res = run_cli(["run", "--config", str(cfg), "--run-id", "B", "--mode", "batch", "--quiet"],
                  env=cli_env(**{KEY_ENV: SECRET}), timeout=120)
    assert res.returncode == 0, res.stderr
    rd = tmp_path / "runs" / "B"
    _assert_huge_skipped(rd, fake_openai)
    sent = [line["custom_id"] for b in fake_openai.batches.values() for line in b.lines]
    huge_ids = [u for (u,) in ledger_rows(rd, "SELECT unit_id FROM units WHERE task_id='huge'")]
    assert sent and not set(sent) & set(huge_ids)


def test_batch_export_leaves_out_a_too_long_prompt(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    cfg = parse_config(_config(tmp_path, fake_openai.base_url), file="c.yaml",
                       config_dir=str(tmp_path))
    rd = api.dry_run(cfg, "X").run_dir
    out = tmp_path / "requests.jsonl"
    res = run_cli(["batch", "export", str(rd), "--out", str(out)])
    assert res.returncode == 0, res.stderr
    lines = read_jsonl(out)
    assert len(lines) == 3 and out.stat().st_size < 100_000
    assert _states(rd)["huge"][0] == "skipped"


def test_a_chain_call_that_grows_too_long_is_skipped_before_it_is_sent(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch
) -> None:
    """Call 2 of a task repeats the plans of call 1, so it is longer: with a limit between
    the two, call 1 is answered and call 2 is skipped at dispatch, never sent."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    over = {"recipe_options": {"calls_per_task": 2}, "model": {"max_output_tokens": 1000}}
    probe = parse_config(cfg_dict(tmp_path, fake_openai.base_url, over, tasks=1),
                         file="c.yaml", config_dir=str(tmp_path))
    # No limit: learn the two request sizes from the server.
    api.run(probe.model_copy(update={"run_dir": str(tmp_path / "probe")}), "P")
    first, second = (len(r.raw) for r in fake_openai.requests)
    assert second > first + 500
    # Between the two at ~4 bytes a token, plus framing (1 message) and the output cap.
    limit = (first + second) // 8 + 40 + 1000
    over["model"]["max_context_tokens"] = limit
    cfg = parse_config(cfg_dict(tmp_path, fake_openai.base_url, over, tasks=1),
                       file="c.yaml", config_dir=str(tmp_path))
    summary = api.run(cfg, "R")
    assert summary.counts == {"ok": 1, "skipped": 1}
    sent = fake_openai.requests[2:]
    assert len(sent) == 1 and len(sent[0].raw) == first
    rd = summary.run_dir
    (reason,) = [r for (r,) in ledger_rows(rd, "SELECT reason FROM units WHERE state='skipped'")]
    m = REASON.fullmatch(reason)
    assert m and int(m.group(2)) == limit and int(m.group(1)) > limit
    assert_terminal_invariants(rd)


def test_local_limit_is_n_ctx_and_counts_the_prompt_text_only(tmp_path: Path) -> None:
    """The local server shortens the output to fit and the schema becomes a grammar: only the
    messages count against local.n_ctx."""
    cfg = parse_config({"provider": "local", "local": {"n_ctx": 1024},
                        "model": {"name": "m", "max_output_tokens": 3000}},
                       file="c.yaml", config_dir=str(tmp_path))
    lim = ContextLimits.from_config(cfg, "chat", "llama_cpp")
    assert lim.limit("m") == 1024
    spec = {"model": "m", "messages": [{"role": "user", "content": "x" * 3600}],
            "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                       "required": ["a"], "additionalProperties": False},
            "schema_name": "a", "params": {"max_output_tokens": 3000}}
    assert lim.check_spec(spec) is None  # ~900 tokens of text < 1,024; output not counted
    spec["messages"] = [{"role": "user", "content": "x" * 4400}]
    assert lim.check_spec(spec) == f"prompt_too_long: ~{1100 + 8 + 32} tokens > limit 1024"
    # The same request to an OpenAI-compatible endpoint: the body and the output count.
    api_cfg = parse_config({"model": {"name": "m", "max_output_tokens": 3000,
                                      "max_context_tokens": 4000}},
                           file="c.yaml", config_dir=str(tmp_path))
    spec["messages"] = [{"role": "user", "content": "x" * 3600}]
    why = ContextLimits.from_config(api_cfg, "responses", "openai").check_spec(spec)
    assert why is not None and why.endswith("tokens > limit 4000")


def test_a_replan_does_not_revive_the_old_plans_too_long_requests(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: Any
) -> None:
    """Plan 1 was skipped in full (a limit below its prompts). Replanned with another
    max_output_tokens and a larger limit: plan 2's requests are sent, but plan 1's skipped
    requests, which would fit now, stay skipped: the replan superseded them, and sending
    them would pay for answers no export holds."""
    from helpers import make_cfg

    monkeypatch.setenv(KEY_ENV, SECRET)
    base = {"recipe_options": {"diversity": False, "calls_per_task": 2}}
    small = make_cfg(tmp_path, fake_openai.base_url,
                     {**base, "model": {"max_context_tokens": 4100}}, tasks=2)
    s = api.run(small, "R")
    assert s.counts == {"skipped": 4} and not fake_openai.requests
    bigger = make_cfg(tmp_path, fake_openai.base_url,
                      {**base, "model": {"max_output_tokens": 3000, "max_context_tokens": LIMIT}},
                      tasks=2)
    s = api.run(bigger, "R", resume=True, replan=True)
    assert s.status == "completed", s
    rd = tmp_path / "runs" / "R"
    assert len(fake_openai.requests) == 4
    assert ledger_rows(rd, "SELECT u.plan, COUNT(*) FROM attempts a JOIN units u USING (unit_id) "
                           "GROUP BY 1") == [(2, 4)]
    assert [(p, st) for p, st, _r in ledger_rows(
        rd, "SELECT plan, state, reason FROM units WHERE plan=1")] == [(1, "skipped")] * 4
