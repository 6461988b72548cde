"""What the SWE-bench evaluation harness says about predictions: its run report and its
per-instance log folders, and which attempt each of them is about.

The run report is the JSON `python -m swebench.harness.run_evaluation` writes as
`<model_name_or_path>.<run_id>.json`: `resolved_ids`, `unresolved_ids`, `error_ids`,
`empty_patch_ids` (plus counts and `submitted_ids`, `completed_ids`, `incomplete_ids`). The
harness evaluates one prediction per instance, so the report is about the predictions file
it was given.

The per-instance folders are `logs/run_evaluation/<run_id>/<model>/<instance_id>/` with
`report.json` (`{instance_id: {"resolved": bool, "tests_status": ...}}`; absent when the
evaluation errored: patch not applied, timeout), `test_output.txt`, `run_instance.log` and
`patch.diff`, the patch it evaluated. `eval_dir` may be the `<model>` folder or any folder
up to `logs/`: instance folders are found up to four levels down.

An attempt is labelled by (first that applies): the instance folder whose `patch.diff` is
the attempt's patch; for the attempt the predictions file held, an instance folder without
`patch.diff`, else the run report. Attempts nothing evaluated get no label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchsmith.errors import ConfigError

OUTCOME_KEYS = ("resolved_ids", "unresolved_ids", "error_ids", "empty_patch_ids")
_COUNTS = {"resolved_ids": "resolved_instances", "unresolved_ids": "unresolved_instances",
           "error_ids": "error_instances", "empty_patch_ids": "empty_patch_instances"}
_REPORT_SHAPE = ("expected the SWE-bench harness's run report (<model>.<run_id>.json) with "
                 "resolved_ids, unresolved_ids, error_ids and empty_patch_ids")
_MAX_DEPTH = 4  # logs/ -> run_evaluation/ -> <run_id>/ -> <model>/ -> <instance_id>/


@dataclass(frozen=True)
class Adapted:
    """An adapter's entries, and how many attempts it left out, by reason."""

    entries: list[dict[str, Any]]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    path: Path
    outcome: dict[str, str]  # instance id -> resolved | unresolved | error | empty_patch


@dataclass(frozen=True)
class InstanceEval:
    """One per-instance log folder."""

    instance_id: str
    folder: Path
    resolved: bool | None  # None: no report.json (the evaluation errored)
    patch: str | None  # patch.diff, the evaluated patch
    test_stdout: str | None  # test_output.txt, else run_instance.log


@dataclass(frozen=True)
class Label:
    resolved: bool
    evaluation: str  # instance_report | instance_error | run_report:<outcome>
    test_stdout: str | None


def read_json(path: Path, what: str) -> Any:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "", f"file not found; expected {what}") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror or e}") from None
    try:
        return orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))  # a UTF-8 byte order mark
    except orjson.JSONDecodeError as e:
        raise ConfigError(str(path), "", f"not valid JSON ({e}); expected {what}") from None


def read_run_report(path: Path) -> RunReport:
    """The harness's run report; one-line errors for a file of another shape."""
    data = read_json(path, "the SWE-bench harness's run report (<model>.<run_id>.json)")
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", f"not a JSON object; {_REPORT_SHAPE}")
    outcome: dict[str, str] = {}
    for key in OUTCOME_KEYS:
        ids = data.get(key)
        if ids is None:
            raise ConfigError(str(path), key, f"missing; {_REPORT_SHAPE}")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ConfigError(str(path), key, "must be a list of instance ids")
        count = data.get(_COUNTS[key])
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise ConfigError(str(path), _COUNTS[key], f"is {count!r:.20}: must be a whole number")
        if isinstance(count, int) and count != len(ids):
            raise ConfigError(str(path), _COUNTS[key],
                              f"is {count} but {key} lists {len(ids)}: the file was edited")
        for iid in ids:
            if iid in outcome:
                raise ConfigError(str(path), key,
                                  f"{iid} is also in {outcome[iid]}_ids: an instance has one "
                                  "outcome")
            outcome[iid] = key.removesuffix("_ids")
    return RunReport(Path(path), outcome)


def find_evaluations(eval_dir: Path, instance_ids: set[str]) -> dict[str, list[InstanceEval]]:
    """The per-instance log folders under `eval_dir` of the given instances."""
    root = Path(eval_dir)
    if not root.is_dir():
        raise ConfigError(str(root), "", "not a folder; expected the harness's "
                          "logs/run_evaluation/<run_id>/<model> folder (or one above it)")
    out: dict[str, list[InstanceEval]] = {}
    for folder in sorted(_instance_folders(root, instance_ids, _MAX_DEPTH)):
        ev = _read_instance(folder)
        out.setdefault(ev.instance_id, []).append(ev)
    return out


