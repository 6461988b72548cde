"""CLI commands: `batch status|cancel|export|ingest` on a run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from benchsmith import batch_ops
from benchsmith.cli.console import err_console, fail, live_line
from benchsmith.cli.options import command_group
from benchsmith.errors import BenchsmithError
from benchsmith.progress import duration
from benchsmith.store.lock import live_holder

batch_app = command_group(
    "batch", "Batch API jobs of a run, and offline export/ingest of request files.",
    "benchsmith batch status runs/R", rich_markup_mode="markdown",
)

RunDirArg = typer.Argument(..., help="The run directory, e.g. runs/R.")
SHOWN = 10  # failed units / skipped lines listed one per line


@batch_app.command("status")
def status(
    run_dir: Path = RunDirArg,
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Show the ledger only; call no API."),
    as_json: bool = typer.Option(False, "--json", help="Print the batches as JSON on stdout."),
) -> None:
    """The run's batches: ids, status, request counts, time since submission.

    While a run is live (it polls its batches itself) the ledger is shown as it is, with a
    note naming the running process.

    Example:

      benchsmith batch status runs/R
    """
    try:
        rows = batch_ops.batch_status(run_dir, refresh=not no_refresh)
    except BenchsmithError as e:
        fail(e)
    holder = live_holder(run_dir)
    if holder is not None:
        err_console().print(live_line(holder.as_dict()), markup=False)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no batches in this run")
    now = time.time()
    for b in rows:
        rc = b["request_counts"] or {}
        typer.echo(
            f"{b['local_id']}  {b['batch_id'] or '-':<24} {b['status']:<11} {b['model']:<20} "
            f"{rc.get('completed', 0)}/{rc.get('total', b['n_requests'])} done, "
            f"{rc.get('failed', 0)} failed, submitted {duration(now - b['created_at'])} ago"
            f"{'  reconciled' if b['reconciled_at'] else ''}"
        )


@batch_app.command("cancel")
def cancel(run_dir: Path = RunDirArg) -> None:
    """Cancel the run's unfinished batches; `run --resume` reconciles their partial results.

    Works during a run too: the running process records the cancellation and reconciles.

    Example:

      benchsmith batch cancel runs/R
    """
    try:
        ids = batch_ops.batch_cancel(run_dir)
    except BenchsmithError as e:
        fail(e)
    holder = live_holder(run_dir)
    if holder is not None:
        err_console().print(live_line(holder.as_dict()) + "; it records the cancellation",
                            markup=False)
    err_console().print(f"cancel requested for {len(ids)} batch(es)", markup=False)
    for i in ids:
        typer.echo(i)


@batch_app.command("export")
def export(
    run_dir: Path = RunDirArg,
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the request lines (JSONL)."),
    endpoint: Optional[str] = typer.Option(
        None, "--endpoint",
        help="`/v1/responses` or `/v1/chat/completions` (for vLLM run-batch); default: the run's.",
    ),
) -> None:
    """Write the run's pending requests as Batch API lines, for a runner elsewhere.

    Each line is `{custom_id, method, url, body}`; custom_id is the request id in the ledger.
    Feed the results back with `batch ingest`. A request line longer than
    `batch.max_bytes_per_file` is not written: its unit fails, with a warning.

    Examples:

      benchsmith batch export runs/R --out requests.jsonl

      benchsmith batch export runs/R --out vllm_in.jsonl --endpoint /v1/chat/completions
    """
    try:
        rep = batch_ops.export_requests(run_dir, out, endpoint)
    except BenchsmithError as e:
        fail(e)
    console = err_console()
    console.print(f"wrote {rep.written} pending request(s) to {out}", markup=False)
    for uid, reason in rep.failed[:SHOWN]:
        console.print(f"warning: unit {uid} failed, not written: {reason}", markup=False)
    if len(rep.failed) > SHOWN:
        console.print(f"warning: {len(rep.failed) - SHOWN} more unit(s) failed the same way",
                      markup=False)


@batch_app.command("ingest")
def ingest(
    run_dir: Path = RunDirArg,
    files: list[Path] = typer.Argument(..., help="Result files: output (and error) JSONL."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Reconcile result lines into the run, as the batch executor does.

    Accepts OpenAI output and error files and vLLM run-batch output. Lines already
    ingested are skipped; ids unknown to the run are reported and ignored. A failed line
    counts as its HTTP status would online: 429/5xx stay pending (exported again), other
    4xx fail. Lines without a custom_id are counted, with a note each.

    Examples:

      benchsmith batch ingest runs/R results.jsonl errors.jsonl

      benchsmith batch ingest runs/R vllm_out.jsonl
    """
    try:
        rep = batch_ops.batch_ingest(run_dir, files)
    except BenchsmithError as e:
        fail(e)
    data = {"lines": rep.lines, "already_ingested": rep.skipped_seen, **rep.counts,
            "unknown_ids": rep.unknown_ids, "notes": rep.notes, "problems": rep.problems}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for k, v in data.items():
        if k not in ("notes", "problems"):
            typer.echo(f"{k}: {v}")
    for note in rep.notes[:SHOWN]:
        err_console().print(f"note: {note}", markup=False)
    for problem in rep.problems:
        typer.echo(f"problem: {problem}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(batch_app, name="batch")
