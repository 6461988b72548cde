"""What the skyrl_tools recipe writes, reports and checks, all from the ledger.

- `skyrl/train.parquet`, `skyrl/validation.parquet` (+ `.jsonl` with `jsonl`) in the run dir:
  the SkyRL dataset (skyrl.dataset), rows in task order, split by `val_fraction` and `seed`;
  with `out_dir` the same files there too, once the run has sent requests (a dry run never
  writes outside the run dir).
- `raw_llm/<run_id>.jsonl.gz` (run dir, and `out_dir`): every answer the model gave (accepted
  or refused), with its request (unit) id, attempt, model, usage and problems.
- extra_info.task_metadata of a row: mode, model, reasoning effort (null when the endpoint
  refused it), timestamp of the answer (UTC), seed, reasoning tokens (when reported), run id
  and request id of the raw answer.
- `status`: a `skyrl:` line; run check `skyrl_dataset`: the files hold exactly the rows the
  ledger gives and pass skyrl.dataset.validate_file against the inventory.
"""

from __future__ import annotations

import datetime
import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchsmith.engine.param_fallback import ParamFallback
from benchsmith.recipes.base import RunCheck, StatusSummary
from benchsmith.recipes.skyrl_tools.dedupe import keep_distinct, user_text
from benchsmith.recipes.skyrl_tools.options import SkyrlToolsOptions
from benchsmith.recipes.skyrl_tools.rows import copied_row, has_plan, prompt_messages
from benchsmith.skyrl.dataset import skyrl_row, split_rows, validate_file, write_dataset

FOLDER = "skyrl"
RAW_FOLDER = "raw_llm"
SPLITS = ("train", "validation")


@dataclass
class Rows:
    rows: list[dict[str, Any]] = field(default_factory=list)  # in task order, before the split
    asked: int = 0  # rows from an accepted answer
    copied: int = 0  # retrofit rows kept with their own plan
    missing: list[str] = field(default_factory=list)  # task ids without a row
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="seconds")


def _ok_attempts(ledger: Any, stage: str) -> dict[str, dict[str, Any]]:
    return {a["unit_id"]: a for a in ledger.attempts(status="ok", stage=stage,
                                                     with_output=False, current_plan=True)}


def _meta(o: SkyrlToolsOptions, u: Any, att: dict[str, Any] | None, run_id: str, seed: int,
          refused: ParamFallback) -> dict[str, Any]:
    effort = u.spec.get("params", {}).get("reasoning_effort")
    if "reasoning_effort" in refused.dropped.get(u.model, ()):
        effort = None  # the endpoint refused it: the answer was made without
    reasoning = (att or {}).get("reasoning_tokens") or None
    return {"mode": o.mode, "model": u.model, "reasoning_effort": effort,
            "timestamp": _iso((att or {}).get("ended_at")), "seed": seed,
            "reasoning_tokens": reasoning, "run_id": run_id, "request_id": u.unit_id,
            "task_id": u.task_id}


def dataset_rows(ledger: Any, o: SkyrlToolsOptions, run_id: str) -> Rows:
    refused = ParamFallback()
    refused.load(ledger)
    atts = _ok_attempts(ledger, o.mode)
    ok = {(u.dataset, u.task_id): u
          for u in ledger.units(state="ok", stage=o.mode, current_plan=True)}
    out = Rows()
    built: list[tuple[str, dict[str, Any]]] = []
    for t in sorted(ledger.tasks(), key=lambda t: (t.dataset, t.id)):
        u = ok.get((t.dataset, t.id))
        if o.mode == "synth":
            if u is None:
                out.missing.append(t.id)
                continue
            sample = u.result[0]["sample"]
            meta = _meta(o, u, atts.get(u.unit_id), run_id, int(t.context["seed"]), refused)
            built.append((t.id, skyrl_row(sample, data_source=o.data_source,
                                          env_class=o.env_class, index=0, split="train",
                                          meta=meta)))
            continue
        row = t.context["row"]
        if u is not None:
            meta = _meta(o, u, atts.get(u.unit_id), run_id, o.seed, refused)
            out.rows.append(retrofitted(row, u.result[0]["sample"], o, meta))
            out.asked += 1
        elif has_plan(row):
            out.rows.append(copied_row(row, o.data_source, o.env_class))
            out.copied += 1
        else:
            out.missing.append(t.id)
    if o.mode == "synth":
        kept, out.near_duplicates = keep_distinct(
            built, lambda item: (item[0], user_text(item[1]["prompt"])), o.near_duplicate)
        out.rows = [row for _tid, row in kept]
        out.asked = len(out.rows)
    return out


