"""CLI commands: prepare-sections and merge-sections (logic in benchsmith.sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import err_console
from benchsmith.cli.console import fail as _fail
from benchsmith.errors import BenchsmithError


def prepare_sections(
    config: Path = typer.Option(..., "--config", "-c", help="The main YAML run config."),
    section_size: int = typer.Option(
        ..., "--section-size", help="Tasks per dataset in each section."
    ),
    sections: Optional[int] = typer.Option(
        None, "--sections",
        help="Write at most this many sections; the tasks after them are reported as left "
        "over. Default: as many as needed.",
    ),
    output_dir: Path = typer.Option(
        ..., "--out", "--output-dir", "-o",
        help="Folder for sections_manifest.json and section_XX/."
    ),
    run_prefix: Optional[str] = typer.Option(
        None, "--run-prefix",
        help="Run ids are `<prefix>_section_01`, ...; default: the config's file name.",
    ),
    dataset: Optional[list[str]] = typer.Option(
        None, "--dataset", metavar="NAME",
        help="Dataset to split (repeatable). Default: the swebench_verified and "
        "refactorbench_py datasets of the config.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Rewrite sections already prepared in --out."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON on stdout."),
) -> None:
    """Split a big job into section configs, each run as its own run.

    Tasks of each sectioned dataset (swebench_verified, refactorbench_py) are sorted by id
    after the dataset's own task_ids_file / max_tasks and cut into consecutive chunks of
    --section-size; section k gets chunk k of every dataset. Each section_XX/ holds
    `<dataset>_task_ids.json` and section_config.yaml: the main config with task_ids_file set
    to that list, max_tasks removed and every path absolute (run_dir stays the main one).
    Other datasets (e.g. humaneval) are left out of the sections and named in the manifest.
    Run the sections, check them with `status`, then combine them with `merge-sections`.

    Examples:

      benchsmith prepare-sections -c main.yaml --section-size 25 -o section_runs

      benchsmith prepare-sections -c main.yaml --section-size 25 --sections 4 \\
        -o section_runs --run-prefix full_system

      benchsmith run -c section_runs/section_01/section_config.yaml \\
        --run-id full_system_section_01
    """
    from benchsmith.sections import prepare_sections as prepare

    try:
        plan = prepare(
            config, section_size=section_size, output_dir=output_dir, max_sections=sections,
            run_prefix=run_prefix, datasets=dataset or None, force=force,
        )
    except BenchsmithError as e:
        _fail(e)
    if as_json:
        typer.echo(plan.manifest_path.read_text(encoding="utf-8").rstrip())
        return
    typer.echo(f"manifest:  {plan.manifest_path}")
    for s in plan.sections:
        counts = ", ".join(f"{n} {d['count']}" for n, d in s["datasets"].items())
        typer.echo(f"{s['name']}: {counts}")
    left = {n: c for n, c in plan.leftover.items() if c}
    if left:
        typer.echo(
            "left over: " + ", ".join(f"{n} {c}" for n, c in left.items())
            + " task(s) not in any section (raise --sections to include them)"
        )
    for n in plan.excluded:
        typer.echo(f"excluded:  {n} (not sectioned; run it with the main config)")
    typer.echo("run each section:")
    for cmd in plan.commands:
        typer.echo(f"  {cmd}")
    typer.echo("then merge the approved ones:")
    typer.echo(f"  {plan.merge_command}")


def merge_sections(
    section_run: list[str] = typer.Option(
        ..., "--section-run", metavar="NAME=RUN_DIR",
        help="An approved section run: a name and its run directory (repeatable, in order).",
    ),
    output_run_id: str = typer.Option(
        ..., "--output-run-id", help="Id of the merged run: the new folder under --run-dir."
    ),
    prefer: Optional[list[str]] = typer.Option(
        None, "--prefer", metavar="NAME",
        help="Section that wins when a task is in several sections (repeatable; earlier "
        "wins). The losers' requests and cost for that task are left out of the merge.",
    ),
    run_dir: Optional[Path] = typer.Option(
        None, "--run-dir",
        help="Parent folder of the merged run; default: the first section's folder.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the merge manifest as JSON on stdout."
    ),
) -> None:
    """Merge approved section runs into one new run directory.

    Builds `<run-dir>/<output-run-id>/` with the layout of any run: a new ledger.sqlite with
    every section's tasks, requests (states, results), invocations and attempts (ids
    renumbered; config/merge_attempt_ids.jsonl maps them), and datasets/, failed_plans/,
    manifests/, runs.jsonl and logs/batch_calls.jsonl regenerated from it. prompts/ and
    config/run_config.json come from the first section; each section's config is kept in
    config/sections/NAME.json, and config/merge_manifest.json records sections, task counts,
    tokens and cost.

    A task in two sections is an error unless --prefer names the winner; the other
    section's requests for it, and their tokens and cost, are then left out: merged totals
    are the sum of what is kept, and the cost left out is printed.

    Examples:

      benchsmith merge-sections --section-run s1=runs/full_system_section_01 \\
        --section-run s2=runs/full_system_section_02 --output-run-id merged_001

      benchsmith merge-sections --section-run s1=runs/a --section-run s2=runs/b \\
        --output-run-id merged_002 --prefer s2 --run-dir runs
    """
    from benchsmith.sections import merge_sections as merge
    from benchsmith.sections import parse_section_arg

    try:
        pairs = [parse_section_arg(s) for s in section_run]
        rep = merge(pairs, output_run_id, run_dir=run_dir, prefer=prefer or ())
    except BenchsmithError as e:
        _fail(e)
    console = err_console()
    for w in rep.warnings:
        console.print(f"warning: {w}", markup=False)
    if as_json:
        typer.echo(rep.manifest_path.read_text(encoding="utf-8").rstrip())
        return
    typer.echo(f"run dir:   {rep.run_dir}")
    for s in rep.sections:
        tasks = sum(s["tasks"].values())
        typer.echo(
            f"section:   {s['name']} ({s['path']}): {tasks} task(s), "
            f"{s['usage']['api_calls']} call(s), ${s['spent_usd']:.4f}"
        )
        d = s["dropped"]
        if d["tasks"] or d["usage"]["api_calls"]:
            typer.echo(
                f"dropped:   {s['name']}: {sum(d['tasks'].values())} duplicate task(s), "
                f"{d['usage']['api_calls']} call(s), ${d['spent_usd']:.4f} not in the merged totals"
            )
    t = rep.totals
    us = t["usage"]
    typer.echo("tasks:     " + ", ".join(f"{k}: {v}" for k, v in t["tasks"].items()))
    typer.echo(
        f"usage:     {us['api_calls']} calls, in {us['input_tokens']:,} "
        f"(cached {us['cached_input_tokens']:,}), out {us['output_tokens']:,}"
    )
    typer.echo(f"spent:     ${t['spent_usd']:.4f}")
    if rep.duplicates:
        typer.echo(
            f"duplicates: {rep.duplicates} task(s) resolved by --prefer; "
            f"${rep.dropped_usd:.4f} left out of the totals"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("prepare-sections")(prepare_sections)
    app.command("merge-sections")(merge_sections)
