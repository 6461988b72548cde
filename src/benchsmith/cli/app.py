"""benchsmith command line. Parses, calls benchsmith.api, renders progress. No logic here."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from benchsmith import api
from benchsmith.cli.console import STOP_EXIT, RunProgress, err_console, fail, live_line, resume_command
from benchsmith.errors import BenchsmithError
from benchsmith.store.io_errors import os_error_line, sqlite_error_line
from benchsmith.store.rundir import new_run_id

app = typer.Typer(
    name="benchsmith",
    help="Turn code benchmarks into validated, reproducible LLM-generated datasets.\n\n"
    "Quick start:\n\n"
    "  benchsmith init-config my.yaml\n\n"
    "  benchsmith dry-run --config my.yaml\n\n"
    "  benchsmith run --config my.yaml",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

ConfigOpt = typer.Option(..., "--config", "-c", help="YAML run config (see init-config).")
RunIdOpt = typer.Option(
    None, "--run-id",
    help="Run id: the folder name under run_dir (letters, digits, . - _; not starting with .).",
)
ReplanOpt = typer.Option(
    False, "--replan",
    help="The run's plan-shaping settings changed: take them as its next plan (its pending "
    "requests are superseded, completed ones kept). Without it such a run is refused.",
)


@app.command("init-config")
def init_config(
    path: Path = typer.Argument(..., help="Where to write the sample config."),
) -> None:
    """Write a commented sample config.

    Example:

      benchsmith init-config my.yaml
    """
    try:
        api.copy_template(path)
    except BenchsmithError as e:
        fail(e)
    err_console().print(f"wrote {path}; edit it, then: benchsmith dry-run --config {path}")


@app.command("dry-run")
def dry_run(
    config: Path = ConfigOpt,
    run_id: Optional[str] = RunIdOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    replan: bool = ReplanOpt,
) -> None:
    """Load tasks, write manifests and tasks.jsonl, print a cost estimate. Calls no model.

    Examples:

      benchsmith dry-run --config my.yaml

      benchsmith dry-run --config my.yaml --run-id plans_v1 --json

      benchsmith dry-run --config my.yaml --run-id plans_v1 --replan
    """
    console = err_console()
    try:
        cfg = api.load_config(config)
        rep = api.dry_run(cfg, run_id, echo=lambda m: console.print(m, markup=False),
                          replan=replan)
    except BenchsmithError as e:
        fail(e, config)
        return
    est = rep.estimate
    out = {
        "run_dir": str(rep.run_dir),
        "tasks": rep.tasks,
        "requests": rep.units_pending,
        "estimate_first_attempts_usd": round(est.first_attempt_usd, 4),
        "estimate_upper_bound_usd": round(est.upper_bound_usd, 4),
        "priced": est.priced,
    }
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    tasks = ", ".join(f"{k}: {v}" for k, v in rep.tasks.items())
    typer.echo(f"run dir:   {rep.run_dir}")
    typer.echo(f"tasks:     {tasks}")
    typer.echo(f"requests:  {rep.units_pending}")
    if est.priced:
        typer.echo(
            f"cost:      at most ${est.first_attempt_usd:.4f} for first attempts, "
            f"${est.upper_bound_usd:.4f} with every validation retry (upper bounds)"
        )
    else:
        typer.echo("cost:      unknown (no price for the model in `prices`)")


@app.command("run")
def run(
    config: Path = ConfigOpt,
    run_id: Optional[str] = RunIdOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (needs --run-id)."),
    mode: Optional[str] = typer.Option(
        None, "--mode", help="`online` or `batch` (Batch API); default: openai.use_batch_api."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="With --resume: send the failed units again (new attempts)."
    ),
    retry_invalid: bool = typer.Option(
        False, "--retry-invalid",
        help="With --resume: send the invalid units again, with fresh validation retries.",
    ),
    replan: bool = ReplanOpt,
) -> None:
    """Generate the dataset, with a live progress bar.

    Interrupted runs (Ctrl-C, crash, kill -9) continue with --resume: nothing completed is
    sent again. On Ctrl-C/SIGTERM requests in flight get engine.shutdown_grace_s to finish and
    be recorded (exit 130; a second Ctrl-C stops at once). The run stops cleanly before the
    budget could be exceeded (exit 2, also when the server billed past the caps); resume it
    with a larger budget.max_usd. A run that ends with failed or invalid units exits 4; resume
    it with --retry-failed / --retry-invalid to send those again. Every stop prints the exact
    command to continue.

    Examples:

      benchsmith run --config my.yaml

      benchsmith run --config my.yaml --run-id R --resume

      benchsmith run --config my.yaml --mode batch

      benchsmith run --config my.yaml --run-id R --resume --retry-failed

      benchsmith run --config my.yaml --run-id R --resume --replan
    """
    console = err_console()
    say = lambda m: console.print(m, markup=False)  # noqa: E731

    def show_estimate(est: api.Estimate) -> None:
        if est.priced:
            say(f"{est.units} requests to send; upper-bound cost ${est.upper_bound_usd:.4f}")
        else:
            say(f"{est.units} requests to send")

    if run_id is None and not resume:
        run_id = new_run_id()  # named here, so that every resume hint can name it
    cont = resume_command(["run"], config, run_id or "", ["--mode", mode] if mode else [])
    try:
        cfg = api.load_config(config)
        with RunProgress(console, enabled=not quiet) as prog:
            summary = api.run(
                cfg, run_id, resume, mode=mode, echo=say, on_progress=prog.update,
                on_estimate=show_estimate, retry_failed=retry_failed, retry_invalid=retry_invalid,
                replan=replan,
            )
    except KeyboardInterrupt:
        console.print(f"interrupted; continue with: {cont}", markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e, config, ["run", "--mode", mode] if mode else ["run"])
        return
    _print_summary(summary, as_json, cont)
    if summary.stopped:
        raise typer.Exit(STOP_EXIT.get(summary.stopped, 2))
    if summary.status == "completed_with_failures":
        _print_failures(summary, cont)
        raise typer.Exit(4)


def _print_summary(s: api.RunSummary, as_json: bool, cont: str) -> None:
    data: dict[str, Any] = {
        "run_dir": str(s.run_dir),
        "stopped": s.stopped,
        "status": s.status,
        "message": s.message,
        "units": s.counts,
        "spent_usd": round(s.spent_usd, 6),
        "usage": s.usage,
    }
    if s.stopped:
        data["resume"] = cont
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()))
    typer.echo(f"run dir:  {s.run_dir}")
    typer.echo(f"units:    {counts}")
    typer.echo(
        f"tokens:   in {s.usage.get('input_tokens', 0):,} (cached {s.usage.get('cached_input_tokens', 0):,}),"
        f" out {s.usage.get('output_tokens', 0):,}; spent ${s.spent_usd:.4f}"
    )
    if s.stopped:
        typer.echo(f"stopped:  {s.message}")
        typer.echo(f"continue: {cont}")
    elif s.message:
        typer.echo(f"note:     {s.message}")


def _print_failures(s: api.RunSummary, cont: str) -> None:
    """The failure counts and the command that sends those units again (stderr)."""
    flags = "".join(f" --retry-{k}" for k in ("failed", "invalid") if s.failures.get(k))
    err_console().print(f"{s.message}; retry them with: {cont}{flags}", markup=False)


@app.command("status")
def status(
    run_dir: Path = typer.Argument(..., help="The run directory, e.g. runs/R."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
) -> None:
    """Counts per state, tokens, cost and what is left.

    Example:

      benchsmith status runs/20261122-101500-a1b2c3
    """
    try:
        st = api.run_status(run_dir)
    except BenchsmithError as e:
        fail(e)
        return
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        return
    u = st["units"]
    typer.echo(f"run:       {st['run_id']}  ({st['invocations']} invocation(s), last: {st['last_status']})")
    if st["live"]:
        typer.echo(live_line(st["live"]))
    typer.echo("units:     " + ", ".join(f"{k} {v}" for k, v in u.items()))
    for ds, d in st["datasets"].items():
        typer.echo(f"dataset:   {ds}: {d['complete']}/{d['tasks']} tasks complete")
    us = st["usage"]
    typer.echo(
        f"usage:     {us['api_calls']} calls, in {us['input_tokens']:,} "
        f"(cached {us['cached_input_tokens']:,}), out {us['output_tokens']:,}, "
        f"reasoning {us['reasoning_tokens']:,}"
    )
    budget = f" of the ${st['budget_usd']:.4f} budget" if st["budget_usd"] is not None else ""
    typer.echo(f"spent:     ${st['spent_usd']:.4f}{budget}")
    for problem in st["problems"]:
        typer.echo(f"problem:   {problem}")
    typer.echo(f"left:      {u['pending']} request(s) pending")
    for reason, n in st["failure_reasons"].items():
        typer.echo(f"reason:    {n} x {reason}")
    for line in st["recipe_lines"]:  # `label: text`, label padded like the lines above
        label, _, text = line.partition(": ")
        typer.echo(f"{label + ':':<10} {text}")


def _register_all() -> None:
    from benchsmith.cli import (
        batch, check, convert, readable, repo_structure, rollout, sections,
    )

    for mod in (convert, repo_structure, rollout, batch, check, readable, sections):
        mod.register(app)


_register_all()


def main() -> None:
    try:
        app()
    except BenchsmithError as e:  # pragma: no cover - commands catch their own
        err_console().print(f"error: {e}", markup=False)
        sys.exit(1)
    except OSError as e:  # a path the OS refused (unwritable, a file where a folder should be)
        err_console().print(f"error: {os_error_line(e)}", markup=False)
        sys.exit(1)
    except sqlite3.Error as e:  # a ledger problem no layer attributed to a file
        err_console().print(f"error: {sqlite_error_line(e)}", markup=False)
        sys.exit(1)
