"""CLI: `skyrl synth` and `skyrl retrofit` (logic in benchsmith.skyrl_runs, the recipe in
benchsmith.recipes.skyrl_tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from benchsmith.cli.console import RunProgress, err_console, fail
from benchsmith.cli.exits import FAILURES_EXIT, again, ending, exit_code
from benchsmith.cli.options import limit_option, quiet_option, shared_flags
from benchsmith.cli.skyrl import skyrl_app
from benchsmith.errors import BenchsmithError, ConfigError

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max", "off")


ConfigOpt = typer.Option(None, "--config", "-c",
                         help="Base run config: endpoint, engine, budget, prices, batch; its "
                         "recipe_options apply when it names recipe: skyrl_tools.")
InventoryOpt = typer.Option(None, "--inventory", "-i", metavar="FILE",
                            help="Tool inventory (YAML/JSON); default: the example inventory "
                            "(filesystem, git, web_search, database).")
OutOpt = typer.Option(..., "--out", metavar="DIR",
                      help="Where train.parquet, validation.parquet and raw_llm/ go.")
ModelOpt = typer.Option("gpt-5-mini", "--model", help="Model name sent to the endpoint.")
EffortOpt = typer.Option("high", "--reasoning-effort", metavar="EFFORT",
                         help="Sent as reasoning.effort (Responses) / reasoning_effort (Chat); "
                         "`off`: not sent. Refused by the endpoint: sent again without it.")
ApiOpt = typer.Option(None, "--api", metavar="responses|chat",
                      help="Wire format; default: the config's openai.api (responses).")
BaseUrlOpt = typer.Option(None, "--base-url", metavar="URL",
                          help="Endpoint base URL (default: the config's, else "
                          "$OPENAI_BASE_URL, else OpenAI's).")
JsonlOpt = typer.Option(None, "--jsonl/--no-jsonl",
                        help="Also write train.jsonl and validation.jsonl.")
ValOpt = typer.Option(None, "--val-fraction", min=0.0, max=0.99,
                      help="Share of the rows in validation.parquet (default 0.1).")
RunsOpt = typer.Option(Path("runs"), "--runs-dir", help="Where the run (its ledger) is kept.")
BudgetOpt = typer.Option(None, "--budget", min=0,
                         help="USD cap for this invocation (needs the model's price in the "
                         "config's prices).")
ModeOpt = typer.Option(None, "--mode", metavar="online|batch",
                       help="online, or batch (the Batch API); default: the config's "
                       "openai.use_batch_api, else online.")
DryOpt = typer.Option(False, "--dry-run",
                      help="Print what would be asked (counts, an example prompt, the cost "
                      "bound if priced); call no model, write nothing.")
SeedOpt = typer.Option(None, "--seed", help="Seed of the allocation order and the split "
                       "(default 0).")
# The flags synth and retrofit share, after each one's own: (parameter, type, option).
SHARED = (
    ("seed", Optional[int], SeedOpt), ("dry", bool, DryOpt),
    ("config", Optional[Path], ConfigOpt), ("model", str, ModelOpt), ("effort", str, EffortOpt),
    ("api", Optional[str], ApiOpt), ("base_url", Optional[str], BaseUrlOpt),
    ("jsonl", Optional[bool], JsonlOpt), ("val_fraction", Optional[float], ValOpt),
    ("runs_dir", Path, RunsOpt), ("budget", Optional[float], BudgetOpt),
    ("mode", Optional[str], ModeOpt), ("quiet", bool, quiet_option()),
)


def _options(**flags: Any) -> dict[str, Any]:
    """Recipe options from the flags that were given (the rest: config or defaults)."""
    return {k: v for k, v in flags.items() if v is not None}


def _weights(text: Optional[str], flag: str) -> Optional[dict[str, float]]:
    from benchsmith.recipes.skyrl_tools.options import COMPLEXITIES
    from benchsmith.skyrl.allocate import parse_distribution

    if text is None:
        return None
    weights = parse_distribution(text, flag, COMPLEXITIES if flag == "--complexities" else None)
    return weights


def _check_choices(shared: dict[str, Any]) -> None:
    api, mode, effort, model = (shared[k] for k in ("api", "mode", "effort", "model"))
    if not model.strip():
        raise ConfigError("command line", "--model", "is empty; give the model's name, e.g. "
                          "--model gpt-5-mini")
    if api not in (None, "responses", "chat"):
        raise ConfigError("command line", "--api", "must be responses or chat")
    if mode not in (None, "online", "batch"):
        raise ConfigError("command line", "--mode", "must be online or batch")
    if effort not in EFFORTS:
        raise ConfigError("command line", "--reasoning-effort", f"must be one of "
                          f"{', '.join(EFFORTS)}")


def _request(mode: str, shared: dict[str, Any], options: dict[str, Any], **fields: Any) -> Any:
    """The command's Request: its own `fields` and recipe `options`, and the shared flags."""
    from benchsmith.skyrl_runs import Request

    effort = shared["effort"]
    return Request(
        mode=mode, model=shared["model"], reasoning_effort=None if effort == "off" else effort,
        api=shared["api"], base_url=shared["base_url"], runs_dir=shared["runs_dir"],
        budget=shared["budget"], run_mode=shared["mode"],
        options=_options(**options, seed=shared["seed"], jsonl=shared["jsonl"],
                         val_fraction=shared["val_fraction"]),
        **fields,
    )


