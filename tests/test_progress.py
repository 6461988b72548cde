"""Progress of real runs against the fake server: the total known up front, the bar at 80
columns keeping count, cost, rate and ETA (never cut to an ellipsis), plain lines without a
terminal, batch states, and --quiet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from benchsmith import api
from benchsmith.cli.console import RunProgress
from benchsmith.progress import Meter, batch_line, fields, fit, plain_line
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, cfg_dict, cli_env, make_cfg, run_cli, write_yaml

TASKS, CALLS = 4, 3  # the plans recipe's diversity chain: call k+1 is planned after call k
MODEL = "gpt-test"
PRICED = {"model": {"name": MODEL}, "prices": {MODEL: {"input": 0.25, "output": 2.0}},
          "recipe_options": {"calls_per_task": CALLS}}
LINE = re.compile(r"^generating: (\d+)/(\d+) \((\d+)%\), (\d+) failed, \$(\d+\.\d{4}), "
                  r"(--|[\d.,]+) req/s, elapsed \d+:\d\d:\d\d, ETA (--:--|\d+:\d\d:\d\d)$")


def test_bar_fits_80_columns_with_count_cost_rate_eta(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = make_cfg(tmp_path, fake_openai.base_url, PRICED, tasks=TASKS)
    live = Console(width=80, force_terminal=True, record=True)
    totals: list[int] = []
    with RunProgress(live, True) as prog:
        def on_progress(s: object) -> None:
            totals.append(s.total)  # type: ignore[attr-defined]
            prog.update(s)  # type: ignore[arg-type]

        summary = api.run(cfg, "R", on_progress=on_progress)
    assert summary.counts == {"ok": TASKS * CALLS}
    # every later call of each chain counted before it was planned: the total never moved
    assert set(totals) == {TASKS * CALLS}
    assert "…" not in live.export_text()

    for width in (80, 60, 45):
        out = Console(width=width, force_terminal=True, record=True)
        out.print(prog)
        text = out.export_text().rstrip("\n")
        assert len(text) <= width and "…" not in text and "\n" not in text
        assert f"{TASKS * CALLS}/{TASKS * CALLS}" in text
        assert f"${summary.spent_usd:.4f}" in text and summary.spent_usd > 0
        assert re.search(r"[\d.]+ req/s", text) and "ETA 0:00:00" in text


def test_fit_drops_by_priority_never_cuts() -> None:
    meter = Meter("generating", clock=iter([0.0, 0.0, 30.0]).__next__)
    meter.read(0, 1000)
    snap = meter.read(250, 1000, failed=7, invalid=3, retries=2, tokens=12345,
                      cost_usd=1.5, note="HumanEval/0")
    items = fields(snap)
    texts = [t for _, t in items]
    for width in range(10, 160):
        kept, bar = fit(items, width)
        assert all(t in texts for t in kept)  # whole fields only, in their order
        assert [texts.index(t) for t in kept] == sorted(texts.index(t) for t in kept)
        shown = sum(len(t) for t in kept if t != "\0bar") + bar + max(0, len(kept) - 1)
        assert shown <= width
        if width >= 40:  # count, ETA, rate and cost come first
            assert {"250/1,000", "ETA 0:01:30", "8.3 req/s", "$1.5000"} <= set(kept)
    assert plain_line(snap) == ("generating: 250/1,000 (25%), 7 failed, 3 invalid, $1.5000, "
                                "8.3 req/s, elapsed 0:00:30, ETA 0:01:30")


def _cli_run(tmp_path: Path, server: FakeOpenAI, *extra: str, over: dict | None = None,
             run_id: str = "R"):
    d = cfg_dict(tmp_path, server.base_url, {
        **PRICED, "engine": {"progress_interval_s": 0.2, "concurrency": 2},
        "batch": {"poll_interval_s": 0.05, "max_poll_interval_s": 0.1}, **(over or {})},
        tasks=TASKS)
    config = write_yaml(tmp_path / "run.yaml", d)
    return run_cli(["run", "--config", str(config), "--run-id", run_id, *extra],
                   env=cli_env(**{KEY_ENV: SECRET}), timeout=120)


def test_plain_lines_without_a_terminal(tmp_path: Path) -> None:
    server = FakeOpenAI(latency=0.15).start()  # 12 requests, 2 at a time: about 1 s
    try:
        res = _cli_run(tmp_path, server)
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("generating:")]
    assert len(lines) >= 3, res.stderr
    parsed = [LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    done = [int(m.group(1)) for m in parsed]  # type: ignore[union-attr]
    assert {int(m.group(2)) for m in parsed} == {TASKS * CALLS}  # type: ignore[union-attr]
    assert done == sorted(done) and done[-1] == TASKS * CALLS
    assert parsed[-1].group(7) == "0:00:00"  # type: ignore[union-attr]
    assert any(m.group(6) != "--" for m in parsed)  # type: ignore[union-attr]
    assert "\x1b[" not in res.stderr  # no bar drawn where there is no terminal


def test_quiet_silences_progress_but_not_errors(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    res = _cli_run(tmp_path, fake_openai, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "generating" not in res.stderr
    fake_openai.stop()  # nothing answers now: every request fails, and the run says so
    res = _cli_run(tmp_path, fake_openai, "--quiet", run_id="R2")
    assert res.returncode == 4, res.stderr
    assert "retry them with:" in res.stderr and "generating" not in res.stderr


def test_batch_mode_shows_each_batch(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    res = _cli_run(tmp_path, fake_openai, "--mode", "batch",
                   over={"recipe_options": {"calls_per_task": 1}})
    assert res.returncode == 0, res.stderr
    batch = re.compile(r"^batch (b[0-9a-f]+) \((batch_\w+)\): (\w+), (\d+)/(\d+) done, "
                       r"(\d+) failed, submitted \d+:\d\d:\d\d ago$")
    seen = [m.groups() for ln in res.stderr.splitlines() if (m := batch.match(ln))]
    assert seen, res.stderr
    assert seen[-1][2] == "completed" and seen[-1][3:5] == (str(TASKS), str(TASKS))
    assert len({s[2] for s in seen}) >= 2  # its state as it moved, not only the end
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("generating:")]
    assert lines and lines[-1].startswith(f"generating: {TASKS}/{TASKS} (100%)")


def test_batch_line_format() -> None:
    from benchsmith.progress import BatchView

    b = BatchView("b1", "batch_9", "in_progress", 120, 3, 500, created_at=1000.0)
    assert batch_line(b, 1000.0 + 3725) == ("batch b1 (batch_9): in_progress, 120/500 done, "
                                             "3 failed, submitted 1:02:05 ago")


def test_meter_rate_restarts_with_new_work() -> None:
    """`infbench run` runs one model after another, each counting from 0."""
    times = iter([0.0, 0.0, 10.0, 20.0, 21.0, 25.0])  # the first: its start
    meter = Meter("m", clock=times.__next__)
    meter.read(0, 100)
    assert meter.read(50, 100).rate == 5.0
    meter.read(100, 100)
    meter.read(0, 40)  # the next model
    snap = meter.read(20, 40)
    assert snap.rate == 5.0 and snap.eta_s == 4.0
