"""CLI commands: `rollout bugfix|testgen` — Agentless-style SWE-bench rollouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from benchsmith import api
from benchsmith.cli.console import STOP_EXIT, RunProgress, err_console, fail, load_config_noting, resume_command
from benchsmith.config import with_recipe
from benchsmith.errors import BenchsmithError
from benchsmith.store.rundir import new_run_id

rollout_app = typer.Typer(
    help="Agentless-style rollouts over SWE-bench: localize files, then repair or write a test.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _run(kind: str, config: Path, mode: Optional[str], run_id: Optional[str], resume: bool,
         overrides: dict[str, Any], temp: Optional[float], quiet: bool, as_json: bool,
         retry: tuple[bool, bool] = (False, False), replan: bool = False) -> None:
    console = err_console()
    if run_id is None and not resume:
        run_id = new_run_id()  # named here, so that every resume hint can name it
    cont = resume_command(["rollout", kind], config, run_id or "", _flags(mode, overrides, temp))
    try:
        cfg = with_recipe(load_config_noting(config, console, f"agentless_{kind}"), **overrides)
        if temp is not None:
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"temperature": temp})})
        with RunProgress(console, enabled=not quiet) as prog:
            summary = api.run(cfg, run_id, resume, mode=mode,
                              echo=lambda m: console.print(m, markup=False),
                              on_progress=prog.update, retry_failed=retry[0],
                              retry_invalid=retry[1], replan=replan)
    except KeyboardInterrupt:
        console.print(f"interrupted; continue with: {cont}", markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e, config, ["rollout", kind, *_flags(mode, overrides, temp)])
    rd = summary.run_dir
    out = {"run_dir": str(rd), "stopped": summary.stopped, "message": summary.message,
           "units": summary.counts, "spent_usd": round(summary.spent_usd, 6),
           "output": str(rd / "output.jsonl"), "failures": str(rd / "failures.jsonl")}
    if kind == "bugfix":
        out["predictions"] = str(rd / "preds.jsonl")
    if summary.stopped:
        out["resume"] = cont
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            typer.echo(f"{k + ':':<12}{v}")
    if summary.stopped:
        raise typer.Exit(STOP_EXIT.get(summary.stopped, 2))


_FLAGS = {"passk": "--passk", "model_name_or_path": "--model-name", "start": "--start",
          "end": "--end"}


def _flags(mode: Optional[str], overrides: dict[str, Any], temp: Optional[float]) -> list[str]:
    """The options of this command that shape its requests, to repeat on resume."""
    out = ["--mode", mode] if mode else []
    for key, flag in _FLAGS.items():
        if overrides.get(key) is not None:
            out += [flag, str(overrides[key])]
    if overrides.get("convert_crlf") is not None:
        out.append("--convert-crlf" if overrides["convert_crlf"] else "--keep-crlf")
    if temp is not None:
        out += ["--temp", str(temp)]
    return out


def _common(kind: str):  # noqa: ANN202 - typer reads the signature
    def command(
        config: Path = typer.Option(..., "--config", "-c", help="YAML run config with a SWE-bench dataset."),
        mode: Optional[str] = typer.Option(None, "--mode", help="`online` or `batch` (Batch API)."),
        run_id: Optional[str] = typer.Option(
            None, "--run-id", help="Run id: the folder under run_dir (letters, digits, . - _)."
        ),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (needs --run-id)."),
        passk: Optional[int] = typer.Option(None, "--passk", help="Samples per instance."),
        temp: Optional[float] = typer.Option(None, "--temp", help="Sampling temperature."),
        model_name: Optional[str] = typer.Option(
            None, "--model-name", help="model_name_or_path written to predictions."
        ),
        start: Optional[int] = typer.Option(None, "--start", help="First index in the sorted instance ids."),
        end: Optional[int] = typer.Option(None, "--end", help="End index (exclusive) in the sorted ids."),
        convert_crlf: Optional[bool] = typer.Option(
            None, "--convert-crlf/--keep-crlf", help="Normalize problem-statement line endings."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="With --resume: send the failed requests again."
        ),
        retry_invalid: bool = typer.Option(
            False, "--retry-invalid", help="With --resume: send the invalid requests again."
        ),
        replan: bool = typer.Option(
            False, "--replan", help="The run's settings changed: take them as its next plan."
        ),
    ) -> None:
        _run(kind, config, mode, run_id, resume,
             {"passk": passk, "model_name_or_path": model_name, "start": start, "end": end,
              "convert_crlf": convert_crlf}, temp, quiet, as_json, (retry_failed, retry_invalid),
             replan)

    return command


_BUGFIX_DOC = """Generate candidate patches: localize files, then SEARCH/REPLACE repairs -> diffs.

Writes `samples/<instance>/sample_N.diff`, output.jsonl, failures.jsonl and preds.jsonl (for
`swebench.harness.run_evaluation`).

Examples:

  benchsmith rollout bugfix --config cfg.yaml

  benchsmith rollout bugfix --config cfg.yaml --passk 4 --temp 0.8 --mode batch

  benchsmith rollout bugfix --config cfg.yaml --start 0 --end 50 --model-name my-model
"""

_TESTGEN_DOC = """Generate reproduction tests: localize files, then a standalone test script.

Writes `samples/<instance>/sample_N.py` (each compiles), output.jsonl and failures.jsonl.

Examples:

  benchsmith rollout testgen --config cfg.yaml

  benchsmith rollout testgen --config cfg.yaml --passk 2 --run-id tests_v1
"""

bugfix = _common("bugfix")
bugfix.__doc__ = _BUGFIX_DOC
testgen = _common("testgen")
testgen.__doc__ = _TESTGEN_DOC
rollout_app.command("bugfix")(bugfix)
rollout_app.command("testgen")(testgen)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(rollout_app, name="rollout")