def _execute(req: Any, shared: dict[str, Any]) -> None:
    from benchsmith.skyrl_runs import base_config, dry_run, run

    config, dry, quiet = shared["config"], shared["dry"], shared["quiet"]
    console = err_console()
    say = lambda m: console.print(m, markup=False)  # noqa: E731
    with ending(console, config, "answers so far are kept"):
        base = base_config(config, req)
        if dry:
            _print_dry(dry_run(req, base), req)
            return
        progress = RunProgress(console, not quiet, base.engine.progress_interval_s)
        from dataclasses import replace

        req = replace(req, on_progress=progress.update)
        with progress:
            out = run(req, base, say)
    typer.echo(f"run:       {out.run_dir}")
    written = ", ".join(f"{p} ({out.rows[p.stem]} rows)" for p in out.files
                        if p.suffix == ".parquet")
    typer.echo(f"wrote:     {written or 'nothing yet'}")
    for p in out.files:
        if p.suffix == ".gz":
            typer.echo(f"raw:       {p}")
    typer.echo(f"status:    {out.status}; spent ${out.spent_usd:.4f}"
               + (f"; {out.message}" if out.message else ""))
    code = exit_code([out.status])
    if code == FAILURES_EXIT:
        console.print("some tasks got no valid plan; run the same command again to ask them "
                      "again", markup=False)
    elif code:
        console.print(f"continue with: {again()}", markup=False)
    if code:
        raise typer.Exit(code)


def _print_dry(rep: Any, req: Any) -> None:
    def say(label: str, text: str) -> None:
        typer.echo(f"{label + ':':<11} {text}")

    what = "task slot(s)" if req.mode == "synth" else "row(s)"
    say("would ask", f"{rep.requests} request(s) for {rep.tasks} {what}; no model is called")
    if req.mode == "retrofit":
        kept = rep.tasks - rep.requests
        say("rows", f"{rep.with_plan} already hold a plan"
            + (f"; {kept} copied as they are (--skip-existing)" if kept else ""))
    if rep.domains:
        say("domains", ", ".join(f"{k} {v}" for k, v in rep.domains.items()))
    if rep.complexities:
        say("complexity", ", ".join(f"{k} {v}" for k, v in rep.complexities.items()))
    if rep.priced:
        say("cost", f"at most ${rep.first_usd:.4f} for first attempts, "
            f"${rep.upper_usd:.4f} with every validation retry (upper bounds)")
    else:
        say("cost", f"unknown (no price for {req.model} in the config's prices)")
    if rep.example:
        head, sep, tools = rep.example.partition("\n\nTools:\n")
        lines = tools.splitlines()
        typer.echo("example prompt (the first request):")
        typer.echo(head)
        if sep:
            n_servers = sum(ln.startswith("## ") for ln in lines)
            n_tools = sum(ln.startswith("- ") for ln in lines)
            typer.echo(f"\nTools: (the inventory: {n_tools} tools on {n_servers} servers)")


