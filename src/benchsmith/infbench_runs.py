"""`benchsmith infbench run`: prediction runs over infbench files, one benchsmith run per model.

Each model's run (recipe edit_predict) has its own ledger under the runs dir, named from a
hash of the model, its settings, the datasets and the ids to skip: the same command run again
after a crash resumes the same run (nothing is sent twice), and once its results are appended
the next invocation plans only what is left. One dataset per infbench file; results are
appended to `{results_dir}/{model}/T={t}/n={n}/{dataset_stem}.jsonl` (infbench_results.py).
Budget: one cap for the whole invocation; each model's run gets what the ones before left.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsmith import api
from benchsmith.command_runs import model_slug, run_name, spent_usd, with_budget
from benchsmith.config import (
    RunConfig,
    api_keys,
    parse_config,
    with_env_endpoint,
    with_recipe,
)
from benchsmith.config_sections import DatasetConfig, ModelConfig, Price
from benchsmith.errors import ConfigError
from benchsmith.infbench_results import (
    append_lines,
    done_ids,
    number,
    result_lines,
    results_folder,
)
from benchsmith.recipes.edit_predict import RECIPE as EDIT_PREDICT
from benchsmith.recipes.edit_predict.model_table import ModelEntry, entry_for
from benchsmith.sources.editbench import names
from benchsmith.sources.infbench import row_problem
from benchsmith.sources.rows import iter_file
from benchsmith.store.lock import RunInUse, live_holder, run_lock
from benchsmith.store.rundir import open_existing_run

Echo = Callable[[str], None]
DEFAULT_INFBENCH_DIR = "infbench"


@dataclass(frozen=True)
class InfbenchFile:
    path: Path
    stem: str  # the results file's name (without .jsonl)
    dataset: str  # the benchsmith dataset name (letters, digits, - and _)


@dataclass
class ModelOutcome:
    model: str
    run_dir: Path | None
    status: str  # completed, completed_with_failures, stopped_budget, ..., nothing_to_do
    appended: dict[str, int] = field(default_factory=dict)  # results file -> lines added
    spent_usd: float = 0.0
    message: str = ""
    failed: int = 0  # units that ended `failed` (no line: a re-run asks them again)


def resolve_files(dataset_names: Sequence[str], run_ids: Sequence[str], infbench_dir: Path
                  ) -> list[InfbenchFile]:
    """The infbench files `--dataset-name` and `--run-id` point at (see the module doc)."""
    paths: list[Path] = []
    for name in dataset_names:
        if name.endswith((".jsonl", ".jsonl.gz")):
            path = Path(name)
            rid = names.run_id_of(path)
            if run_ids and list(run_ids) != [rid]:
                raise ConfigError("--run-id", "", f"{name} is run id {rid!r} by its name; "
                                  "leave --run-id out for a file path")
            paths.append(path)
            continue
        if not run_ids:
            raise ConfigError("--run-id", "", f"needed for --dataset-name {name} "
                              "(e.g. --run-id 0.2 0.2_bm25_5)")
        paths.extend(names.infbench_file(infbench_dir, name, r) for r in run_ids)
    out: list[InfbenchFile] = []
    taken: set[str] = set()
    stems: dict[str, Path] = {}
    for path in dict.fromkeys(paths):
        if not path.is_file():
            raise ConfigError(str(path), "--dataset-name", "no infbench file here; build it "
                              "with `benchsmith infbench build` or check --infbench-dir, "
                              "--dataset-name and --run-id")
        real = path.resolve()
        if real in stems.values():
            continue  # one file named twice (relative and absolute, say): asked once
        stem = names.stem_of(path)
        if stem in stems:
            raise ConfigError(str(path), "--dataset-name", f"has the name of {stems[stem]}: "
                              "both would append to the same results file "
                              f"({stem}.jsonl); run them one at a time with another "
                              "--results-dir, or rename one")
        stems[stem] = real
        ds = re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:120]
        base, i = ds, 1
        while ds in taken:
            i += 1
            ds = f"{base}_{i}"
        taken.add(ds)
        out.append(InfbenchFile(path.resolve(), stem, ds))
    return out


def read_sampled_ids(path: Path) -> set[str]:
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is skipped
    except FileNotFoundError:
        raise ConfigError(where, "--sampled-ids-file", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(where, "--sampled-ids-file", f"cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(where, f"line {e.lineno}", f"not valid JSON: {e.msg}") from None
    ids = data.get("sampled_instance_ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConfigError(where, "sampled_instance_ids", "must be a list of instance ids "
                          '(e.g. {"sampled_instance_ids": ["owner__repo-123"]})')
    return set(ids)


def instance_ids(f: InfbenchFile) -> list[str]:
    """The ids of an infbench file, each row checked; a ConfigError naming the file, the
    line and the field otherwise (and for a file without rows)."""
    out = []
    for line, row in iter_file(f.path, f"datasets.{f.dataset}"):
        bad = row_problem(row)
        if bad is not None:
            iid = row.get("instance_id")
            where = f"{f.path}: line {line}" + (f" ({iid})" if isinstance(iid, str) else "")
            raise ConfigError(where, bad[0], f"{bad[1]}: not an infbench row; rebuild the "
                              "file with `benchsmith infbench build`")
        out.append(row["instance_id"])
    if not out:
        raise ConfigError(str(f.path), "", "no instance in this infbench file (it is empty); "
                          "rebuild it with `benchsmith infbench build`")
    return out


def model_config(base: RunConfig, entry: ModelEntry) -> tuple[RunConfig, dict[str, Any]]:
    """The model's settings laid over the base config (the config's price wins)."""
    m = ModelConfig(
        name=entry.name, temperature=entry.temperature, top_p=entry.top_p,
        max_output_tokens=base.model.max_output_tokens,
        max_context_tokens=entry.context_limit,
        reasoning_effort=base.model.reasoning_effort if base.model.name == entry.name else None,
    )
    prices = dict(base.prices)
    if entry.name not in prices and entry.input_price is not None \
            and entry.output_price is not None:
        prices[entry.name] = Price(input=entry.input_price, output=entry.output_price)
    cfg = base.model_copy(update={"model": m, "multi_model": False, "prices": prices})
    return cfg, m.model_dump(mode="json")


def _append(run_dir: Path, files: list[InfbenchFile], folder: Path, entry: ModelEntry
            ) -> dict[str, int]:
    """Append the run's finished instances to each results file (ids already there skipped)."""
    if not (run_dir / "ledger.sqlite").exists():
        return {}
    out = {}
    _rd, ledger = open_existing_run(run_dir)
    try:
        for f in files:
            path = folder / f"{f.stem}.jsonl"
            have, _notes = done_ids(path)
            lines = [r for r in result_lines(ledger, f.dataset, entry.name, entry.n)
                     if r["instance_id"] not in have]
            out[str(path)] = append_lines(path, lines)
    finally:
        ledger.close()
    return out


