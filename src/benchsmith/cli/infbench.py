"""CLI commands: `infbench build`, `infbench merge-infbench` (logic in
benchsmith.sources.editbench). Other modules add commands to `infbench_app`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import LiveProgress, err_console, fail
from benchsmith.cli.options import command_group, json_option, quiet_option
from benchsmith.errors import BenchsmithError, ConfigError

DATA = "../shared/data/realisticeditbench/work_patch_list_from_patch_histories.jsonl.gz"

infbench_app = command_group(
    "infbench",
    "Edit-history benches (RealisticEditBench): build infbench files (the first steps of a "
    "pull request's edits as history, the rest to predict), merge them, run models on them "
    "(results per model), merge and score the results.",
    f"benchsmith infbench build --bench {DATA} --save-path "
    "infbench/all-task-instances_0.2.jsonl --info-pct 0.2",
)


def at_least(value: float | None, low: float, option: str) -> None:
    """A one-line error for a number below its minimum (click's own is a framed box)."""
    if value is not None and not value >= low:
        raise ConfigError(option, "", f"must be at least {low:g}, got {value:g}")


def _info_pct(value: Optional[str]) -> Optional[float]:
    """A float in (0, 1), or None / "None" (no history: everything is to predict)."""
    if value is None or value.strip() in ("None", "none", ""):
        return None
    try:
        p = float(value)
    except ValueError:
        raise ConfigError("--info-pct", "", f"{value!r} is not a number: give a fraction "
                          "such as 0.2, or None") from None
    if not 0 < p <= 1:
        raise ConfigError("--info-pct", "", f"{value} is outside (0, 1]: give a fraction "
                          "such as 0.2, or None")
    return p


@infbench_app.command("build")
def build(
    bench: str = typer.Option(
        ..., "--bench", metavar="PATH_OR_NAME",
        help="Bench rows: a .jsonl/.jsonl.gz/.parquet file, or a Hugging Face owner/name "
        "(split test; owner/name:SPLIT for another; needs `datasets`).",
    ),
    save_path: Path = typer.Option(
        ..., "--save-path",
        help="The infbench file to write, named `<name>-task-instances_<run_id>.jsonl` "
        "(the run id is what follows `task-instances_`).",
    ),
    info_pct: Optional[str] = typer.Option(
        None, "--info-pct", metavar="P",
        help="Share of the steps shown as history: k = min(max(floor(P*n + 0.5), 1), n-1). "
        "Default None: no history, every step is to predict.",
    ),
    no_pr_mes: bool = typer.Option(False, "--no-pr-mes", help="Leave the PR title/body out."),
    no_issue_mes: bool = typer.Option(
        False, "--no-issue-mes", help="Leave the linked issue text out."),
    use_bm25: bool = typer.Option(
        False, "--use-bm25",
        help="Code context: the top-n files by BM25 at base_commit (needs --repos-dir and "
        "base_commit; otherwise oracle, noted per row).",
    ),
    topn: int = typer.Option(10, "--topn", help="Files of BM25 context (at least 1)."),
    repos_dir: Optional[Path] = typer.Option(
        None, "--repos-dir",
        help="Folder of local clones named `<owner>__<name>` or `<name>`; read with git only "
        "(checkouts untouched). Without one, oracle context is rebuilt from the diffs.",
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Where BM25 indexes are kept, one per commit (default: ~/.cache/benchsmith/bm25)."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option("the summary"),
) -> None:
    """Write an infbench file: per instance the previous edits, the ground truth, the
    requirement, the code context and the prompt.

    Instances with one step are skipped and listed in `<save-path>.skipped.jsonl`.

    Examples:

      benchsmith infbench build --bench ../shared/data/realisticeditbench/work_patch_list_from_patch_histories.jsonl.gz \\
        --save-path infbench/all-task-instances_0.2.jsonl --info-pct 0.2

      benchsmith infbench build --bench bench/all-task-instances.jsonl \\
        --save-path infbench/all-task-instances_0.2_bm25_5.jsonl --info-pct 0.2 \\
        --use-bm25 --topn 5 --repos-dir ~/repos

      benchsmith infbench build --bench bench/all-task-instances.jsonl \\
        --save-path infbench/all-task-instances_None_body_issue.jsonl
    """
    from benchsmith.sources.editbench.bench import load_bench
    from benchsmith.sources.editbench.build import BuildOptions, build_infbench, check_paths
    from benchsmith.sources.editbench.names import split_name

    console = err_console()
    try:
        pct = _info_pct(info_pct)
        at_least(topn, 1, "--topn")
        check_paths(save_path, repos_dir)
        rows = load_bench(bench)
    except BenchsmithError as e:
        fail(e)
    parts = split_name(save_path)
    if parts is None:
        console.print(f"warning: {save_path.name} does not follow "
                      "`<name>-task-instances_<run_id>.jsonl`; `infbench run --run-id` will not "
                      "find it by run id", markup=False)
    elif ("bm25" in parts[1]) != use_bm25:
        console.print(f"warning: run id {parts[1]!r} and --use-bm25 "
                      f"{'on' if use_bm25 else 'off'} disagree", markup=False)
    if use_bm25 and cache_dir is None:
        from benchsmith.sources.editbench.bm25 import default_cache_dir

        cache_dir = default_cache_dir()
    opts = BuildOptions(pct, not no_pr_mes, not no_issue_mes, use_bm25, topn, repos_dir,
                        cache_dir)
    progress = LiveProgress(console, "infbench build", not quiet, unit="row")
    try:
        with progress:
            progress.update(0, len(rows))
            summary = build_infbench(rows, save_path, opts, progress.update)
    except KeyboardInterrupt:
        console.print("interrupted; nothing written (run the command again)", markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e)
    reasons = summary.skipped_by_reason()
    if as_json:
        typer.echo(json.dumps({
            "save_path": str(summary.save_path), "run_id": summary.run_id,
            "rows_read": summary.rows_read, "written": summary.written,
            "skipped": len(summary.skipped), "skipped_by_reason": reasons,
            "skipped_path": str(summary.skipped_path),
            "context_kinds": summary.context_kinds, "bm25_fallbacks": summary.bm25_fallbacks,
        }, indent=2))
        return
    typer.echo(f"run id:    {summary.run_id or '(not in the file name)'}")
    typer.echo(f"written:   {summary.written} of {summary.rows_read} -> {summary.save_path}")
    typer.echo(f"skipped:   {len(summary.skipped)} -> {summary.skipped_path}")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {n} x {reason}")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.context_kinds.items()))
    typer.echo(f"context:   {kinds or 'none'}")
    if use_bm25:
        typer.echo(f"bm25:      {summary.bm25_fallbacks} row(s) fell back to oracle context "
                   "(see context_note)")


@infbench_app.command("merge-infbench")
def merge_infbench(
    infbench_dir: Path = typer.Option(
        ..., "--infbench-dir", help="Folder of `<owner-repo>-task-instances_<run_id>.jsonl`."),
    run_id: str = typer.Option(..., "--run-id", help="Run id to merge, e.g. 0.2 or 0.2_bm25_5."),
    repos: Optional[list[str]] = typer.Option(
        None, "--repos", help="Only these repos (owner/name; repeat the flag or separate by commas). Default: every "
        "per-repo file of the run id.",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Default: `<infbench-dir>/all-task-instances_<run_id>.jsonl`."),
    force: bool = typer.Option(False, "--force", help="Replace an existing merged file."),
    as_json: bool = json_option("the summary"),
) -> None:
    """Merge the per-repo infbench files of one run id into `all-task-instances_<run_id>.jsonl`
    (a repeated instance id keeps its first row and is reported).

    Examples:

      benchsmith infbench merge-infbench --infbench-dir infbench --run-id 0.2

      benchsmith infbench merge-infbench --infbench-dir infbench --run-id 0.2_bm25_5 \\
        --repos django/django --repos astropy/astropy --out merged.jsonl
    """
    from benchsmith.sources.editbench.names import merge_infbench as merge

    names = [r for value in repos or [] for r in value.replace(",", " ").split()]
    try:
        s = merge(infbench_dir, run_id, names or None, out, force)
    except BenchsmithError as e:
        fail(e)
    if as_json:
        typer.echo(json.dumps({
            "out": str(s.out), "files": [str(f) for f in s.files], "rows_read": s.rows_read,
            "written": s.written, "duplicates": list(s.duplicates),
        }, indent=2))
        return
    typer.echo(f"merged {len(s.files)} file(s), {s.rows_read} row(s): wrote {s.written} -> "
               f"{s.out}")
    if s.duplicates:
        shown = ", ".join(s.duplicates[:10]) + (" ..." if len(s.duplicates) > 10 else "")
        typer.echo(f"duplicates: {len(s.duplicates)} (first row kept): {shown}")


def register(app: typer.Typer) -> None:
    """Add this module's commands (and the prediction runs') to the app."""
    import benchsmith.cli.infbench_run  # noqa: F401 - attaches its commands to the group

    app.add_typer(infbench_app, name="infbench")
