"""`benchsmith skyrl synth` / `skyrl retrofit`: one run of the skyrl_tools recipe, its config
built in code from a base config (endpoint, engine, budget, prices) and the flags.

The run's id is a hash of what shapes its requests (mode, recipe options, model, API, the
input rows): the same command run again resumes the same run (nothing answered is sent
again; failed and invalid requests are asked again), and once it is done it only writes the
files again. The dataset goes to the run dir's skyrl/ folder and to --out (the recipe's
`out_dir`), raw answers to raw_llm/<run_id>.jsonl.gz in both.

retrofit reads its input rows once into the run dir (input/retrofit_rows.jsonl, one line per
row with its number), which the run reads as a jsonl dataset: the run keeps its input.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsmith import api
from benchsmith.command_runs import run_name, spent_usd, with_budget
from benchsmith.config import RunConfig, api_keys, parse_config, with_recipe
from benchsmith.config_sections import DatasetConfig, FieldMap, ModelConfig, url_problem
from benchsmith.errors import ConfigError
from benchsmith.recipes.skyrl_tools import RECIPE as SKYRL_TOOLS
from benchsmith.recipes.skyrl_tools.options import COMPLEXITIES, OUTPUT_ONLY
from benchsmith.recipes.skyrl_tools.rows import (
    CONTEXT_FIELDS,
    ID_FIELD,
    PRIMARY_FIELD,
    has_plan,
    prepared_rows,
)
from benchsmith.sources.rows import iter_file
from benchsmith.store.rundir import atomic_write_jsonl, claim_run_dir, open_existing_run

Echo = Callable[[str], None]
DATASET = "skyrl"
INPUT_FILE = "input/retrofit_rows.jsonl"
ENV_BASE_URL = "OPENAI_BASE_URL"  # as the OpenAI SDK reads it
# Reasoning at high effort spends thousands of output tokens before the answer: the
# default cap (model.max_output_tokens) when the base config sets none.
DEFAULT_MAX_OUTPUT_TOKENS = 16000


@dataclass(frozen=True)
class Request:
    """What a `skyrl synth` / `skyrl retrofit` command asks for."""

    mode: str  # synth | retrofit
    out: Path
    options: dict[str, Any]  # recipe options from the flags (inventory, domains, ...)
    model: str = "gpt-5-mini"
    reasoning_effort: str | None = "high"
    api: str | None = None  # responses | chat; None: the base config's
    base_url: str | None = None
    n_samples: int = 0  # synth
    input: Path | None = None  # retrofit
    limit: int | None = None  # retrofit
    runs_dir: Path = Path("runs")
    budget: float | None = None  # USD for this invocation
    run_mode: str | None = None  # online | batch; None: the base config's
    on_progress: Callable[[Any], None] | None = None


@dataclass
class Outcome:
    run_dir: Path
    status: str
    message: str
    spent_usd: float
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows written
    files: list[Path] = field(default_factory=list)  # what --out holds


def base_config(config: Path | None, req: Request) -> RunConfig:
    """The base config with the flags' API / base URL (else $OPENAI_BASE_URL, when the
    config sets none) and model."""
    cfg = api.load_config(config) if config is not None else parse_config({}, file="defaults")
    oa: dict[str, Any] = {}
    env_url = os.environ.get(ENV_BASE_URL, "").strip()
    if env_url and "base_url" not in cfg.openai.model_fields_set:
        problem = url_problem(env_url)
        if problem:
            raise ConfigError("environment", ENV_BASE_URL, problem)
        oa["base_url"] = env_url
    if req.api is not None:
        oa["api"] = req.api
    if req.base_url is not None:
        problem = url_problem(req.base_url)
        if problem:
            raise ConfigError("command line", "--base-url", problem)
        oa["base_url"] = req.base_url
    max_out = (cfg.model.max_output_tokens if "max_output_tokens" in cfg.model.model_fields_set
               else DEFAULT_MAX_OUTPUT_TOKENS)
    model = cfg.model.model_copy(update={"name": req.model, "reasoning_effort":
                                          req.reasoning_effort, "max_output_tokens": max_out})
    ModelConfig.model_validate(model.model_dump())  # the flags' values, checked
    return cfg.model_copy(update={"openai": cfg.openai.model_copy(update=oa), "model": model,
                                  "multi_model": False})


def _file_digest(path: Path, field: str) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except FileNotFoundError:
        raise ConfigError(str(path), field, "file not found") from None
    except OSError as e:
        raise ConfigError(str(path), field, f"cannot read: {e.strerror or e}") from None
    return h.hexdigest()


def run_config(base: RunConfig, req: Request, runs_dir: Path,
               prepared: Path | None) -> tuple[RunConfig, str]:
    """The run's config and its id (skyrl-<mode>-<model>-<hash>)."""
    opts = {**req.options, "mode": req.mode, "out_dir": str(req.out.resolve())}
    cfg = with_recipe(base, SKYRL_TOOLS.name, **opts)  # flags over the config's options
    options = cfg.options()
    if req.mode == "synth":
        # the slots' seeds derive from the run's seed too
        ds = DatasetConfig(source="generated", count=req.n_samples, seed=options.seed)
        source: Any = req.n_samples
    else:
        assert req.input is not None and prepared is not None
        ds = DatasetConfig(source="jsonl", path=str(prepared), fields=FieldMap(
            id=ID_FIELD, primary=PRIMARY_FIELD, context=list(CONTEXT_FIELDS)))
        source = [_file_digest(req.input, "--input"), req.limit]
    cfg = cfg.model_copy(update={"datasets": {DATASET: ds}, "run_dir": str(runs_dir)})
    shaping = {k: v for k, v in cfg.recipe_options.items() if k not in OUTPUT_ONLY}
    inv = options.inventory
    shape = {"options": shaping, "model": cfg.model.model_dump(mode="json"),
             "api": cfg.openai.api, "source": source,
             "inventory": _file_digest(cfg.resolve(inv), "--inventory") if inv else None}
    return cfg, run_name(f"skyrl-{req.mode}", req.model, shape)


