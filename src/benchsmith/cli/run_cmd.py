"""The run commands: `run` (any recipe, `--recipe NAME`) and each recipe's own command
(`rollout bugfix`, ...), built by one factory so every one takes the same flags."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from pydantic_core import to_jsonable_python

from benchsmith import api
from benchsmith.cli.console import (
    STOP_EXIT,
    RunProgress,
    err_console,
    fail,
    load_config_noting,
    resume_command,
)
from benchsmith.cli.options import command_group, first_example
from benchsmith.config import with_recipe
from benchsmith.errors import BenchsmithError, ConfigError
from benchsmith.recipes.registry import (
    CliFlag,
    RecipeSpec,
    builtin_names,
    get_spec,
    load_errors,
    names,
)
from benchsmith.store.rundir import new_run_id

RUN_HELP = """Interrupted runs (Ctrl-C, crash, kill -9) continue with --resume: nothing completed is sent again. On Ctrl-C/SIGTERM requests in flight get
engine.shutdown_grace_s to finish and be recorded (exit 130; a second Ctrl-C stops at once).
The run stops cleanly before the budget could be exceeded (exit 2, also when the server
billed past the caps); resume it with a larger budget.max_usd. A run that ends with failed or
invalid units exits 4; resume it with --retry-failed / --retry-invalid to send those again.
Every stop prints the exact command to continue."""


def parse_option_flags(values: Sequence[str]) -> dict[str, Any]:
    """`--option NAME=VALUE` flags as recipe options (VALUE read as YAML: 3, true, text)."""
    out: dict[str, Any] = {}
    for v in values:
        name, eq, raw = v.partition("=")
        if not eq or not name.strip():
            raise ConfigError("command line", "--option", f"{v!r}: expected NAME=VALUE")
        try:
            out[name.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[name.strip()] = raw
    return out


def execute(words: list[str], config: Path, recipe: str | None, overrides: dict[str, Any],
            flags: list[str], *, mode: Optional[str], run_id: Optional[str], resume: bool,
            temp: Optional[float], quiet: bool, as_json: bool, retry_failed: bool,
            retry_invalid: bool, replan: bool, report: bool = True) -> None:
    """Load the config (the command's recipe and option flags applied), run it, print the
    summary; exit codes as `run --help` says."""
    console = err_console()
    say = lambda m: console.print(m, markup=False)  # noqa: E731
    flags = [*flags, *(["--mode", mode] if mode else []),
             *(["--temp", str(temp)] if temp is not None else [])]

    def show_estimate(est: api.Estimate) -> None:
        if est.priced:
            say(f"{est.units} requests to send; upper-bound cost ${est.upper_bound_usd:.4f}")
        else:
            say(f"{est.units} requests to send")

    if run_id is None and not resume:
        run_id = new_run_id()  # named here, so that every resume hint can name it
    cont = resume_command(words, config, run_id or "", flags)
    try:
        cfg = load_config_noting(config, console, recipe)
        if overrides:
            cfg = with_recipe(cfg, **overrides)
        if temp is not None:
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"temperature": temp})})
        with RunProgress(console, not quiet, cfg.engine.progress_interval_s) as prog:
            summary = api.run(
                cfg, run_id, resume, mode=mode, echo=say, on_progress=prog.update,
                on_estimate=show_estimate, retry_failed=retry_failed, retry_invalid=retry_invalid,
                replan=replan, report=report,
            )
    except KeyboardInterrupt:
        console.print(f"interrupted; continue with: {cont}", markup=False)
        raise typer.Exit(130) from None
    except BenchsmithError as e:
        fail(e, config, [*words, *flags])
    if report:  # a report that cannot be written is a warning, never the run's failure
        say(summary.report_warning or (f"report:   {summary.report}" if summary.report else
                                       "warning: the run report was not written"))
    print_summary(summary, as_json, cont)
    if summary.stopped:
        raise typer.Exit(STOP_EXIT.get(summary.stopped, 2))
    if summary.status == "completed_with_failures":
        retry = "".join(f" --retry-{k}" for k in ("failed", "invalid") if summary.failures.get(k))
        console.print(f"{summary.message}; retry them with: {cont}{retry}", markup=False)
        raise typer.Exit(4)


def print_summary(s: api.RunSummary, as_json: bool, cont: str) -> None:
    data: dict[str, Any] = {
        "run_dir": str(s.run_dir),
        "stopped": s.stopped,
        "status": s.status,
        "message": s.message,
        "units": s.counts,
        "spent_usd": round(s.spent_usd, 6),
        "usage": s.usage,
        "outputs": {name: str(s.run_dir / name) for name in s.outputs
                    if (s.run_dir / name).exists()},
    }
    if s.stopped:
        data["resume"] = cont
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()))
    typer.echo(f"run dir:  {s.run_dir}")
    typer.echo(f"units:    {counts}")
    typer.echo(
        f"tokens:   in {s.usage.get('input_tokens', 0):,} (cached {s.usage.get('cached_input_tokens', 0):,}),"
        f" out {s.usage.get('output_tokens', 0):,}; spent ${s.spent_usd:.4f}"
    )
    for name, path in data["outputs"].items():
        typer.echo(f"output:   {path}")
    if s.stopped:
        typer.echo(f"stopped:  {s.message}")
        typer.echo(f"continue: {cont}")
    elif s.message:
        typer.echo(f"note:     {s.message}")


# The flags of every run command: (parameter, type, typer option).
def _common() -> list[tuple[str, Any, Any]]:
    return [
        ("config", Path, typer.Option(..., "--config", "-c", help="YAML run config (see init-config).")),
        ("run_id", Optional[str], typer.Option(
            None, "--run-id",
            help="Run id: the folder name under run_dir (letters, digits, . - _; not starting with .).")),
        ("resume", bool, typer.Option(False, "--resume", help="Continue an interrupted run (needs --run-id).")),
        ("mode", Optional[str], typer.Option(
            None, "--mode", help="`online` or `batch` (Batch API); default: openai.use_batch_api.")),
        ("temp", Optional[float], typer.Option(
            None, "--temp", help="Sampling temperature (overrides model.temperature).")),
        ("quiet", bool, typer.Option(
            False, "--quiet", "-q", help="No progress (bar or log lines); errors still print.")),
        ("as_json", bool, typer.Option(False, "--json", help="Print the summary as JSON on stdout.")),
        ("retry_failed", bool, typer.Option(
            False, "--retry-failed", help="With --resume: send the failed units again (new attempts).")),
        ("retry_invalid", bool, typer.Option(
            False, "--retry-invalid",
            help="With --resume: send the invalid units again, with fresh validation retries.")),
        ("replan", bool, typer.Option(
            False, "--replan",
            help="The run's plan-shaping settings changed: take them as its next plan (its pending "
            "requests are superseded, completed ones kept). Without it such a run is refused.")),
        ("report", bool, typer.Option(
            True, "--report/--no-report",
            help="Write RUN_DIR/report.html at the end (`benchsmith report`); --no-report skips it.")),
    ]


def _flag_param(f: CliFlag) -> str:
    return "opt_" + f.option


def _flag_words(f: CliFlag, value: Any) -> list[str]:
    if f.type is bool:
        on, _, off = f.flag.partition("/")
        return [on if value else off]
    return [f.flag.split("/")[0], str(value)]


def _with_signature(fn: Any, params: list[tuple[str, Any, Any]]) -> Any:
    """Give `fn(**kw)` the parameters typer reads (names, types, options)."""
    fn.__signature__ = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
        for name, typ, opt in params
    ])
    fn.__annotations__ = {name: typ for name, typ, _ in params}
    return fn


def _kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    keys = ("mode", "run_id", "resume", "temp", "quiet", "as_json", "retry_failed",
            "retry_invalid", "replan", "report")
    return {k: kw[k] for k in keys}


def recipe_command(spec: RecipeSpec) -> Any:
    """The recipe's own command: the shared run flags plus one flag per declared option."""
    verb = spec.cli
    assert verb is not None
    extra = [(_flag_param(f), Optional[f.type], typer.Option(None, *f.flag.split(" "), help=f.help))
             for f in verb.flags]

    def command(**kw: Any) -> None:
        overrides: dict[str, Any] = {}
        flags: list[str] = []
        for f in verb.flags:
            value = kw.pop(_flag_param(f))
            if value is not None:
                overrides[f.option] = value
                flags += _flag_words(f, value)
        execute(list(verb.words), kw["config"], spec.name, overrides, flags, **_kwargs(kw))

    command.__doc__ = verb.doc.rstrip() + (
        "\n\nResume, stops and exit codes work as in `benchsmith run --help`; `benchsmith run "
        f"--recipe {spec.name}` is the same run.\n")
    command.__name__ = "_".join(verb.words)
    return _with_signature(command, [*_common(), *extra])


def run_command() -> Any:
    def command(**kw: Any) -> None:
        recipe, options = kw["recipe"], kw["option"] or []
        flags = ["--recipe", recipe] if recipe else []
        for v in options:
            flags += ["--option", v]
        try:
            overrides = parse_option_flags(options)
        except BenchsmithError as e:
            fail(e, kw["config"], ["run", *flags])
        execute(["run"], kw["config"], recipe, overrides, flags, **_kwargs(kw))

    command.__doc__ = f"""Generate the dataset of the config's recipe, with a live progress bar.

{RUN_HELP}

--recipe runs another registered recipe (`benchsmith recipes` lists them) and --option sets
one of its options (repeatable), for every recipe alike.

Examples:

  benchsmith run --config my.yaml

  benchsmith run --config my.yaml --run-id R --resume

  benchsmith run --config my.yaml --mode batch

  benchsmith run --config swe.yaml --recipe agentless_bugfix --option passk=4

  benchsmith run --config my.yaml --run-id R --resume --retry-failed

  benchsmith run --config my.yaml --run-id R --resume --replan
"""
    params = [*_common(),
              ("recipe", Optional[str], typer.Option(
                  None, "--recipe", help="Run this recipe instead of the config's `recipe`.")),
              ("option", Optional[list[str]], typer.Option(
                  None, "--option", "-O", metavar="NAME=VALUE",
                  help="A recipe option, NAME=VALUE (repeatable)."))]
    return _with_signature(command, params)


def recipes_command(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the registered recipes: name, what it makes, its command and options.

    Example:

      benchsmith recipes
    """
    rows = []
    for name in names():
        spec = get_spec(name)
        fields = spec.Options.model_fields
        required = [k for k, f in fields.items() if f.is_required()]
        defaults = {k: to_jsonable_python(f.get_default(call_default_factory=True))
                    for k, f in fields.items() if not f.is_required()}
        rows.append({"name": name, "version": spec.version, "summary": spec.summary,
                     "command": " ".join(["benchsmith", *spec.cli.words]) if spec.cli else
                     f"benchsmith run --recipe {name}", "options": defaults,
                     "required": required})
    for ep, why in load_errors().items():
        err_console().print(f"warning: recipe plug-in {ep} failed to load ({why})", markup=False)
    for note in SKIPPED_VERBS:
        err_console().print(f"warning: {note}", markup=False)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']} (v{r['version']}): {r['summary']}")
        typer.echo(f"  command: {r['command']} --config CFG")
        typer.echo("  options: " + ", ".join([f"{k} (required)" for k in r["required"]] + [
            f"{k}={json.dumps(v)}" for k, v in r["options"].items()]))


# Recipe commands left out (no words, or a name already taken): shown by `recipes`.
SKIPPED_VERBS: list[str] = []


def register(app: typer.Typer) -> None:
    """`run` and `recipes` (the recipes' own commands come last: `register_recipe_verbs`)."""
    app.command("run")(run_command())
    app.command("recipes")(recipes_command)


def _taken(app: typer.Typer) -> set[tuple[str, ...]]:
    names = {(c.name or c.callback.__name__.replace("_", "-"),)  # type: ignore[union-attr]
             for c in app.registered_commands}
    return names | {(g.name,) for g in app.registered_groups if g.name}


def register_recipe_verbs(app: typer.Typer) -> None:
    """Each recipe's own command, grouped by its first word; called after every built-in
    command, so that a recipe's command that would shadow one (or another recipe's) is left
    out with a warning, as is one of no words."""
    taken = _taken(app)
    groups: dict[str, typer.Typer] = {}
    first = builtin_names()
    for name in [*first, *(n for n in names() if n not in first)]:
        spec = get_spec(name)
        if spec.cli is None:
            continue
        words = tuple(spec.cli.words)
        instead = f"run it with `benchsmith run --recipe {name}`"
        if not 1 <= len(words) <= 2:
            SKIPPED_VERBS.append(f"recipe {name}: its command has {len(words)} words (1 or 2 "
                                 f"allowed); {instead}")
            continue
        if words in taken or words[:1] in taken and words[0] not in groups:
            SKIPPED_VERBS.append(f"recipe {name}: its command `{' '.join(['benchsmith', *words])}`"
                                 f" is taken; {instead}")
            continue
        taken.add(words)
        *group, last = words
        target = app
        if group:
            key = group[0]
            if key not in groups:
                # The group's example: its first command's first one.
                groups[key] = command_group(key, spec.cli.group_help,
                                            first_example(spec.cli.doc),
                                            rich_markup_mode="markdown")
                app.add_typer(groups[key], name=key)
                taken.add((key,))
            target = groups[key]
        target.command(last)(recipe_command(spec))
