"""What a recipe's readable rendering returns, and where it writes by default. Apart from
`export.readable` (which opens the run and finds its recipe) so renderers in `recipes/`
import it without importing back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

READABLE = "readable"  # the default folder inside the run dir
# The layouts: a few large part files per dataset and model, or a file per record.
BULK, PER_RECORD = "bulk", "per_record"
LAYOUTS = (BULK, PER_RECORD)


@dataclass(frozen=True)
class ReadableReport:
    """What a rendering wrote (`plans`: the records shown)."""

    index: Path
    failed_index: Path
    files: tuple[Path, ...] = ()
    failed_files: tuple[Path, ...] = ()
    tasks: int = 0
    plans: int = 0
    removed: tuple[Path, ...] = ()
