"""All terminal output: messages and the live progress bar go to stderr."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from benchsmith.engine.online import Stats


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


def counting_progress(label: str, console: Console, enabled: bool = True) -> Progress:
    """A bar of `label`, done/total, a `info` field, elapsed time and ETA; drawn only on a
    terminal (`enabled`: not --quiet)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not (enabled and console.is_terminal),
    )


class RunProgress:
    """done/failed/tokens/$/ETA. Off when stderr is not a terminal or with --quiet."""

    def __init__(self, console: Console, enabled: bool):
        self.enabled = enabled and console.is_terminal
        self.console = console
        self._last = 0.0
        self._p = counting_progress("generating", console, self.enabled)
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._p.start()
            self._task = self._p.add_task("run", total=None, info="")
        return self

    def __exit__(self, *_: Any) -> None:
        if self.enabled:
            self._p.stop()

    def update(self, s: Stats) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and s.done < s.total:
            return
        self._last = now
        info = (
            f"ok {s.ok} invalid {s.invalid} failed {s.failed} retries {s.retries} "
            f"tok {s.input_tokens + s.output_tokens:,} ${s.cost_usd:.4f}"
        )
        self._p.update(self._task, total=s.total, completed=s.done, info=info)


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
