"""CLI commands: `convert <benchmark>` turns a benchmark checkout into a JSONL a source loads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import LiveProgress, err_console, fail
from benchsmith.cli.options import command_group, limit_option, quiet_option
from benchsmith.errors import BenchsmithError
from benchsmith.sources.refactorbench_convert import convert_refactorbench, write_rows

convert_app = command_group(
    "convert",
    "Convert a benchmark checkout into the JSONL file a dataset source loads.",
    "benchsmith convert refactorbench --refactorbench-root RefactorBench "
    "--variant descriptive --out data/refactorbench_py.jsonl",
)


@convert_app.command("refactorbench")
def refactorbench(
    refactorbench_root: Path = typer.Option(
        ...,
        "--refactorbench-root",
        help="Checkout of github.com/microsoft/RefactorBench (with problems/, tests/, scripts/, "
        "repositories/).",
    ),
    variant: str = typer.Option(
        ..., "--variant", help="Instruction variant: base, descriptive or lazy."
    ),
    output: Path = typer.Option(
        ..., "--out", "--output", "-o", help="JSONL file to write (replaced atomically)."
    ),
    limit: Optional[int] = limit_option("Keep the first N tasks after sorting by task id."),
    include_test_source: bool = typer.Option(
        False,
        "--include-test-source",
        help="Also store each task's test file text as `test_source` (a gold field, never "
        "put in a prompt).",
    ),
    quiet: bool = quiet_option(),
) -> None:
    """Write one JSONL row per RefactorBench task for the `refactorbench_py` source.

    Rows: task_id, repo_dir, upstream_repo, variant, instruction, problem_file,
    test_file (paired by `scripts/<variant>_mapping.py`), files (the source files
    the instruction names) and, with --include-test-source, test_source.

    Load the output with: `datasets: {refactorbench_py: {path: <output>}}`

    Examples:

      benchsmith convert refactorbench --refactorbench-root ../RefactorBench --variant descriptive --out data/refactorbench_py.jsonl

      benchsmith convert refactorbench --refactorbench-root ../RefactorBench --variant lazy --output data/rb_lazy.jsonl --limit 10 --include-test-source
    """
    console = err_console()
    try:
        with LiveProgress(console, "convert refactorbench", not quiet, unit="task") as progress:
            rows = convert_refactorbench(refactorbench_root, variant, limit=limit,
                                         include_test_source=include_test_source,
                                         progress=progress.update)
        n = write_rows(output, rows)
    except BenchsmithError as e:
        fail(e)
    paired = sum(1 for r in rows if r["test_file"])
    source = "with" if include_test_source else "without"
    console.print(
        f"wrote {n} rows ({variant} variant, {paired} with a test file, {source} test source) "
        f"to {output}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(convert_app, name="convert")
