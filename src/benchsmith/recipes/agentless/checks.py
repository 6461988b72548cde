"""The rollout recipes' run checks (declared by `agentless_recipe`, run by validate-run):

- ``rollout_outputs``: output.jsonl, failures.jsonl and (bug fixer) preds.jsonl and
  preds_pass<k>.jsonl hold exactly the rows the ledger yields (`benchsmith.recipes.agentless.outputs`):
  nothing added, lost or edited, and no preds file the ledger does not give.
- ``samples``: samples/<instance>/sample_<k>.diff|.py exist for exactly the ok samples, hold
  the ledger's text, and parse (a script compiles; a patch has a file header per file and
  at least one hunk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchsmith.recipes.agentless.outputs import jsonl_files, sample_files, sample_rows
from benchsmith.validate.run_checks.base import Outcome, Problems, no_ledger
from benchsmith.validate.run_checks.loader import Run
from benchsmith.validate.run_checks.matches import diff_rows

Row = dict[str, Any]


def _sample_key(r: Row) -> Any:
    return (r["instance_id"], r["sample"])


def _sample_name(r: Row) -> str:
    return f"sample {r.get('sample')!r} of {r.get('instance_id')!r}"


def _pred_key(r: Row) -> Any:
    return r["instance_id"]


def _pred_name(r: Row) -> str:
    return f"prediction for {r.get('instance_id')!r}"


def check_rollout_outputs(run: Run, second_stage: str, model_name_or_path: str) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    rows = sample_rows(run.ledger, second_stage)
    expected = jsonl_files(rows, second_stage, model_name_or_path)
    p = Problems()
    for name, want in expected.items():
        path = run.root / name
        actual = run.jsonl(path)
        if actual is None:
            p.add(run.missing(path), "missing file")
            continue
        preds = name.startswith("preds")
        diff_rows(p, name, actual, want, _pred_key if preds else _sample_key,
                  _pred_name if preds else _sample_name)
    for path in sorted(run.root.glob("preds*.jsonl")):
        if path.name not in expected:
            p.add(f"{path.name}: not written from the ledger (no such predictions)")
    n_ok = sum(r["status"] == "ok" for r in rows)
    return f"{len(rows)} sample(s), {n_ok} ok, {len(expected)} file(s)", p.finish()


def _parse_issue(path: Path, text: str) -> str | None:
    if path.suffix == ".py":
        try:
            compile(text, str(path), "exec")
        except (SyntaxError, ValueError) as e:
            return f"does not compile ({e})"
        return None
    lines = text.splitlines()
    heads = sum(ln.startswith("diff --git ") for ln in lines)
    plus = sum(ln.startswith("+++ ") for ln in lines)
    hunks = any(ln.startswith("@@ ") for ln in lines)
    # An empty new file has a header but no ---/+++ lines and no hunk.
    if not heads or plus > heads or (plus and not hunks):
        return "not a unified diff (each file needs a 'diff --git' header, then its hunks)"
    return None


def check_samples(run: Run, second_stage: str) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    expected = sample_files(sample_rows(run.ledger, second_stage), second_stage)
    root = run.root / "samples"
    found = {f.relative_to(run.root) for f in root.rglob("*") if f.is_file()}
    p = Problems()
    for rel in sorted(found - set(expected)):
        p.add(f"{rel}: not an ok sample of the ledger (added)", "sample file not in the ledger")
    for rel, want in sorted(expected.items()):
        if rel not in found:
            p.add(f"missing {rel} (an ok sample of the ledger)", "missing sample file")
            continue
        try:
            text = (run.root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            p.add(f"{rel}: cannot be read ({e})", "unreadable sample file")
            continue
        issue = _parse_issue(rel, text)
        if issue:
            p.add(f"{rel}: {issue}", "sample file does not parse")
        elif text != want:
            p.add(f"{rel}: differs from the ledger's text (edited)", "edited sample file")
    return f"{len(expected)} sample file(s)", p.finish()
