"""Shared by the finetune tests: trajectory entries built from real SWE-bench Lite rows (the
gold patch as a resolved attempt, mutated patches as failed ones) and file helpers."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared/data"
LITE = SHARED / "swebench_lite/swebench_lite_test.jsonl.gz"
TOKENIZER = SHARED / "models/fake_gpt2/tokenizer.json"

# A real pytest failure tail, as a failed attempt's test output.
ASSERT_STDOUT = """============================= test session starts ==============================
collected 3 items

tests/test_mod.py ..F                                                    [100%]

=================================== FAILURES ===================================
________________________________ test_separable ________________________________

    def test_separable():
>       assert separability_matrix(cm).tolist() == expected
E       AssertionError: assert [[True, True], [True, True]] == [[True, False], [False, True]]

tests/test_mod.py:42: AssertionError
=========================== short test summary info ============================
FAILED tests/test_mod.py::test_separable - AssertionError: assert [[True, True...
========================= 1 failed, 2 passed in 0.31s ==========================
"""


@lru_cache(maxsize=1)
def _lite() -> tuple[dict[str, Any], ...]:
    with gzip.open(LITE, "rt", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def lite_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """n real SWE-bench Lite rows (sorted by instance_id), from `start`."""
    if not LITE.is_file():
        pytest.skip(f"real data not found at {LITE}")
    return list(_lite()[start:start + n])


def changed_line(patch: str) -> str:
    """The patch with its first added line changed: still a diff, now a wrong fix."""
    lines = patch.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("+") and not line.startswith("+++"):
            lines[i] = line + "  # off by one"
            return "\n".join(lines)
    raise AssertionError("the gold patch adds no line")


def files_of(patch: str) -> list[str]:
    return [line[6:] for line in patch.splitlines() if line.startswith("+++ b/")]


def attempt(row: dict[str, Any], n: int, resolved: bool, patch: str | None = None,
            category: str | None = None, stdout: str | None = None,
            **extra: Any) -> dict[str, Any]:
    """A trajectory entry of a real instance: the gold patch unless `patch` is given."""
    gold = row["patch"]
    return {
        "instance_id": row["instance_id"], "repo": row["repo"],
        "problem_statement": row["problem_statement"],
        "patch": gold if patch is None else patch, "resolved": resolved, "attempt": n,
        "failure_category": category, "test_stdout": stdout,
        "localised_files": files_of(gold), **extra,
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data.encode("utf-8")))
    else:
        path.write_text(data, encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def scenario() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Entries over 8 real instances A..H covering every filter reason and pair type, and the
    rows by letter. Expected with the default filters (min 20 words, max 8000 chars):

    A: 1 failed (assertion) -> 2 resolved: positive A2, reflection A1->A2, preference A1/A2
    B: 1 resolved, 2 resolved with the same patch: positive B1 (B2 a duplicate)
    C: 1 resolved, 2 failed (exception): positive C1, preference C2/C1, no reflection
    D: 1 failed (syntax), 2 not a diff (filtered), 3 resolved: positive D3, reflection
       D1->D3, preference D1/D3
    E: 1 failed category unknown (filtered), 2 resolved: positive E2
    F: 1 failed, empty patch AND unknown (counted as unknown), 2 failed (timeout, kept, no
       pair: never resolved), 3 failed empty patch (filtered)
    G: 1 resolved but too long (filtered), 2 failed (kept, no pair: no resolved kept)
    H: 1 resolved, problem statement too short (filtered)
    """
    rows = dict(zip("ABCDEFGH", lite_rows(8)))
    A, B, C, D, E, F, G, H = (rows[k] for k in "ABCDEFGH")
    too_long = G["patch"] + "\n".join(f"+# padding line {i}" for i in range(400)) + "\n"
    assert len(too_long) > 8000
    entries = [
        attempt(A, 1, False, changed_line(A["patch"]), "assertion_failure", ASSERT_STDOUT),
        attempt(A, 2, True),
        attempt(B, 1, True), attempt(B, 2, True),
        attempt(C, 1, True),
        attempt(C, 2, False, changed_line(C["patch"]), "exception:TypeError",
                "E   TypeError: unsupported operand type(s)"),
        attempt(D, 1, False, changed_line(D["patch"]), "syntax_error",
                "E     SyntaxError: invalid syntax"),
        attempt(D, 2, False, "I would change the function to return early.", "syntax_error"),
        attempt(D, 3, True),
        attempt(E, 1, False, changed_line(E["patch"]), "unknown"),
        attempt(E, 2, True),
        attempt(F, 1, False, "", "unknown"),
        attempt(F, 2, False, changed_line(F["patch"]), "timeout", "Timeout >1800s"),
        {**attempt(F, 3, False, "", "patch_apply_failure"), "patch": None},
        attempt(G, 1, True, too_long),
        attempt(G, 2, False, changed_line(G["patch"]), "assertion_failure"),
        {**attempt(H, 1, True),
         "problem_statement": " ".join(H["problem_statement"].split()[:10])},
    ]
    return entries, rows
