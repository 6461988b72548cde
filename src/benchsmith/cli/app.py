"""benchsmith command line. Parses, calls benchsmith.api, renders progress. No logic here."""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import sys
from pathlib import Path
from typing import Optional

import typer

import benchsmith
from benchsmith import api
from benchsmith.cli.console import calls_text, err_console, fail, live_line, load_config_noting
from benchsmith.cli.options import HELP_OPTIONS  # also: flags shown without a type
from benchsmith.cli.run_cmd import parse_option_flags
from benchsmith.cli.usage import OneLineUsageGroup
from benchsmith.config import with_recipe
from benchsmith.errors import BenchsmithError
from benchsmith.store.io_errors import os_error_line, sqlite_error_line
from benchsmith.store.leak_rows import describe as describe_leaks

app = typer.Typer(
    name="benchsmith",
    cls=OneLineUsageGroup,  # usage errors: one line, exit 2
    help="Turn code benchmarks into validated, reproducible LLM-generated datasets.\n\n"
    "Quick start:\n\n"
    "  benchsmith init-config my.yaml\n\n"
    "  benchsmith dry-run --config my.yaml\n\n"
    "  benchsmith run --config my.yaml",
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)



def package_version() -> str:
    """The installed package's version; the source's own when run uninstalled."""
    try:
        return importlib.metadata.version("benchsmith")
    except importlib.metadata.PackageNotFoundError:
        return benchsmith.__version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"benchsmith {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit."),
) -> None:
    pass


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
    recipe: Optional[str] = typer.Option(
        None, "--recipe", help="Plan this recipe instead of the config's `recipe`."),
    option: Optional[list[str]] = typer.Option(
        None, "--option", "-O", metavar="NAME=VALUE",
        help="A recipe option, NAME=VALUE (repeatable)."),
) -> None:
    """Load tasks, write manifests and tasks.jsonl, print a cost estimate. Calls no model.

    Examples:

      benchsmith dry-run --config my.yaml

      benchsmith dry-run --config swe.yaml --recipe agentless_bugfix --option passk=4

      benchsmith dry-run --config my.yaml --run-id plans_v1 --json

      benchsmith dry-run --config my.yaml --run-id plans_v1 --replan
    """
    console = err_console()
    try:
        cfg = load_config_noting(config, console, recipe)
        if option:
            cfg = with_recipe(cfg, **parse_option_flags(option))
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
        # Unknown (a model without a price) is null: 0 would read as free.
        "estimate_first_attempts_usd": round(est.first_attempt_usd, 4) if est.priced else None,
        "estimate_upper_bound_usd": round(est.upper_bound_usd, 4) if est.priced else None,
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
    typer.echo(f"calls:     {calls_text(st['calls'])}")
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
    waiting = st["pending_units"]
    typer.echo(f"left:      {u['pending']} request(s) pending: {waiting['awaiting_answer']} "
               f"awaiting an answer, {waiting['not_sent']} not sent yet")
    for reason, n in st["failure_reasons"].items():
        typer.echo(f"reason:    {n} x {reason}")
    if st["gold_leaks"]["requests"] or st["gold_leaks"]["redacted"]:
        typer.echo(f"leaks:     {describe_leaks(st['gold_leaks'])}")
    for line in st["recipe_lines"]:  # `label: text`, label padded like the lines above
        label, _, text = line.partition(": ")
        typer.echo(f"{label + ':':<10} {text}")


def _register_all() -> None:
    from benchsmith.cli.options import flags_take_no_value

    flags_take_no_value()
    from benchsmith.cli import (
        batch, check, convert, export, finetune, infbench, leaks, readable, repo_structure,
        report, run_cmd, sections, skyrl,
    )

    for mod in (run_cmd, convert, repo_structure, infbench, finetune, skyrl, batch, check, readable,
                export, report, sections, leaks):
        mod.register(app)
    run_cmd.register_recipe_verbs(app)  # last: a recipe's command never shadows these


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