@skyrl_app.command("synth")
@shared_flags(SHARED)
def synth(
    out: Path = OutOpt,
    n_samples: int = typer.Option(..., "--n-samples", min=1, help="Tasks to synthesize."),
    inventory: Optional[Path] = InventoryOpt,
    domains: Optional[str] = typer.Option(
        None, "--domains", metavar="A,B|A:W,B:W",
        help="Domains, equal or weighted (default: software engineering, data analysis, "
        "web research, devops); counts are exact."),
    complexities: Optional[str] = typer.Option(
        None, "--complexities", metavar="simple:W,moderate:W,complex:W",
        help="Complexity mix (default simple:0.3,moderate:0.5,complex:0.2); counts are exact."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1,
                                            help="Agent turns per task, most plan steps "
                                            "(default 8)."),
    max_tools: Optional[int] = typer.Option(None, "--max-tools", min=1,
                                            help="Most distinct tools a plan uses (default 5)."),
    max_servers: Optional[int] = typer.Option(None, "--max-servers", min=1,
                                              help="Most distinct servers a plan uses "
                                              "(default 3)."),
    **shared: Any,
) -> None:
    """Synthesize tool-use tasks with ground-truth MCP tool plans: one request per task,
    strict JSON schema (the inventory's servers and tools as enums), every plan checked
    against the inventory and re-asked with its problems; near-duplicate prompts re-asked.
    Writes --out/train.parquet, validation.parquet (+ .jsonl with --jsonl) and
    raw_llm/<run_id>.jsonl.gz. The same command run again resumes the run (failed and
    invalid tasks asked again). Exit codes as `run`: 0 done, 1 error, 2 budget, 3 auth,
    4 some tasks without a valid plan, 130 interrupted.

    Examples:

      benchsmith skyrl synth --inventory tools.yaml --out data/skyrl/ --n-samples 200

      benchsmith skyrl synth --inventory tools.yaml --out data/skyrl/ --n-samples 50 \\
        --domains devops,data-analysis --complexities simple:0.5,complex:0.5 --dry-run

      benchsmith skyrl synth --out data/skyrl/ --n-samples 20 --api chat --model my-model \\
        --base-url http://localhost:8000/v1 --reasoning-effort off
    """
    from benchsmith.config_sections import MAX_SLOTS

    try:
        _check_choices(shared)
        if n_samples > MAX_SLOTS:
            raise ConfigError("command line", "--n-samples", f"{n_samples} is more than one "
                              f"run holds; give at most {MAX_SLOTS:,}")
        req = _request("synth", shared, out=out, n_samples=n_samples, options=dict(
            inventory=str(inventory.resolve()) if inventory else None,
            domains=_weights(domains, "--domains"),
            complexities=_weights(complexities, "--complexities"),
            max_turns=max_turns, max_tools=max_tools, max_servers=max_servers))
    except BenchsmithError as e:
        fail(e, shared["config"])
        return
    _execute(req, shared)


@skyrl_app.command("retrofit")
@shared_flags(SHARED)
def retrofit(
    input_path: Path = typer.Option(..., "--input", metavar="FILE",
                                    help="SkyRL rows (.jsonl, .jsonl.gz or .parquet), at "
                                    "least `prompt` each."),
    out: Path = OutOpt,
    inventory: Optional[Path] = InventoryOpt,
    limit: Optional[int] = limit_option("Only the first N rows."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing",
        help="Rows whose reward_spec.ground_truth holds a tool sequence are copied as they "
        "are, not asked (default: every row is asked for a plan)."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1,
                                            help="Most plan steps (default 8)."),
    max_tools: Optional[int] = typer.Option(None, "--max-tools", min=1,
                                            help="Most distinct tools a plan uses (default 5)."),
    **shared: Any,
) -> None:
    """Add ground-truth tool plans to existing SkyRL rows: one request per row without a
    plan (every row without --skip-existing), asking for the plan of its prompt; the prompt
    is kept byte for byte, the row's other columns too. Writes --out/train.parquet,
    validation.parquet (+ .jsonl) and raw_llm/<run_id>.jsonl.gz; rows that got no valid
    plan are left out (and named by `benchsmith status`). Exit codes as `skyrl synth`.

    Examples:

      benchsmith skyrl retrofit --inventory tools.yaml --input prompts.jsonl --out data/skyrl/

      benchsmith skyrl retrofit --inventory tools.yaml --input rows.parquet --out data/skyrl/ \\
        --limit 100 --skip-existing --dry-run
    """
    try:
        _check_choices(shared)
        req = _request("retrofit", shared, out=out, input=input_path.resolve(), limit=limit,
                       options=dict(inventory=str(inventory.resolve()) if inventory else None,
                                    skip_existing=skip_existing or None, max_turns=max_turns,
                                    max_tools=max_tools))
    except BenchsmithError as e:
        fail(e, shared["config"])
        return
    _execute(req, shared)
