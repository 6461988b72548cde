"""CLI commands: `repo-structure build` (logic in benchsmith.sources.repo_structure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import LiveProgress, err_console, fail
from benchsmith.cli.options import command_group, json_option, limit_option, quiet_option
from benchsmith.errors import BenchsmithError

repo_structure_app = command_group(
    "repo-structure",
    "Agentless repo-structure files (repository tree, classes, functions, file text) "
    "for SWE-bench instances.",
    "benchsmith repo-structure build --repos-dir ~/repos --dataset swe.jsonl.gz "
    "--out structures/",
)


@repo_structure_app.command("build")
def build(
    repos_dir: Path = typer.Option(
        ..., "--repos-dir",
        help="Folder of local clones, each named `<owner>__<name>` or `<name>` "
        "(e.g. django__django or django). Read with git only; checkouts are not touched.",
    ),
    dataset: str = typer.Option(
        ..., "--dataset", metavar="PATH_OR_NAME",
        help="SWE-bench rows: a .jsonl/.jsonl.gz/.parquet file, or swebench_verified, "
        "swebench_lite, swebench or a Hugging Face owner/name (needs `datasets`).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for `<instance_id>.json` files (Agentless layout)."
    ),
    instance_ids: Optional[Path] = typer.Option(
        None, "--instance-ids", metavar="FILE",
        help="Only these instances: a JSON list of ids or one id per line.",
    ),
    limit: Optional[int] = limit_option(
        "Build at most N instances (sorted by id, after --instance-ids)."
    ),
    split: str = typer.Option("test", "--split", help="Split of a Hugging Face dataset name."),
    force: bool = typer.Option(
        False, "--force", help="Rebuild files already in --out (default: keep them)."
    ),
    quiet: bool = quiet_option(),
    as_json: bool = json_option("the summary"),
) -> None:
    """Write `<out>/<instance_id>.json` for each SWE-bench instance, from its local clone at
    base_commit.

    The tree and blobs are read with `git ls-tree` / `git cat-file`, never `git checkout`:
    your working tree, index and HEAD stay as they are. Python files are parsed with `ast`
    (classes, methods, functions with line numbers and text). Instances whose clone or
    commit is missing are reported and skipped; the exit status is 1 only when no file is
    available. Point `recipe_options.structure_dir` at --out to use the files.

    Examples:

      benchsmith repo-structure build --repos-dir ~/repos \\
        --dataset ../shared/data/swebench_lite/swebench_lite_test.jsonl.gz --out structures/

      benchsmith repo-structure build --repos-dir ~/repos --dataset swebench_verified \\
        --out structures/ --instance-ids ids.txt --limit 20

      benchsmith repo-structure build --repos-dir ~/repos --dataset swe.jsonl \\
        --out structures/ --force --quiet
    """
    from benchsmith.sources.repo_structure import (
        Instance,
        build_dataset_structures,
        load_instances,
    )

    console = err_console()
    try:
        instances = load_instances(
            dataset, split=split, instance_ids_file=instance_ids, limit=limit
        )
    except BenchsmithError as e:
        fail(e)
    progress = LiveProgress(console, "repo structures", not quiet, unit="inst")
    seen = {"done": 0, "failed": 0}

    try:
        with progress:
            progress.update(0, len(instances))

            def on_instance(inst: Instance, status: str, reason: str | None) -> None:
                seen["done"] += 1
                if status == "skipped":
                    seen["failed"] += 1
                    console.print(f"skipped {inst.instance_id}: {reason}", markup=False,
                                  highlight=False)
                progress.update(seen["done"], len(instances), failed=seen["failed"],
                                note=inst.instance_id)

            report = build_dataset_structures(
                instances, repos_dir=repos_dir, out_dir=out, force=force, on_instance=on_instance
            )
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to continue (built files are "
                      "kept)", markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e)

    summary = {
        "out_dir": str(report.out_dir),
        "instances": len(instances),
        "built": len(report.built),
        "already_there": len(report.existing),
        "skipped": [{"instance_id": i, "reason": r} for i, r in report.skipped],
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(
            f"built {len(report.built)}, already there {len(report.existing)}, skipped "
            f"{len(report.skipped)} of {len(instances)} instance(s) -> {report.out_dir}"
        )
    if report.available == 0:
        if report.skipped:
            first_id, first_reason = report.skipped[0]
            fail(BenchsmithError(
                f"no repo structure built: {len(report.skipped)} instance(s) skipped, e.g. "
                f"{first_id}: {first_reason}"
            ))
        fail(BenchsmithError(f"no instance selected from {dataset}; check --instance-ids/--limit"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(repo_structure_app, name="repo-structure")
