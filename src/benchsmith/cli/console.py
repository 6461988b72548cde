"""All terminal output: messages and the live progress bar go to stderr."""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from benchsmith.engine.exec_common import Stats
from benchsmith.progress import BAR, BatchView, Meter, Snapshot, batch_line, fields, fit, plain_line
from benchsmith.store.batches import TERMINAL_BATCH


# Exit codes of a run that stopped before the end (0: finished, 1: error).
STOP_EXIT = {"stopped_budget": 2, "stopped_auth": 3, "interrupted": 130}


def resume_command(command: Sequence[str], config: Path, run_id: str,
                   extra: Sequence[str] = ()) -> str:
    """The exact command that continues a run: `benchsmith <command> --config <path> ...`."""
    words = ["benchsmith", *command, "--config", str(config), *extra,
             "--run-id", run_id, "--resume"]
    return " ".join(shlex.quote(w) for w in words)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class LiveProgress:
    """The progress of long work on stderr: a one-line bar on a terminal (fields dropped by
    priority to fit its width, never cut), otherwise a plain line every `interval_s` seconds
    (and one at the end); nothing when not `enabled` (--quiet). Updates only store the
    counts: drawing happens at most `refresh_per_second` times, off the caller's path.

    `update(done, total, ...)` for counted work; `RunProgress.update(stats)` for a run."""

    def __init__(self, console: Console, label: str, enabled: bool = True,
                 interval_s: float = 10.0, unit: str = "item", refresh_per_second: float = 4):
        self.console = console
        self.mode = "off" if not enabled else "bar" if console.is_terminal else "lines"
        self.enabled = self.mode == "bar"  # a bar is drawn (the old meaning, for callers)
        self.interval_s = interval_s
        self.meter = Meter(label, unit)
        self._rps = refresh_per_second
        self._counts: dict[str, Any] = {"done": 0, "total": None}
        self._live: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown: dict[str, tuple[str, int, int]] = {}  # batch -> (state, done, failed) logged
        self._lock = threading.Lock()
        self._logged = False

    def __enter__(self) -> LiveProgress:
        if self.mode == "bar":
            from rich.live import Live

            self._live = Live(self, console=self.console, refresh_per_second=self._rps,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        elif self.mode == "lines":
            self._thread = threading.Thread(target=self._log_every, daemon=True,
                                            name="benchsmith-progress")
            self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self._live is not None:
            self._live.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            # Where it ended, after lines before it (short work has only its summary); an
            # error says so itself, in one line.
            if exc_type is None and self._logged:
                self._log()

    def update(self, done: int, total: int | None, **counts: Any) -> None:
        """done/total and the Meter's other counts (failed, cost_usd, note, ...)."""
        first = self._counts["total"] is None and not self._counts["done"]
        self._counts = {"done": done, "total": total, **counts}
        if first and self.mode != "off":
            self.snapshot()  # the rate counts from here

    def snapshot(self) -> Snapshot:
        return self.meter.read(**self._counts)

    # -- a terminal: a Live of this renderable, redrawn by rich -------------------------------
    def __rich_console__(self, console: Console, options: Any) -> Any:
        snap = self.snapshot()
        texts, bar = fit(fields(snap), options.max_width)
        line = Text(no_wrap=True, overflow="crop")
        for i, t in enumerate(texts):
            if i:
                line.append(" ")
            if t == BAR:
                filled = bar * snap.done // snap.total if snap.total else 0
                line.append("━" * filled, style="magenta")
                line.append("━" * (bar - filled), style="grey23")
            else:
                line.append(t, style="bold" if i == 0 and t == snap.label else "")
        yield line
        now = time.time()
        open_ = [b for b in snap.batches if b.status not in TERMINAL_BATCH]
        for b in open_[:MAX_BATCHES]:
            yield Text(batch_line(b, now), no_wrap=True, overflow="ellipsis")
        if len(open_) > MAX_BATCHES:
            yield Text(f"... and {len(open_) - MAX_BATCHES} more open batches")

    # -- no terminal: plain lines -----------------------------------------------------------
    def _log_every(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._log()

    def _log(self) -> None:
        snap = self.snapshot()
        if snap.total is None and not snap.done:
            return  # nothing counted yet
        self._logged = True
        self.console.print(plain_line(snap), markup=False, highlight=False)
        self._log_batches(snap.batches)

    def _log_batches(self, batches: tuple[BatchView, ...]) -> None:
        """A line for each batch whose state or counts changed since its last one."""
        now = time.time()
        with self._lock:
            for b in batches:
                seen = (b.status, b.completed, b.failed)
                if self._shown.get(b.local_id) != seen:
                    self._shown[b.local_id] = seen
                    self.console.print(batch_line(b, now), markup=False, highlight=False)


MAX_BATCHES = 5  # open batches listed under the bar


class RunProgress(LiveProgress):
    """A run's progress: done/total requests (later stages counted up front), failed,
    cost, rate and ETA; on_progress of the engines, which call it on every finished unit."""

    def __init__(self, console: Console, enabled: bool, interval_s: float = 10.0,
                 label: str = "generating"):
        super().__init__(console, label, enabled, interval_s, unit="req")
        self._stats: Stats | None = None

    def update(self, s: Stats) -> None:  # type: ignore[override]
        first = self._stats is None
        self._stats = s  # read when drawn: the engine's own counters, no copy here
        if first and self.mode != "off":
            self.snapshot()  # the rate counts from here: not from work done before a resume
        if s.batches and self.mode == "lines":
            self._log_batches(s.batches)  # as the batches are polled, not only every interval

    def snapshot(self) -> Snapshot:
        s = self._stats
        if s is None:
            return self.meter.read(0, None)
        return self.meter.read(s.done, s.total, failed=s.failed, invalid=s.invalid,
                               retries=s.retries, tokens=s.input_tokens + s.output_tokens,
                               cost_usd=s.cost_usd, batches=s.batches)


def live_line(holder: dict[str, Any]) -> str:
    """`live: run in progress (...)` for a run whose lock is held (readers say so)."""
    who = f"pid {holder['pid']}, {holder['command']}, started {holder['started']}"
    return f"live:      run in progress ({who if holder['pid'] else 'holder unknown'})"


def calls_text(c: dict[str, Any]) -> str:
    """`status`'s calls line: in flight (online, in batches by status), finished, unsettled."""
    where = []
    if c["in_flight_online"]:
        where.append(f"{c['in_flight_online']} online")
    if c["open_batches"]:
        states = ", ".join(f"{s} {n}" for s, n in c["open_batches"].items())
        where.append(f"{c['in_flight_batch']} in {sum(c['open_batches'].values())} "
                     f"batch(es): {states}")
    text = f"{c['in_flight']} in flight" + (f" ({'; '.join(where)})" if where else "")
    text += f", {c['finished']} finished"
    if c["unsettled"]:
        text += (f", {c['unsettled']} unsettled (sent by an invocation that ended without "
                 "their answer; counted at their reservation, sent again on resume)")
    return text


MAX_SHOWN = 5  # problems shown per failed check in the table; --json has them all


def print_check_table(title: str, results: Sequence[Any], live: dict[str, Any] | None) -> None:
    """validate-run's table (`results`: its CheckResults) and a closing ok/FAIL line;
    `live`: the holder of a live run, whose files lag the ledger until it ends."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for r in results:
        if r.skipped:
            table.add_row(r.name, Text("skipped", style="yellow"), Text(r.detail))
            continue
        if r.ok:
            table.add_row(r.name, Text("ok", style="green"), Text(r.detail))
            continue
        shown = r.problems[:MAX_SHOWN]
        more = len(r.problems) - len(shown)
        lines = shown + ([f"... and {more} more (see --json)"] if more > 0 else [])
        # Text, not markup: problems quote file contents such as "[...]".
        table.add_row(r.name, Text("FAIL", style="bold red"), Text("\n".join(lines)))
    console = Console(highlight=False, soft_wrap=False)
    if live is not None:
        console.print(live_line(live) + "; its files lag the ledger until it ends", markup=False)
    console.print(table)
    failed = [r.name for r in results if not r.ok]
    skipped = [r.name for r in results if r.skipped]
    if failed:
        console.print(f"FAIL: {len(failed)} check(s) failed: {', '.join(failed)}", markup=False)
    elif skipped:
        console.print(f"ok: {len(results) - len(skipped)} check(s) passed, {len(skipped)} "
                      "skipped while the run is live; run validate-run again once it has ended",
                      markup=False)
    else:
        console.print(f"ok: all {len(results)} checks passed", markup=False)


def is_tty() -> bool:
    return sys.stderr.isatty()


def fail(e: BaseException, config: Any = None, command: Sequence[str] = ("run",)) -> NoReturn:
    """Print a one-line error (escaped: messages may hold `[...]`) and exit non-zero.

    `config`, `command` (its words, with the options to repeat): the running command and its
    --config, named in the resume command of a run that stopped on a full disk.
    """
    if config is not None and hasattr(e, "config"):
        e.config, e.command = str(config), tuple(command)
    err_console().print(f"[red]error:[/red] {escape(str(e))}", markup=True, highlight=False)
    raise typer.Exit(getattr(e, "exit_code", 1))


def load_config_noting(config: Path, console: Console, recipe: str | None = None) -> Any:
    """The run config, with its deprecation notes (old section names) on stderr."""
    from benchsmith import api

    cfg = api.load_config(config, recipe=recipe)
    for note in cfg.deprecations:
        console.print(f"warning: {note}", markup=False)
    return cfg
