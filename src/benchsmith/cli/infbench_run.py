"""CLI: `infbench run`, `infbench merge-results`, `infbench score` (logic in
benchsmith.infbench_runs and benchsmith.infbench_score)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from benchsmith.cli.console import RunProgress, err_console, fail
from benchsmith.cli.exits import ending, exit_code
from benchsmith.cli.infbench import at_least, infbench_app
from benchsmith.cli.options import json_option, quiet_option
from benchsmith.cli.usage import usage_error
from benchsmith.errors import BenchsmithError, ConfigError

# Flags that take several values after one flag (`--model A B`), as the original tool's.
_MULTI = {"--model": "model", "--run-id": "run_id", "--dataset-name": "dataset_name",
          "--repos": "repos"}
_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def multi_values(ctx: typer.Context, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """Values of the several-valued flags in the command's extra words (`--model A B`,
    `--model A --model B`, `--model=A`); anything else is a usage error (exit 2)."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for a in ctx.args:
        flag, eq, value = a.partition("=")
        if a.startswith("--"):
            if flag not in allowed:
                raise usage_error(ctx, f"No such option: {flag}")
            current = _MULTI[flag]
            out.setdefault(current, [])
            if eq:
                out[current].append(value)
        elif current is None:
            raise usage_error(ctx, f"Got unexpected extra argument ({a})")
        else:
            out[current].append(a)
    for key, values in out.items():
        if not values:
            raise usage_error(ctx, f"Option '--{key.replace('_', '-')}' requires an argument")
    return out


