"""Rollout outputs from the ledger: per-sample files, output.jsonl, failures.jsonl, and
SWE-bench predictions (`preds.jsonl`: instance_id, model_name_or_path, model_patch)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchsmith.export.markdown import safe_name
from benchsmith.store.ledger import Ledger, Unit
from benchsmith.store.rundir import RunDir, atomic_write_bytes, atomic_write_jsonl


def _attempt_totals(ledger: Ledger) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for a in ledger.attempts(with_output=False):
        d = out.setdefault(a["unit_id"], {"input_tokens": 0, "cached_input_tokens": 0,
                                          "output_tokens": 0, "reasoning_tokens": 0,
                                          "cost_usd": 0.0, "attempts": 0})
        for k in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
            d[k] += a[k]
        d["cost_usd"] += a["cost_usd"] or 0.0
        d["attempts"] += 1
    return out


def _last_raw(ledger: Ledger, unit: Unit | None) -> str | None:
    if unit is None:
        return None
    raws = [a["raw_output"] for a in ledger.attempts(unit.unit_id) if a["raw_output"]]
    return raws[-1] if raws else None


def sample_rows(ledger: Ledger, second_stage: str) -> list[dict[str, Any]]:
    """One row per (instance, sample): both stages, the result, status and reason."""
    units = list(ledger.units(current_plan=True))
    first = {u.unit_id: u for u in units if u.stage == "localize"}
    second_by_parent = {u.parent_id: u for u in units if u.stage == second_stage}
    totals = _attempt_totals(ledger)
    rows = []
    for lu in sorted(first.values(), key=lambda u: (u.dataset, u.task_id, u.sample_index)):
        su = second_by_parent.get(lu.unit_id)
        loc = (lu.result or [{}])[0] if lu.state == "ok" else {}
        res = (su.result or [{}])[0] if su is not None and su.state == "ok" else {}
        meta = (su.spec.get("meta") or {}) if su is not None else {}
        over = meta.get("over_budget_files", [])
        if lu.state != "ok":
            status, reason = lu.state, f"localize: {lu.reason}"
        elif su is None:
            # Stage 2 is only planned when a localized file fits: all were over the budget.
            over = loc.get("localized_files", [])
            status = "skipped"
            reason = f"over the context budget (recipe_options.max_context_tokens): {', '.join(over)}"
        else:
            status = su.state
            reason = None if su.state == "ok" else f"{second_stage}: {su.reason}"
        usage: dict[str, Any] = {}
        for u in (lu, su):
            for k, v in totals.get(u.unit_id, {}).items() if u is not None else ():
                usage[k] = usage.get(k, 0) + v
        cost = usage.pop("cost_usd", 0.0)
        rows.append({
            "instance_id": lu.task_id,
            "sample": lu.sample_index,
            "custom_id": f"{lu.task_id}__pass{lu.sample_index + 1}",
            "model": lu.model,
            "localized_files": loc.get("localized_files", []),
            "dropped_files": loc.get("dropped_files", []),
            "over_budget_files": over,
            "localize_answer": loc.get("raw_answer") or _last_raw(ledger, lu),
            f"{second_stage}_answer": res.get("raw_answer") or _last_raw(ledger, su),
            "model_patch": res.get("model_patch"),
            "test_script": res.get("test_script"),
            "status": status,
            "reason": reason,
            "usage": usage,
            "cost_usd": cost,
            "request_ids": [u.unit_id for u in (lu, su) if u is not None],
        })
    return rows


def sample_files(rows: list[dict[str, Any]], second_stage: str) -> dict[Path, str]:
    """samples/<instance>/sample_<k>.diff|.py (relative to the run dir) -> text, per ok row."""
    ext = ".diff" if second_stage == "repair" else ".py"
    out: dict[Path, str] = {}
    for r in rows:
        body = r["model_patch"] if second_stage == "repair" else r["test_script"]
        if r["status"] == "ok" and body:
            out[Path("samples", safe_name(r["instance_id"]), f"sample_{r['sample']}{ext}")] = body
    return out


def jsonl_files(
    rows: list[dict[str, Any]], second_stage: str, model_name_or_path: str
) -> dict[str, list[dict[str, Any]]]:
    """The JSONL files at the top of the run dir -> their rows, from the sample rows."""
    files = {"output.jsonl": rows, "failures.jsonl": [r for r in rows if r["status"] != "ok"]}
    if second_stage == "repair":
        first_ok: dict[str, dict[str, Any]] = {}
        by_sample: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            if r["status"] == "ok" and r["model_patch"]:
                first_ok.setdefault(r["instance_id"], r)
                by_sample.setdefault(r["sample"], []).append(r)
        files["preds.jsonl"] = [_pred(r, model_name_or_path) for r in first_ok.values()]
        if len({r["sample"] for r in rows}) > 1:
            for k, rs in by_sample.items():
                files[f"preds_pass{k + 1}.jsonl"] = [_pred(r, model_name_or_path) for r in rs]
    return files


def write_rollout_outputs(
    ledger: Ledger, rd: RunDir, second_stage: str, model_name_or_path: str
) -> dict[str, int]:
    rows = sample_rows(ledger, second_stage)
    samples = rd.root / "samples"
    if samples.exists():
        shutil.rmtree(samples)  # regenerated whole from the ledger
    for rel, body in sample_files(rows, second_stage).items():
        path = rd.root / rel
        _inside(path, samples)
        atomic_write_bytes(path, body.encode("utf-8"))
    files = jsonl_files(rows, second_stage, model_name_or_path)
    for name, file_rows in files.items():
        atomic_write_jsonl(rd.root / name, file_rows)
    n_preds = len(files.get("preds.jsonl", []))
    return {"samples": len(rows), "ok": sum(r["status"] == "ok" for r in rows), "preds": n_preds}


def _pred(r: dict[str, Any], model: str) -> dict[str, Any]:
    return {"instance_id": r["instance_id"], "model_name_or_path": model,
            "model_patch": r["model_patch"]}


def _inside(path: Path, root: Path) -> None:
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"refusing to write outside {root}: {path}")