def retrofitted(row: dict[str, Any], plan: dict[str, Any], o: SkyrlToolsOptions,
                meta: dict[str, Any]) -> dict[str, Any]:
    """The input row with its new plan: its prompt as it came (byte for byte), its own
    data_source / env_class / other columns kept, extra_info merged (the new values win
    where they are set)."""
    new = skyrl_row({**plan, "prompt": prompt_messages(row.get("prompt"))},
                    data_source=row.get("data_source") or o.data_source,
                    env_class=row.get("env_class") or o.env_class, index=0, split="train",
                    meta=meta)
    info = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    merged = dict(info)
    for k, v in new["extra_info"].items():
        if v is not None or k not in merged:
            merged[k] = v
    return {**row, **new, "extra_info": merged}


def raw_answers(ledger: Any, stage: str) -> list[dict[str, Any]]:
    """Every answer of the stage's units (accepted or refused), in the order received."""
    out = []
    for a in ledger.attempts(stage=stage):
        if a["raw_output"] is None:
            continue
        out.append({
            "request_id": a["unit_id"], "attempt": a["n"], "task_id": a["task_id"],
            "model": a["model"], "status": a["status"], "timestamp": _iso(a["ended_at"]),
            "raw": a["raw_output"], "issues": a["issues"],
            "usage": {k: a[k] for k in ("input_tokens", "cached_input_tokens",
                                        "output_tokens", "reasoning_tokens")},
        })
    return out


def write_raw(path: Path, rows: list[dict[str, Any]]) -> None:
    from benchsmith.store.rundir import atomic_write_bytes

    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    atomic_write_bytes(path, gzip.compress(data, mtime=0))  # same rows, same bytes


def outputs_of(o: SkyrlToolsOptions, ctx: Any, inv: Any) -> tuple[Any, Any, RunCheck,
                                                                  tuple[str, ...]]:
    """(write_outputs, status, run check, declared outputs) of a recipe with options `o`."""
    files = tuple(f"{FOLDER}/{s}.{ext}" for ext in ("parquet", *(("jsonl",) if o.jsonl else ()))
                  for s in SPLITS)
    out_dir = ctx.resolve(o.out_dir) if o.out_dir else None

    def write(ledger: Any, rd: Any) -> None:
        got = dataset_rows(ledger, o, rd.run_id)
        train, val = split_rows(got.rows, o.val_fraction, o.seed)
        raw = raw_answers(ledger, o.mode)
        targets = [rd.root]
        if out_dir is not None and ledger.invocations():
            targets.append(out_dir)
        for i, root in enumerate(targets):
            write_dataset(train, val, root / FOLDER if i == 0 else root, jsonl=o.jsonl)
            write_raw(root / RAW_FOLDER / f"{rd.run_id}.jsonl.gz", raw)

    def status(ledger: Any) -> StatusSummary:
        got = dataset_rows(ledger, o, ledger_run_id(ledger))
        parts = [f"{len(got.rows)} row(s)"]
        if o.mode == "retrofit":
            parts.append(f"{got.asked} with a new plan, {got.copied} kept their own")
        if got.near_duplicates:
            parts.append(f"{len(got.near_duplicates)} near duplicate(s) left out")
        if got.missing:
            parts.append(f"{len(got.missing)} without a plan yet")
        line = f"skyrl: {', '.join(parts)} (see {FOLDER}/)"
        return StatusSummary({"skyrl_rows": len(got.rows), "skyrl_missing": len(got.missing),
                              "skyrl_near_duplicates": len(got.near_duplicates)}, (line,))

    def check(run: Any) -> tuple[str, list[str]]:
        if run.ledger is None:
            return "no ledger", ["ledger.sqlite could not be opened"]
        want = {rid for r in dataset_rows(run.ledger, o, run.root.name).rows
                if (rid := _request_id(r)) is not None}
        problems: list[str] = []
        have: set[str] = set()
        n = 0
        for s in SPLITS:
            path = run.root / FOLDER / f"{s}.parquet"
            if not path.is_file():
                problems.append(f"{FOLDER}/{s}.parquet: missing")
                continue
            ids = request_ids(path)
            if ids:  # (a run that has no answer yet has empty files)
                problems += validate_file(path, inv)
            n += len(ids)
            have.update(i for i in ids if i)
        for rid in sorted(want - have):
            problems.append(f"{FOLDER}/: the accepted answer {rid} has no row (resume the "
                            "run to write the files again)")
        for rid in sorted(have - want):
            problems.append(f"{FOLDER}/: a row names request {rid}, which the ledger does "
                            "not give (edited, or another run's)")
        return f"{n} row(s)", problems

    return write, status, RunCheck("skyrl_dataset", check), files


def ledger_run_id(ledger: Any) -> str:
    return Path(ledger.path).parent.name


def _request_id(row: dict[str, Any]) -> str | None:
    info = row.get("extra_info")
    meta = info.get("task_metadata") if isinstance(info, dict) else None
    return meta.get("request_id") if isinstance(meta, dict) else None


def request_ids(path: Path) -> list[str | None]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["extra_info"])
    return [_request_id({"extra_info": info}) for info in table.column("extra_info").to_pylist()]