@infbench_app.command("run", context_settings=_EXTRA)
def run(
    ctx: typer.Context,
    infbench_dir: Path = typer.Option(
        Path("infbench"), "--infbench-dir",
        help="Where `--dataset-name` names resolve: {name}-task-instances_{run_id}.jsonl."),
    sampled_ids_file: Optional[Path] = typer.Option(
        None, "--sampled-ids-file",
        help='Only these instances: JSON {"sampled_instance_ids": [...]}.'),
    max_workers: Optional[int] = typer.Option(
        None, "--max-workers", help="Requests in flight (engine.concurrency; at least 1)."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", help="Per-request timeout in seconds (engine.timeout_s; at least 1)."),
    mode: Optional[str] = typer.Option(
        None, "--mode", help="online, or batch (the Batch API); default: the base config's "
        "openai.use_batch_api, else online."),
    results_dir: Path = typer.Option(
        Path("experiment_results"), "--results-dir",
        help="Results tree: {model}/T={temperature}/n={n}/{dataset_stem}.jsonl."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir",
                                  help="Where each model's run (ledger) is kept."),
    model_table: Optional[Path] = typer.Option(
        None, "--model-table", help="YAML overriding/adding model table entries, per field."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Base run config: endpoint, engine, budget, batch."),
    budget: Optional[float] = typer.Option(
        None, "--budget", help="USD cap for the whole invocation (all models)."),
    quiet: bool = quiet_option(),
) -> None:
    """Predict the remaining edits of each instance, per model: one benchsmith run (recipe
    edit_predict) per model, results appended to
    `{results-dir}/{model}/T={temperature}/n={n}/{dataset_stem}.jsonl`.

    Several values follow one flag: `--model A B`, `--run-id 0.2 0.2_bm25_5`,
    `--dataset-name all owner/repo` (`all`, `owner/repo`, or a .jsonl path whose name gives
    the run id). Ids already in a results file are not asked again; re-running the same
    command after a crash resumes the same runs. Keys: the config's openai.api_key_env, else
    OPENAI_KEYS (comma-separated, round-robin) or OPENAI_KEY; endpoint: the config's
    openai.base_url, else BASE_URL. Exit codes as `run`.

    Examples:

      benchsmith infbench run --dataset-name all --model gpt-4.1 gpt-4o --run-id 0.2 0.2_bm25_5

      benchsmith infbench run --dataset-name infbench/django-django-task-instances_0.2.jsonl \\
        --model deepseek-v3.2 --model-table my_models.yaml --budget 5

      benchsmith infbench run --dataset-name all --model gpt-4.1 --run-id 0.2 --mode batch \\
        --sampled-ids-file ids.json --config base.yaml
    """
    from benchsmith.infbench_runs import Plan, base_config, read_sampled_ids, resolve_files
    from benchsmith.infbench_runs import run_models
    from benchsmith.recipes.edit_predict.model_table import load_table

    console = err_console()
    say = lambda m: console.print(m, markup=False)  # noqa: E731
    with ending(console, config, "finished instances were appended"):
        for value, low, option in ((max_workers, 1, "--max-workers"), (timeout, 1, "--timeout"),
                                   (budget, 0, "--budget")):
            at_least(value, low, option)
        multi = multi_values(ctx, ("--model", "--run-id", "--dataset-name"))
        if not multi.get("model"):
            raise ConfigError("command line", "--model", "name at least one model")
        if not multi.get("dataset_name"):
            raise ConfigError("command line", "--dataset-name",
                              "give `all`, `owner/repo` or a .jsonl path")
        if mode not in (None, "online", "batch"):
            raise ConfigError("command line", "--mode", "must be online or batch")
        files = resolve_files(multi["dataset_name"], multi.get("run_id", []), infbench_dir)
        base = base_config(config)
        progress = RunProgress(console, not quiet, base.engine.progress_interval_s)
        plan = Plan(
            files=files, models=list(dict.fromkeys(multi["model"])),
            table=load_table(model_table), results_dir=results_dir, runs_dir=runs_dir,
            base=base, sampled=read_sampled_ids(sampled_ids_file) if sampled_ids_file else None,
            sampled_from=str(sampled_ids_file),
            mode=mode, max_workers=max_workers, timeout=timeout,
            budget=budget if budget is not None else base.budget.max_usd,
            on_progress=progress.update,
        )
        with progress:
            outcomes = run_models(plan, say)
    for o in outcomes:
        added = ", ".join(f"{Path(p).name}: +{k}" for p, k in o.appended.items()) or "nothing"
        typer.echo(f"{o.model}: {o.status}; appended {added}; spent ${o.spent_usd:.4f}"
                   + (f"; {o.message}" if o.message else ""))
    code = exit_code(o.status for o in outcomes)
    if any(o.failed for o in outcomes):
        console.print("failed requests got no line; run the same command again to retry them",
                      markup=False)
    if code:
        raise typer.Exit(code)


@infbench_app.command("merge-results", context_settings=_EXTRA)
def merge_results(
    ctx: typer.Context,
    model_name: str = typer.Option(..., "--model-name", help="The model's results folder."),
    temperature: float = typer.Option(0.0, "--temperature", help="Its T= folder."),
    n: int = typer.Option(1, "--n", help="Its n= folder."),
    run_id: str = typer.Option("0.2", "--run-id", help="The run id of the files to merge."),
    results_dir: Path = typer.Option(Path("experiment_results"), "--results-dir",
                                     help="Results tree of `infbench run`."),
    force: bool = typer.Option(False, "--force", help="Replace an existing merged file."),
) -> None:
    """Merge per-repository results files `{owner-repo}-task-instances_{run_id}.jsonl` of one
    T=/n= folder into `all-task-instances_{run_id}.jsonl` beside them; duplicate ids are
    reported (the first line is kept). `--repos r1 r2`: only these repositories.

    Example:

      benchsmith infbench merge-results --model-name gpt-4.1 --run-id 0.2 --repos django/django
    """
    from benchsmith.infbench_score import merge_results as merge

    try:
        at_least(n, 1, "--n")
        repos = multi_values(ctx, ("--repos",)).get("repos")
        rep = merge(results_dir, model_name, temperature, n, run_id, repos, force)
    except BenchsmithError as e:
        fail(e)
        return
    console = err_console()
    for note in rep.notes:
        console.print(f"note: {note.replace('kept as it is', 'left out of the merge')}",
                      markup=False)
    typer.echo(f"wrote {rep.out}: {rep.lines} line(s) from {rep.files} file(s)")
    if rep.duplicates:
        shown = ", ".join(sorted(rep.duplicates)[:10])
        typer.echo(f"duplicates: {len(rep.duplicates)} id(s) in more than one line, first "
                   f"kept: {shown}" + (" ..." if len(rep.duplicates) > 10 else ""))


@infbench_app.command("score", context_settings=_EXTRA)
def score(
    ctx: typer.Context,
    results_dir: Path = typer.Option(Path("experiment_results"), "--results-dir",
                                     help="Results tree of `infbench run`."),
    infbench_dir: Path = typer.Option(Path("infbench"), "--infbench-dir",
                                      help="Infbench files holding the ground truth."),
    as_json: bool = json_option("the table"),
) -> None:
    """Compare each model_patch with the infbench ground truth: exact match after
    normalising whitespace, and the similarity of the changed (+/-) lines (difflib ratio);
    one row per model, T=, n= and run id. `--model A B`, `--run-id 0.2 ...`: only these.

    Example:

      benchsmith infbench score --model gpt-4.1 --run-id 0.2 0.2_bm25_5
    """
    from benchsmith.infbench_score import score as score_all

    try:
        multi = multi_values(ctx, ("--model", "--run-id"))
        console = err_console()
        rows = score_all(results_dir, infbench_dir, multi.get("model"), multi.get("run_id"),
                         lambda m: console.print(f"note: {m}", markup=False))
    except BenchsmithError as e:
        fail(e)
        return
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no results files")
        return
    for r in rows:
        if r.no_ground_truth:
            err_console().print(
                f"note: {r.model} T={r.temperature} n={r.n} {r.run_id}: {r.no_ground_truth} "
                "instance(s) not in the infbench file, not scored (in inst, not in exact%/sim)",
                markup=False)
    head = f"{'model':<28} {'T':>4} {'n':>3} {'run id':<18} {'inst':>5} {'exact%':>7} " \
           f"{'sim':>6} {'empty':>5}"
    typer.echo(head)
    for r in rows:
        typer.echo(f"{r.model:<28} {r.temperature:>4} {r.n:>3} {r.run_id:<18} "
                   f"{r.instances:>5} {r.exact_pct:>7.2f} {r.mean_similarity:>6.3f} "
                   f"{r.empty_patches:>5}")
