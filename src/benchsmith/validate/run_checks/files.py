"""The checks on the run directory's files as bytes: `files_parse` and `no_secret`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from benchsmith.validate.run_checks.base import Outcome, Problems
from benchsmith.validate.run_checks.loader import Run

MIN_SECRET_CHARS = 8  # shorter "keys" would match everywhere; they are not scanned
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TMP_NAME = re.compile(r"^\..*\.tmp$")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _expected_files(run: Run) -> list[Path]:
    """The files every run has, plus what its recipe declares: prompt templates, one records
    and one failed-attempts file per stage and dataset, and the recipe's own outputs."""
    rd, recipe = run.rd, run.recipe
    files = [rd.ledger, rd.runs_jsonl, rd.calls_log, rd.config_json]
    if recipe is not None:
        files += [rd.prompts / name for name, _ in recipe.templates]
        files += [rd.root / name for name in recipe.outputs]
    for ds in run.datasets():
        files += [rd.manifest(ds, k) for k in ("all", "complete", "incomplete")]
        files += [rd.dataset_file(ds, "tasks.jsonl"), rd.failed_file(ds, "tasks.jsonl")]
        files += [x for _, *pair in run.stage_files(ds) for x in pair]
    return files


def check_files(run: Run, files: list[Path]) -> Outcome:
    """Expected files exist, every .json/.jsonl of `files` parses, no temp file is left."""
    p = Problems()
    for f in files:
        if _TMP_NAME.match(f.name):
            p.add(
                f"{run.rel(f)}: temp file left behind (an interrupted write)",
                "temp file left behind",
            )
    for f in _expected_files(run):
        if not f.is_file():
            p.add(run.missing(f), "missing file")
    n_lines = 0
    for f in files:
        if _TMP_NAME.match(f.name):
            continue
        if f.suffix == ".jsonl":
            parsed = run.jsonl(f)
            if parsed is None:
                continue
            n_lines += len(parsed.rows) + len(parsed.errors)
            for e in parsed.errors:
                p.add(e, f"bad JSONL line in {run.rel(f)}")
        elif f.suffix == ".json":
            ok, _, prob = run.json(f)
            if not ok:
                p.add(prob)
    return f"{len(files)} file(s), {n_lines} JSONL line(s)", p.finish()


def _contains(path: Path, needles: list[bytes]) -> list[bytes]:
    """Which needles occur in the file's bytes (streamed, so large ledgers are fine)."""
    keep = max(len(n) for n in needles) - 1
    found: list[bytes] = []
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            buf = tail + chunk
            for n in needles:
                if n not in found and n in buf:
                    found.append(n)
            tail = buf[-keep:] if keep else b""
    return found


def _key_variable(run: Run) -> str | Outcome:
    """The configured key variable's name, or the check's outcome when there is none to use."""
    cfg = run.config
    if cfg is None:
        return "key variable unknown", [run.config_problem()]
    oa = cfg.get("openai")
    var = oa.get("api_key_env") if isinstance(oa, dict) else None
    if var is None:
        return "no key variable configured (openai.api_key_env is null)", []
    if not isinstance(var, str) or not _ENV_NAME.match(var):
        why = (
            "config/run_config.json: openai.api_key_env must name an environment variable "
            "(letters, digits, _); it does not look like one (was the key itself put there?)"
        )
        return "bad key variable", [why]
    return var


def _needles(value: str) -> dict[bytes, str]:
    """The value and each of its comma-separated keys, long enough to scan for, with labels."""
    keys = [k.strip() for k in value.split(",")]
    candidates = [(value.strip(), "the value")] + [
        (k, f"key {i + 1} of {len(keys)}") for i, k in enumerate(keys) if len(keys) > 1
    ]
    labels: dict[bytes, str] = {}
    for secret, label in candidates:
        if len(secret) >= MIN_SECRET_CHARS:
            labels.setdefault(secret.encode(), label)
    return labels


def check_secret(run: Run, files: list[Path]) -> Outcome:
    """The configured key variable is a name, and its value is in none of `files`."""
    var = _key_variable(run)
    if isinstance(var, tuple):
        return var
    value = os.environ.get(var)
    if not value:
        return f"${var} is not set here; nothing to scan for", []
    labels = _needles(value)
    needles = list(labels)
    if not needles:
        return f"${var} holds no key of {MIN_SECRET_CHARS}+ characters; nothing to scan for", []
    p = Problems()
    for f in files:
        try:
            hits = _contains(f, needles)
        except OSError as e:
            p.add(f"{run.rel(f)}: cannot be read ({e})")
            continue
        for hit in hits:
            p.add(f"{run.rel(f)}: contains {labels[hit]} of ${var}", "secret found")
    return f"{len(files)} file(s) scanned for ${var} ({len(needles)} value(s))", p.finish()
