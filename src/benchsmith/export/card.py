"""The dataset card (README.md) of an export: the run's config summary, counts, cost and the
fields of each table. Its YAML header lists one `datasets` config per table (JSONL and
parquet), so `datasets.load_dataset(<folder>, <table>)` finds the files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from benchsmith.recipes.base import Recipe
from benchsmith.store.ledger import Ledger
from benchsmith.store.ledger_reads import CURRENT_PLAN
from benchsmith.store.plans import current_plan
from benchsmith.store.rundir import RunDir

CARD = "README.md"
MARKER = "<!-- benchsmith export -->"

# Fields every record has (export.jsonl.record_rows) and those of SWE-bench predictions.
KNOWN = {
    "dataset": "the dataset of the run the task belongs to",
    "task_id": "the task's id in its dataset",
    "request_id": "the ledger's id of the request whose answer this record is from",
    "model": "the model that answered",
    "attempt": "which API call of the request (1-based) was accepted",
    "gold_leak": "whether a request of the task carried the task's gold answer verbatim "
                 "(manifests/<dataset>_gold_leaks.json)",
    "instance_id": "the SWE-bench instance id",
    "model_name_or_path": "the model name the SWE-bench harness reports",
    "model_patch": "the predicted patch (a unified diff)",
}


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    recipe: str
    version: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    fingerprint: str | None
    plans: int
    counts: dict[str, dict[str, int]]  # dataset -> state -> units (current plan)
    spent_usd: float
    usage: dict[str, int]
    descriptions: dict[str, str]


def run_summary(rd: RunDir, ledger: Ledger, recipe: Recipe, stage: str) -> RunSummary:
    counts: dict[str, dict[str, int]] = {}
    for ds, state, n in ledger.db.execute(
        f"SELECT dataset, state, COUNT(*) FROM units WHERE {CURRENT_PLAN} "
        "GROUP BY dataset, state ORDER BY dataset, state"
    ):
        counts.setdefault(ds, {})[state] = n
    models = [r[0] for r in ledger.db.execute(
        f"SELECT DISTINCT model FROM units WHERE {CURRENT_PLAN} ORDER BY model")]
    plan = current_plan(ledger)
    n_plans = ledger.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0]
    settled, unsettled = ledger.spend()
    spec = ledger.db.execute(
        f"SELECT spec_json FROM units WHERE stage=? AND {CURRENT_PLAN} LIMIT 1", (stage,)
    ).fetchone()
    schema = orjson.loads(spec[0]).get("schema") if spec else None
    return RunSummary(
        rd.run_id, recipe.name, recipe.version, tuple(models), tuple(ledger.datasets()),
        plan.fingerprint if plan else None, n_plans, counts, settled + unsettled,
        ledger.usage_totals(), {**_schema_descriptions(schema), **KNOWN},
    )


def _schema_descriptions(schema: Any, out: dict[str, str] | None = None) -> dict[str, str]:
    """Property name -> description, from the JSON Schema the stage asked the model for."""
    out = {} if out is None else out
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and isinstance(sub.get("description"), str):
                out.setdefault(name, sub["description"])
        for v in schema.values():
            if isinstance(v, (dict, list)):
                _schema_descriptions(v, out)
    elif isinstance(schema, list):
        for v in schema:
            _schema_descriptions(v, out)
    return out


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def card_text(s: RunSummary, fmt: str, tables: list[Any]) -> str:
    """The card: `tables` are export.datasets.Table (name, source, rows, columns)."""
    written = [t for t in tables if t.rows]
    lines = []
    if fmt != "hf":
        lines += ["---", "configs:"]
        for i, t in enumerate(written):
            lines += [f"- config_name: {t.name}", f"  data_files: {t.name}.{fmt}"]
            if i == 0:
                lines.append("  default: true")
        lines += ["---", ""]
    lines += [MARKER, f"# {s.run_id}: {s.recipe} records", ""]
    how = {
        "jsonl": "`datasets.load_dataset(\"json\", data_files=\"<table>.jsonl\")`",
        "parquet": "`datasets.load_dataset(\"parquet\", data_files=\"<table>.parquet\")`",
        "hf": "`datasets.load_from_disk(\"<this folder>\")`: a DatasetDict, one split per "
              "table (splits may have different fields)",
    }[fmt]
    lines += [f"Exported by `benchsmith export` ({fmt}). Load with {how}.", ""]
    lines += ["## Run", "",
              f"- recipe: {s.recipe} (version {s.version})",
              f"- models: {', '.join(s.models) or '-'}",
              f"- datasets: {', '.join(s.datasets) or '-'}",
              f"- plan fingerprint: {s.fingerprint or '-'} ({s.plans} plan(s))",
              f"- cost: ${s.spent_usd:.4f}",
              "- tokens: " + ", ".join(f"{k} {v:,}" for k, v in s.usage.items()), ""]
    states = ("ok", "invalid", "failed", "skipped", "pending")
    lines += ["## Requests per state (current plan)", "",
              "| dataset | " + " | ".join(states) + " |", "|---" * (len(states) + 1) + "|"]
    for ds, c in s.counts.items():
        lines.append(f"| {ds} | " + " | ".join(str(c.get(st, 0)) for st in states) + " |")
    lines += ["", "## Tables", ""]
    for t in tables:
        where = f"`{t.name}.{fmt}`" if fmt != "hf" else f"split `{t.name}`"
        if not t.rows:
            lines += [f"### {t.name}", "", f"{t.source}: no rows, not written.", ""]
            continue
        lines += [f"### {t.name}", "", f"{t.source}: {len(t.rows)} rows in {where}.", "",
                  "| field | type | description |", "|---|---|---|"]
        for c in t.columns:
            typ = "string (JSON)" if c.type == "json" else c.type
            lines.append(f"| {_cell(c.name)} | {typ} | {_cell(s.descriptions.get(c.name, ''))} |")
        lines.append("")
    if fmt == "jsonl":
        lines += ["Rows are the records as they are; `json` type: objects, nested or mixed "
                  "values (in parquet and hf exports, JSON text).", ""]
    else:
        lines += ["Types: a field has the same type in every row; `string (JSON)`: objects, "
                  "nested or mixed values as JSON text (`json.loads` them); a field a row "
                  "lacks is null.", ""]
    return "\n".join(lines)