def _inputs(base: RunConfig, req: Request, runs_dir: Path) -> tuple[RunConfig, str, Path]:
    """The run's config, id and folder; retrofit's input written into the folder (the id
    depends on the input's bytes, not on where the prepared copy lies)."""
    probe = runs_dir / "_" / INPUT_FILE if req.mode == "retrofit" else None
    cfg, run_id = run_config(base, req, runs_dir, probe)
    root = runs_dir / run_id
    if req.mode == "retrofit":
        assert req.input is not None  # read (and refused, if bad) before the run dir is made
        rows = prepared_rows(iter_file(req.input, "--input"), str(req.input), req.limit)
        claim_run_dir(root, field="--runs-dir")
        atomic_write_jsonl(root / INPUT_FILE, rows)
        cfg, _ = run_config(base, req, runs_dir, root / INPUT_FILE)
    return cfg, run_id, root


def _started(root: Path) -> bool:
    """Whether the run at `root` has sent requests (then the same command resumes it)."""
    if not (root / "ledger.sqlite").exists():
        return False
    _rd, ledger = open_existing_run(root)
    try:
        return ledger.usage_totals()["api_calls"] > 0
    finally:
        ledger.close()


def _check_folders(req: Request) -> None:
    """--out and --runs-dir are folders (or can be made): a file there is refused before
    anything is sent, not when the answers are to be written."""
    for path, flag in ((req.out, "--out"), (req.runs_dir, "--runs-dir")):
        p = path.resolve()
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            raise ConfigError(str(p), flag, "is a file, not a folder; give a folder for "
                              f"{flag} (it is made when missing)")


def run(req: Request, base: RunConfig, echo: Echo) -> Outcome:
    api_keys(base)  # no key: a one-line error before anything is written
    _check_folders(req)
    runs_dir = req.runs_dir.resolve()
    cfg, run_id, root = _inputs(base, req, runs_dir)
    started = _started(root)
    before = spent_usd(root)
    if req.budget is not None:
        cfg = with_budget(cfg, before, req.budget)
    echo(f"run {root}" + (" (resumed)" if started else ""))
    summary = api.run(cfg, run_id, (root / "ledger.sqlite").exists(), mode=req.run_mode,
                      echo=echo, on_progress=req.on_progress, retry_failed=started,
                      retry_invalid=started)
    out = Outcome(root, summary.status, summary.message, spent_usd(root) - before)
    for split in ("train", "validation"):
        path = req.out / f"{split}.parquet"
        if path.is_file():
            out.rows[split] = _num_rows(path)
            out.files.append(path)
    raw = req.out / "raw_llm" / f"{run_id}.jsonl.gz"
    if raw.is_file():
        out.files.append(raw)
    return out


def _num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


@dataclass
class DryReport:
    tasks: int
    requests: int
    with_plan: int  # retrofit: input rows that hold a plan
    domains: dict[str, int]
    complexities: dict[str, int]
    example: str  # the first request's user message
    first_usd: float
    upper_usd: float
    priced: bool


def dry_run(req: Request, base: RunConfig) -> DryReport:
    """What the command would ask, planned in a scratch folder (nothing is sent, nothing is
    written to --out or --runs-dir)."""
    _check_folders(req)
    with tempfile.TemporaryDirectory(prefix="benchsmith-skyrl-") as tmp:
        cfg, run_id, _root = _inputs(base, req, Path(tmp))
        rep = api.dry_run(cfg, run_id)
        _rd, ledger = open_existing_run(rep.run_dir)
        try:
            tasks = ledger.tasks()
            units = list(ledger.units(state="pending"))
        finally:
            ledger.close()
    domains = Counter(str(t.context.get("domain")) for t in tasks if "domain" in t.context)
    levels = Counter(str(t.context.get("complexity")) for t in tasks if "complexity" in t.context)
    example = units[0].spec["messages"][-1]["content"] if units else ""
    est = rep.estimate
    return DryReport(
        len(tasks), len(units), sum(has_plan(t.context["row"]) for t in tasks
                                    if isinstance(t.context.get("row"), dict)),
        dict(sorted(domains.items())),
        {k: levels[k] for k in (*COMPLEXITIES, *sorted(levels)) if k in levels}, example,
        est.first_attempt_usd, est.upper_bound_usd, est.priced)
