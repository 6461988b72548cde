"""Read one run directory for the checks: files parsed once and cached, the ledger read-only."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from benchsmith.store.io_errors import StorageError
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir

if TYPE_CHECKING:
    from benchsmith.recipes.base import Recipe


@dataclass
class Jsonl:
    rows: list[tuple[int, Any]]  # (line number, parsed value) of the lines that parse
    errors: list[str]  # line-level problems (not JSON, not an object, blank)


class Run:
    """Lazily loaded pieces of one run directory, shared by the checks."""

    def __init__(self, root: Path):
        self.rd = RunDir(root)
        self.root = root
        self._jsonl: dict[Path, Jsonl | None] = {}
        self._json: dict[Path, tuple[bool, Any, str]] = {}
        self.ledger: Ledger | None = None
        self.ledger_problems: list[str] = []
        self.recipe: Recipe | None = None

    def rel(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def missing(self, p: Path) -> str:
        return f"missing {self.rel(p)}"

    # -- paths (all from RunDir) ---------------------------------------------------------
    def stage_files(self, ds: str) -> list[tuple[str, Path, Path]]:
        """(stage, records file, failed-attempts file) of each stage of the run's recipe."""
        stages = [s.name for s in self.recipe.stages] if self.recipe is not None else []
        return [(s, self.rd.dataset_file(ds, f"{s}.jsonl"), self.rd.failed_file(ds, f"{s}.jsonl"))
                for s in stages]

    def dataset_roots(self) -> list[Path]:
        """The folders holding one sub-folder per dataset: datasets/ and failed_plans/datasets/."""
        return [self.rd.dataset_file("-", "-").parents[1], self.rd.failed_file("-", "-").parents[1]]

    # -- files ---------------------------------------------------------------------------
    def jsonl(self, path: Path) -> Jsonl | None:
        """Parsed lines of a JSONL file, or None when the file is missing."""
        if path not in self._jsonl:
            self._jsonl[path] = self._read_jsonl(path) if path.is_file() else None
        return self._jsonl[path]

    def _read_jsonl(self, path: Path) -> Jsonl:
        rows: list[tuple[int, Any]] = []
        errors: list[str] = []
        with path.open("rb") as fh:
            for i, line in enumerate(fh, start=1):
                where = f"{self.rel(path)}:{i}"
                if not line.strip():
                    errors.append(f"{where}: blank line")
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    errors.append(f"{where}: not valid JSON ({e})")
                    continue
                if not isinstance(obj, dict):
                    errors.append(f"{where}: not a JSON object")
                    continue
                rows.append((i, obj))
        return Jsonl(rows, errors)

    def json(self, path: Path) -> tuple[bool, Any, str]:
        """(ok, value, problem) of a JSON file."""
        if path not in self._json:
            if not path.is_file():
                self._json[path] = (False, None, self.missing(path))
            else:
                try:
                    self._json[path] = (True, orjson.loads(path.read_bytes()), "")
                except orjson.JSONDecodeError as e:
                    self._json[path] = (False, None, f"{self.rel(path)}: not valid JSON ({e})")
        return self._json[path]

    # -- config --------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any] | None:
        ok, val, _ = self.json(self.rd.config_json)
        return val if ok and isinstance(val, dict) else None

    def config_problem(self) -> str:
        """Why `config` is None."""
        return self.json(self.rd.config_json)[2] or "config/run_config.json is not an object"

    # -- ledger --------------------------------------------------------------------------
    def open_ledger(self) -> list[str]:
        """Open the ledger read-only; problems if it is not a usable ledger (the same line
        every command that opens a run prints)."""
        try:
            led = Ledger.open_readonly(self.rd.ledger)
        except StorageError as e:
            return [str(e)]
        except sqlite3.Error as e:
            return [f"{self.rd.ledger}: cannot be opened ({e})"]
        try:
            check = [r[0] for r in led.db.execute("PRAGMA quick_check").fetchall()]
        except (StorageError, sqlite3.Error) as e:
            led.close()
            return [str(e)]
        if check != ["ok"]:
            led.close()
            return [f"ledger.sqlite: integrity check failed: {'; '.join(check[:5])}"]
        self.ledger = led
        return []

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def datasets(self) -> list[str]:
        return self.ledger.datasets() if self.ledger is not None else []