@dataclass(frozen=True)
class Plan:
    files: list[InfbenchFile]
    models: list[str]
    table: dict[str, dict[str, Any]]
    results_dir: Path
    runs_dir: Path
    base: RunConfig
    sampled: set[str] | None = None
    sampled_from: str = "--sampled-ids-file"  # the file `sampled` was read from
    mode: str | None = None  # None: the base config's openai.use_batch_api
    max_workers: int | None = None
    timeout: float | None = None
    budget: float | None = None
    on_progress: Callable[[Any], None] | None = None  # engine Stats of the running model


def base_config(config: Path | None) -> RunConfig:
    """The base config (endpoint, engine, budget, batch settings) with the environment's
    fallback endpoint (config.with_env_endpoint); prediction runs use the Chat API unless
    the config names one (the original tool's wire; n > 1 needs it)."""
    cfg = api.load_config(config) if config is not None else parse_config({}, file="defaults")
    cfg = with_env_endpoint(cfg)
    try:  # before any run starts: the key variable holds a key
        api_keys(cfg)
    except ConfigError as e:
        if "api_key_env" in cfg.openai.model_fields_set or not e.problem.startswith("is not"):
            raise
        raise ConfigError("environment", "OPENAI_KEYS", "no API key: export "
                          "OPENAI_KEYS=<key>[,<key>...] or OPENAI_KEY=<key> (or "
                          f"{cfg.openai.api_key_env}), or set openai.api_key_env in "
                          "--config") from None
    if "api" not in cfg.openai.model_fields_set:
        cfg = cfg.model_copy(update={"openai": cfg.openai.model_copy(update={"api": "chat"})})
    return cfg


@contextmanager
def _results_lock(runs_dir: Path, folder: Path, model: str) -> Iterator[None]:
    """One `infbench run` at a time writes a results folder (whatever its datasets or
    sampled ids): a second one would ask the same instances and append them twice. The lock
    is kept in the runs dir (`.results-locks/`), keyed by the folder's real path, so the
    user's results tree holds results only."""
    real = str(folder.resolve())
    key = hashlib.sha256(real.encode()).hexdigest()[:12]
    root = runs_dir.resolve() / ".results-locks" / f"{model_slug(model)}-{key}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(str(root), "--runs-dir", f"cannot create: {e.strerror or e}"
                          ) from None
    try:
        with run_lock(root, "infbench run"):
            yield
    except RunInUse:
        holder = live_holder(root)
        who = holder.describe() if holder else "another process"
        raise ConfigError(str(folder), "", f"another `infbench run` of {model} writes these "
                          f"results ({who}); wait for it to end or stop it, then run again"
                          ) from None


def _model_run(plan: Plan, entry: ModelEntry, left: float | None, echo: Echo
               ) -> ModelOutcome:
    folder = results_folder(plan.results_dir, entry.name, entry.temperature, entry.n)
    with _results_lock(plan.runs_dir, folder, entry.name):
        return _model_run_locked(plan, entry, folder, left, echo)