def _instance_folders(root: Path, ids: set[str], depth: int) -> list[Path]:
    found: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError as e:
        raise ConfigError(str(root), "", f"cannot read the folder: {e.strerror or e}") from None
    for d in entries:
        if not d.is_dir():
            continue
        if d.name in ids:
            found.append(Path(d.path))
        elif depth > 1:
            found += _instance_folders(Path(d.path), ids, depth - 1)
    return found


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror or e}") from None


def _read_instance(folder: Path) -> InstanceEval:
    iid = folder.name
    report = folder / "report.json"
    resolved: bool | None = None
    text = _read_text(report)
    if text is not None:
        # The harness counts an empty report.json as an error; a malformed one is not its.
        resolved = _resolved_of(report, iid, text) if text.strip() else None
    stdout = _read_text(folder / "test_output.txt")
    if stdout is None:
        stdout = _read_text(folder / "run_instance.log")
    return InstanceEval(iid, folder, resolved, _read_text(folder / "patch.diff"), stdout)


def _resolved_of(path: Path, iid: str, text: str) -> bool:
    shape = f'expected the harness\'s per-instance report {{"{iid}": {{"resolved": bool, ...}}}}'
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ConfigError(str(path), "", f"not valid JSON ({e}); {shape}") from None
    entry = data.get(iid) if isinstance(data, dict) else None
    resolved = entry.get("resolved") if isinstance(entry, dict) else None
    if not isinstance(resolved, bool):
        raise ConfigError(str(path), f"{iid}.resolved", f"missing or not true/false; {shape}")
    return resolved


def same_patch(a: str | None, b: str | None) -> bool:
    """The harness writes the prediction's patch to patch.diff as is; tolerate newlines
    added or dropped around it (SWE-agent's submissions start with one)."""
    return a is not None and b is not None and a.strip("\r\n") == b.strip("\r\n")


# An attempt with no patch: failed, whatever the harness says of its instance.
NO_PATCH = Label(False, "no_patch", None)


def read_evaluations(report: Path, submitted: dict[str, str], known: set[str], what: str,
                     eval_dir: Path | None) -> Evaluations:
    """The run report at `report`, checked to be about `submitted` (`check_report_matches`),
    and the instance folders of the `known` instances under `eval_dir` (none without it)."""
    run_report = read_run_report(Path(report))
    check_report_matches(run_report, submitted, known, what)
    folders = find_evaluations(Path(eval_dir), known) if eval_dir is not None else {}
    return Evaluations(run_report, folders)


@dataclass(frozen=True)
class Evaluations:
    """The run report and the instance folders, for labelling attempts."""

    report: RunReport
    folders: dict[str, list[InstanceEval]]

    def label(self, iid: str, patch: str, submitted: bool) -> Label | None:
        """The label of an attempt of `iid` with `patch` (non-empty); `submitted`: it is the
        prediction of `iid` in the predictions file the run report is about."""
        evs = self.folders.get(iid, [])
        for ev in evs:
            if same_patch(ev.patch, patch):
                return _from_folder(ev)
        if not submitted:
            return None
        unnamed = [ev for ev in evs if ev.patch is None]
        if len(unnamed) > 1:
            where = ", ".join(str(ev.folder) for ev in unnamed)
            raise ConfigError(where, "patch.diff",
                              f"missing in several folders of {iid}: which attempt each one "
                              "evaluated is unknown; keep the harness's patch.diff")
        if unnamed:
            return _from_folder(unnamed[0])
        outcome = self.report.outcome.get(iid)
        if outcome is None:
            return None
        # folders left here evaluated other patches: their output is not this attempt's
        return Label(outcome == "resolved", f"run_report:{outcome}", None)


def _from_folder(ev: InstanceEval) -> Label:
    if ev.resolved is None:
        return Label(False, "instance_error", ev.test_stdout)
    return Label(ev.resolved, "instance_report", ev.test_stdout)


def check_report_matches(report: RunReport, submitted: dict[str, str], known: set[str],
                         what: str) -> None:
    """The report must be about these predictions (`submitted`: instance -> non-empty
    patch; `known`: every instance of the attempts): `what` names them in errors."""
    for iid, outcome in sorted(report.outcome.items()):
        key = f"{outcome}_ids"
        if iid not in known:
            raise ConfigError(str(report.path), key,
                              f"{iid} has no attempt in {what}: the report is of other "
                              "predictions")
        if outcome == "empty_patch" and iid in submitted:
            raise ConfigError(str(report.path), key,
                              f"{iid}: the report says its prediction was empty, but "
                              f"{what} holds a patch for it: the report is of other "
                              "predictions")
        if outcome != "empty_patch" and iid not in submitted:
            raise ConfigError(str(report.path), key,
                              f"{iid}: {what} holds no patch for it: the report is of "
                              "other predictions")
