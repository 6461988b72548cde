"""The `gold_leaks` check: each dataset's manifests/<ds>_gold_leaks.json holds what the
ledger's findings say (store/leak_rows.py), and the counts of requests carrying gold."""

from __future__ import annotations

from benchsmith.store import leak_rows
from benchsmith.validate.run_checks.base import Outcome, Problems, no_ledger
from benchsmith.validate.run_checks.loader import Run


def check_gold_leaks(run: Run) -> Outcome:
    if run.ledger is None:
        return no_ledger()
    db = run.ledger.db
    if not leak_rows.has_table(db):
        return "no findings recorded (a run made before the gold-leak guard)", []
    p = Problems()
    found = leak_rows.findings(db)
    for ds in run.datasets():
        path = run.rd.manifest(ds, "gold_leaks")
        ok, val, prob = run.json(path)
        if not ok:
            p.add(prob)
            continue
        want = leak_rows.manifest_rows(found, ds)
        if val != want:
            p.add(f"{run.rel(path)}: differs from the ledger's findings "
                  f"({len(val) if isinstance(val, list) else '?'} rows, the ledger has {len(want)})")
    return leak_rows.describe(leak_rows.summary(found)), p.finish()
