"""The gold-leak rule of the default settings computed from the raw SWE-bench Verified rows
(independently of benchsmith.leaks), and configs over chosen Verified instances: shared by
the guard's tests and the run report's."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from helpers import cfg_dict

from benchsmith import api
from benchsmith.config import RunConfig, parse_config
from benchsmith.leaks.index import DEFAULT_STOP_LINES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VERIFIED = DATA / "swebench_verified" / "swebench_verified_test.jsonl.gz"


def verified_rows() -> dict[str, dict[str, Any]]:
    with gzip.open(VERIFIED, "rt", encoding="utf-8") as f:
        return {r["instance_id"]: r for r in map(json.loads, f)}


def gold_lines(row: dict[str, Any]) -> set[str]:
    """The rule of the default settings, from the raw diff: added lines of the patch and
    test patch, stripped, 25+ characters, not boilerplate."""
    out = set()
    for diff in (row["patch"], row["test_patch"]):
        for ln in diff.splitlines():
            if ln[:1] == "+" and not ln.startswith("+++ "):
                s = ln[1:].strip()
                if len(s) >= 25 and s not in DEFAULT_STOP_LINES:
                    out.add(s)
    return out


def leaking_lines(text: str, gold: set[str]) -> list[str]:
    return [ln for ln in text.splitlines() if any(g in ln for g in gold)]


def pick(rows: dict[str, dict[str, Any]], field: str, n: int, *, clean: str | None = None
         ) -> list[str]:
    """The first `n` ids whose `field` holds gold lines (and whose `clean` field holds none)."""
    out = []
    for tid, r in rows.items():
        g = gold_lines(r)
        if leaking_lines(r[field], g) and not (clean and leaking_lines(r[clean], g)):
            out.append(tid)
        if len(out) == n:
            return out
    raise AssertionError(f"fewer than {n} tasks leak through {field}")


def clean_ids(rows: dict[str, dict[str, Any]], n: int) -> list[str]:
    """The first `n` ids whose problem statement and hints hold no gold line."""
    return [t for t, r in rows.items() if not leaking_lines(
        r["problem_statement"] + "\n" + r["hints_text"], gold_lines(r))][:n]


def swe_cfg(tmp_path: Path, base_url: str, ids: list[str], policy: str, run_id: str,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """A config over the Verified instances `ids` under `leak_policy: policy`."""
    ids_file = tmp_path / f"{run_id}_ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    data = cfg_dict(tmp_path, base_url, {"leaks": {"leak_policy": policy}, **(overrides or {})})
    data["datasets"] = {"swebench_verified": {"path": str(VERIFIED), "task_ids_file": str(ids_file)}}
    return parse_config(data, file=str(tmp_path / "c.yaml"), config_dir=str(tmp_path))


def swe_plan(tmp_path: Path, ids: list[str], policy: str, run_id: str) -> Path:
    """The run `run_id` planned (dry run: no model is needed to see what would be sent)."""
    return api.dry_run(swe_cfg(tmp_path, "http://127.0.0.1:9/v1", ids, policy, run_id),
                       run_id).run_dir
