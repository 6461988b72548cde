"""CLI commands: `finetune build`, `finetune stats`, `finetune check` (logic in
benchsmith.finetune)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from benchsmith.cli.console import LiveProgress, err_console, fail
from benchsmith.cli.options import command_group, json_option, quiet_option
from benchsmith.errors import BenchsmithError, ConfigError

finetune_app = command_group(
    "finetune",
    "Fine-tuning datasets from agent trajectories or benchsmith runs: positive, reflection "
    "and preference pairs in ChatML, Alpaca, ShareGPT, OpenAI, TRL and DPO formats; token "
    "counts and cost; OpenAI format checks.",
    "benchsmith finetune build --trajectories trajs/ --out results/fine_tuning --format openai",
)

SOURCE_FLAGS = ("--trajectories", "--run-dir", "--swe-agent")


def _load(trajectories: Optional[Path], run_dir: Optional[Path], swe_agent: Optional[Path],
          report: Optional[Path], eval_dir: Optional[Path], skip_bad_lines: bool,
          on_file: Any) -> Any:
    """Entries from the one source given (files, a benchsmith run or SWE-agent .traj files)."""
    from benchsmith.finetune.trajectories import entries_from_dicts, load_trajectories

    given = [f for f, v in zip(SOURCE_FLAGS, (trajectories, run_dir, swe_agent)) if v]
    if len(given) != 1:
        raise ConfigError("finetune build", "", f"give exactly one of {', '.join(SOURCE_FLAGS)}"
                          + (f" (got {', '.join(given)})" if given else ""))
    if trajectories is not None:
        if report is not None or eval_dir is not None:
            flag = "--report" if report is not None else "--eval-dir"
            raise ConfigError(flag, "", "goes with --run-dir or --swe-agent; trajectory "
                              "files carry `resolved` and `test_stdout` themselves")
        return load_trajectories(trajectories, skip_bad_lines, on_file)
    if report is None:
        raise ConfigError(given[0], "", "needs --report FILE: the SWE-bench evaluation report "
                          "(resolved_ids, unresolved_ids, ...)")
    from benchsmith.finetune import adapters

    if run_dir is not None:
        dicts, where = adapters.entries_from_run(run_dir, report, eval_dir), str(run_dir)
    else:
        assert swe_agent is not None
        dicts, where = adapters.entries_from_swe_agent(swe_agent, report, eval_dir), str(swe_agent)
    return entries_from_dicts(dicts, where, skip_bad_lines)


def interrupted_note(out: Path) -> str:
    """What a Ctrl-C left in `out`: a build removes the earlier one's dataset_stats.json
    before its first file and writes its own last."""
    if (out / "dataset_stats.json").is_file():
        return f"interrupted: {out} still holds the earlier build"
    if not out.is_dir() or not any(out.iterdir()):
        return f"interrupted: nothing written to {out}"
    return (f"interrupted: {out} holds an unfinished build (no dataset_stats.json); run the "
            "command again")


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if v) or "none"


def _print_summary(s: dict[str, Any]) -> None:
    skipped = f" ({s['bad_lines_skipped']} bad line(s) skipped)" if s["bad_lines_skipped"] else ""
    typer.echo(f"read:      {s['entries']} entries, {s['instances']} instance(s), from "
               f"{len(s['files'])} source(s){skipped}")
    typer.echo(f"filtered:  {s['filtered']} ({_counts(s['filter_reasons'])})")
    typer.echo(f"kept:      {s['after_filters']}: {s['resolved']} resolved, {s['failed']} failed "
               f"({_counts(s['category_counts'])})")
    typer.echo(f"pairs:     {_counts(s['pairs'])}")
    sp = s["split"]
    typer.echo(f"split:     train {sp['train_instances']} instance(s), val {sp['val_instances']} "
               f"(seed {sp['seed']}, val fraction {sp['val_fraction']})")
    for fmt, info in s["formats"].items():
        typer.echo(f"{fmt + ':':<10} train {info['train']}, val {info['val']} -> "
                   f"{Path(info['train_file']).parent}")


@finetune_app.command("build")
def build(
    trajectories: Optional[Path] = typer.Option(
        None, "--trajectories", metavar="DIR",
        help="Folder of trajectory files (*.jsonl, *.jsonl.gz): one attempt per line "
        "(schema in the README).",
    ),
    run_dir: Optional[Path] = typer.Option(
        None, "--run-dir", metavar="RUN", help="A benchsmith bug-fixer run dir (needs --report)."),
    swe_agent: Optional[Path] = typer.Option(
        None, "--swe-agent", metavar="DIR", help="Folder of SWE-agent .traj files (needs --report)."),
    report: Optional[Path] = typer.Option(
        None, "--report", metavar="FILE",
        help="SWE-bench evaluation report (resolved_ids, unresolved_ids, error_ids, "
        "empty_patch_ids) for --run-dir / --swe-agent.",
    ),
    eval_dir: Optional[Path] = typer.Option(
        None, "--eval-dir", metavar="DIR",
        help="The harness's per-instance logs (report.json, test_output.txt): test output "
        "for failure categories.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    formats: Optional[list[str]] = typer.Option(
        None, "--format", "-f",
        help="chatml, alpaca, sharegpt, openai, trl (positive + reflection pairs) or dpo "
        "(preference pairs); repeatable: one sub-folder per format.",
    ),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Share of instances in val (grouped by instance_id)."),
    seed: int = typer.Option(42, "--seed", help="Seed of the train/val split."),
    no_reflection: bool = typer.Option(
        False, "--no-reflection", help="Make no reflection pairs."),
    min_problem_words: int = typer.Option(
        20, "--min-problem-words", help="Drop attempts whose problem statement has fewer words."),
    max_patch_chars: int = typer.Option(
        8000, "--max-patch-chars", help="Drop attempts whose patch is longer."),
    max_issue_chars: int = typer.Option(
        6000, "--max-issue-chars", help="Prompt bound: characters of the issue shown."),
    max_files: int = typer.Option(8, "--max-files", help="Prompt bound: relevant files shown."),
    max_file_chars: int = typer.Option(
        4000, "--max-file-chars", help="Prompt bound: characters of each file text shown."),
    max_failed_patch_chars: int = typer.Option(
        4000, "--max-failed-patch-chars",
        help="Prompt bound: characters of the failed patch in a reflection prompt."),
    max_error_chars: int = typer.Option(
        2000, "--max-error-chars",
        help="Prompt bound: characters of the error context in a reflection prompt."),
    parquet: bool = typer.Option(
        False, "--parquet", help="Also write .parquet files (needs benchsmith[parquet])."),
    skip_bad_lines: bool = typer.Option(
        False, "--skip-bad-lines",
        help="Count and skip malformed entries instead of stopping at the first."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option("dataset_stats.json"),
) -> None:
    """Build train/val files of training pairs from agent attempts, and dataset_stats.json.

    Positive pairs teach a resolved patch, reflection pairs the resolved patch after a failed
    attempt (its patch, category and error in the prompt), preference pairs (dpo) a resolved
    patch over a failed one. A failed patch is never a training target. Attempts with an
    unknown failure category, an empty patch, a patch that is not a unified diff, a patch
    longer than --max-patch-chars or a problem statement under --min-problem-words are
    dropped and counted by their first reason.

    Examples:

      benchsmith finetune build --trajectories trajs/ --out results/fine_tuning --format openai

      benchsmith finetune build --trajectories trajs/ --out results/fine_tuning \\
        --format trl --format dpo --val-fraction 0.1 --seed 42 --parquet

      benchsmith finetune build --run-dir runs/bugfix_v1 --report eval/model.run1.json \\
        --eval-dir logs/run_evaluation/run1/model --out ft/ --format chatml --no-reflection
    """
    from benchsmith.finetune.build import BuildOptions, build as build_dataset, check_options
    from benchsmith.finetune.filters import FilterOptions
    from benchsmith.finetune.prompts import PromptBounds

    console = err_console()
    opts = BuildOptions(
        formats=tuple(dict.fromkeys(formats or ())), val_fraction=val_fraction, seed=seed,
        reflection=not no_reflection,
        filters=FilterOptions(min_problem_words, max_patch_chars),
        bounds=PromptBounds(max_issue_chars, max_files, max_file_chars,
                            max_failed_patch_chars, max_error_chars),
        parquet=parquet,
    )
    progress = LiveProgress(console, "finetune build", not quiet, unit="row")
    try:
        check_options(opts)
        if out.exists() and not out.is_dir():
            raise ConfigError("--out", "", f"{out} is a file: give a folder for the dataset")
        if trajectories is not None and out.resolve() == trajectories.resolve():
            raise ConfigError("--out", "", f"{out} is the --trajectories folder: a later build "
                              "would read its train.jsonl and val.jsonl as trajectories; give "
                              "another folder (a sub-folder is fine)")
        with progress:
            progress.update(0, None, note="reading")
            loaded = _load(trajectories, run_dir, swe_agent, report, eval_dir, skip_bad_lines,
                           lambda p: progress.update(0, None, note=f"reading {p.name}"))
            report_ = build_dataset(
                loaded, opts, out,
                lambda done, total, what: progress.update(done, total, note=what),
            )
    except KeyboardInterrupt:
        console.print(interrupted_note(out), markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e)
    for line in loaded.bad_lines[:5]:
        console.print(f"skipped: {line}", markup=False)
    if len(loaded.bad_lines) > 5:
        console.print(f"skipped: ... and {len(loaded.bad_lines) - 5} more", markup=False)
    s = report_.stats
    if as_json:
        typer.echo(json.dumps(s, indent=2))
    else:
        _print_summary(s)
        typer.echo(f"stats:     {out / 'dataset_stats.json'}")
    if not any(info["train"] + info["val"] for info in s["formats"].values()):
        fail(BenchsmithError(
            f"no training row written: no attempt made a pair for {', '.join(opts.formats)} "
            f"(filter reasons and counts in {out / 'dataset_stats.json'})"))


@finetune_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="A training file (.jsonl) in any of the formats."),
    tokenizer: Optional[Path] = typer.Option(
        None, "--tokenizer", metavar="PATH",
        help="A tokenizer.json (Hugging Face tokenizers) for exact counts; without one the "
        "counts are an estimate (UTF-8 bytes / 4).",
    ),
    price_per_1m: float = typer.Option(
        3.0, "--price-per-1m", help="Training price in USD per 1M tokens."),
    epochs: int = typer.Option(3, "--epochs", help="Training epochs (the cost multiplies by it)."),
    as_json: bool = json_option("the statistics"),
) -> None:
    """Rows and tokens (total, mean, max per row) of a training file, and the training cost.

    Examples:

      benchsmith finetune stats results/fine_tuning/train.jsonl

      benchsmith finetune stats results/fine_tuning/train.jsonl \\
        --tokenizer models/Qwen2.5-7B/tokenizer.json --price-per-1m 3.0 --epochs 3

      benchsmith finetune stats results/fine_tuning/dpo/train.jsonl --json
    """
    from benchsmith.finetune.tokens import stats as token_stats

    try:
        st = token_stats(file, tokenizer, price_per_1m, epochs)
    except BenchsmithError as e:
        fail(e)
    if as_json:
        typer.echo(json.dumps(st.to_dict(), indent=2))
        return
    approx = "" if st.exact else "~"
    typer.echo(f"file:      {st.file}")
    typer.echo(f"rows:      {st.rows:,}")
    typer.echo(f"tokens:    {approx}{st.tokens_total:,} total, {approx}{st.tokens_mean:,.1f} "
               f"mean, {approx}{st.tokens_max:,} max per row")
    typer.echo(f"counted:   {st.counter}")
    typer.echo(f"cost:      {approx}${st.cost_usd:,.4f} for {st.epochs} epoch(s) at "
               f"${st.price_per_1m:,.2f} per 1M training tokens")


@finetune_app.command("check")
def check(
    file: Path = typer.Argument(..., help="An OpenAI fine-tuning chat file (.jsonl)."),
) -> None:
    """Check a file against OpenAI's fine-tuning chat format: one JSON object per line with
    a `messages` list; roles system, user, assistant or tool; no empty content; an assistant
    message last. Prints `file:line: reason` for each bad line; exit 1 when any.

    Examples:

      benchsmith finetune check results/fine_tuning/train.jsonl

      benchsmith finetune check results/fine_tuning/openai/val.jsonl
    """
    from benchsmith.finetune.check import check_file

    try:
        res = check_file(file)
    except BenchsmithError as e:
        fail(e)
    for p in res.problems:
        typer.echo(p)
    if res.ok:
        typer.echo(f"ok: {res.rows} line(s) follow the OpenAI fine-tuning chat format")
        return
    bad = len(res.problems)
    typer.echo(f"FAIL: {bad} problem(s) in {res.rows} line(s) of {file}")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(finetune_app, name="finetune")