def _model_run_locked(plan: Plan, entry: ModelEntry, folder: Path, left: float | None,
                      echo: Echo) -> ModelOutcome:
    skip: dict[str, list[str]] = {}
    todo: list[InfbenchFile] = []
    for f in plan.files:
        have, notes = done_ids(folder / f"{f.stem}.jsonl")
        for note in notes:
            echo(f"note: {note}")
        ids = instance_ids(f)
        wanted = [i for i in ids if plan.sampled is None or i in plan.sampled]
        left_ids = [i for i in wanted if i not in have]
        echo(f"{entry.name}: {f.stem}: {len(left_ids)} of {len(wanted)} instance(s) to ask")
        if left_ids:
            todo.append(f)
            skip[f.dataset] = sorted(set(ids) - set(left_ids))
    if not todo:
        return ModelOutcome(entry.name, None, "nothing_to_do")
    cfg, model_dump = model_config(plan.base, entry)
    engine = cfg.engine.model_copy(update={
        k: v for k, v in (("concurrency", plan.max_workers), ("timeout_s", plan.timeout))
        if v is not None})
    datasets = {f.dataset: DatasetConfig(source="infbench", path=str(f.path)) for f in todo}
    cfg = cfg.model_copy(update={"datasets": datasets, "run_dir": str(plan.runs_dir.resolve()),
                                 "engine": engine})
    cfg = with_recipe(cfg, EDIT_PREDICT.name, n=entry.n, skip=skip)
    shape = {"model": model_dump, "options": cfg.recipe_options, "api": cfg.openai.api,
             "datasets": {f.dataset: str(f.path) for f in todo}}
    run_id = run_name("infbench", entry.name, shape)
    run_dir = plan.runs_dir.resolve() / run_id
    resume = (run_dir / "ledger.sqlite").exists()
    before = spent_usd(run_dir)
    if left is not None:
        cfg = with_budget(cfg, before, max(left, 0.0))
    echo(f"{entry.name}: run {run_dir}" + (" (resumed)" if resume else ""))
    out = ModelOutcome(entry.name, run_dir, "error")
    try:
        summary = api.run(cfg, run_id, resume, mode=plan.mode, echo=echo,
                          on_progress=plan.on_progress, retry_failed=resume)
        out.status, out.message = summary.status, summary.message
        out.failed = summary.counts.get("failed", 0)
    finally:  # also on Ctrl-C, a budget stop or an error: keep what was answered
        out.appended = _append(run_dir, todo, folder, entry)
        out.spent_usd = spent_usd(run_dir) - before
    return out


def _check_sampled(plan: Plan, echo: Echo) -> None:
    """Sampled ids in no dataset: an error when that is all of them (a file for other
    datasets, or a typo), else a note naming the first few."""
    sampled = plan.sampled or set()
    known = {i for f in plan.files for i in instance_ids(f)}
    missing = sorted(sampled - known)
    if missing and len(missing) == len(sampled) or not sampled:
        what = f"none of the {len(sampled)} ids" if sampled else "it lists no id, so none"
        raise ConfigError(plan.sampled_from, "sampled_instance_ids", f"{what} is in the "
                          f"datasets of this run ({', '.join(f.stem for f in plan.files)}); "
                          "check the file, --dataset-name and --run-id")
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        echo(f"note: {len(missing)} of the {len(sampled)} sampled ids are in no dataset of "
             f"this run: {shown}")


def run_models(plan: Plan, echo: Echo) -> list[ModelOutcome]:
    """One prediction run per model, in order; stops after a run that stopped (budget, auth,
    Ctrl-C)."""
    entries = [entry_for(plan.table, m) for m in plan.models]
    for e in entries:
        if e.n > 1 and plan.base.openai.api == "responses":
            raise ConfigError("model table", f"{e.name}.n", "n > 1 needs openai.api: chat "
                              "(the Responses API answers one choice per request)")
        if plan.budget is not None and e.name not in plan.base.prices and (
                e.input_price is None or e.output_price is None):
            raise ConfigError("model table", f"{e.name}.input_price", "--budget needs this "
                              "model's prices: set input_price and output_price in "
                              "--model-table (USD per 1M tokens)")
    for f in plan.files:  # every row checked before any run starts
        instance_ids(f)
    if plan.sampled is not None:
        _check_sampled(plan, echo)
    for e in entries:
        if e.name not in plan.table:  # a typo, or a model the table does not list
            prices = ("no prices" if e.input_price is None or e.output_price is None
                      else f"${e.input_price}/${e.output_price} per 1M tokens")
            echo(f"note: {e.name} is not in the model table: default settings "
                 f"(T={number(e.temperature)}, top_p {e.top_p}, n {e.n}, context "
                 f"{e.context_limit}), {prices}; add it with --model-table")
    left = plan.budget
    outcomes = []
    for e in entries:
        o = _model_run(plan, e, left, echo)
        outcomes.append(o)
        if left is not None:
            left -= o.spent_usd
        if o.status in ("stopped_budget", "stopped_auth", "interrupted"):
            break
    return outcomes
