"""One rendered folder tree: atomic writes confined to its root, unique file names, and removal
of the files a previous rendering wrote that this one did not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from benchsmith.errors import BenchsmithError
from benchsmith.export.markdown import safe_name, short_hash
from benchsmith.store.rundir import atomic_write_bytes


def _inside(root: Path, target: Path) -> Path:
    """`target`, resolved; raises unless it lies inside `root` (symlinks followed)."""
    base = root.resolve()
    real = target.resolve()
    if real == base or base not in real.parents:
        raise BenchsmithError(f"{target}: refusing to write outside {base}")
    return real


class FileTree:
    """Atomic writes confined to one root; remembers what it wrote for stale cleanup.

    Pages go in `<root>/<folder>/` (an index may sit in the root); `ours` matches the page
    names this kind of tree writes, the only files `remove_stale` may delete.
    """

    def __init__(self, root: Path, ours: re.Pattern[str]):
        self.root = root
        self.ours = ours
        self.written: set[Path] = set()
        self.dirs: dict[str, str] = {}  # dataset -> folder name
        self.names: set[str] = set()  # casefolded "folder/file", to stay unique everywhere

    def dataset_dir(self, dataset: str, reserved: Iterable[str]) -> str:
        """The folder name of `dataset` (safe, unique, not one of `reserved`)."""
        if dataset not in self.dirs:
            taken = {d.casefold() for d in self.dirs.values()}
            name = safe_name(dataset, reserved=reserved)
            if name.casefold() in taken:
                name = f"{name}_{short_hash(dataset)}"
            self.dirs[dataset] = name
        return self.dirs[dataset]

    def unique(self, folder: str, stem: str) -> str:
        """`<stem>.md`, or `<stem>_<n>.md` if that name (case-folded) is taken in the tree."""
        name, n = f"{stem}.md", 1
        while f"{folder}/{name}".casefold() in self.names:
            n += 1
            name = f"{stem}_{n}.md"
        self.names.add(f"{folder}/{name}".casefold())
        return name

    def write(self, rel: Path, text: str) -> Path:
        """Write `text` to `<root>/<rel>` atomically (skipped when unchanged)."""
        target = self.root / rel
        self.root.mkdir(parents=True, exist_ok=True)
        _inside(self.root, target)
        data = text.encode("utf-8")
        # Unchanged files are left alone: re-rendering a large run costs reads, not fsyncs.
        if not (target.is_file() and not target.is_symlink() and target.read_bytes() == data):
            atomic_write_bytes(target, data)
        real = _inside(self.root, target)
        self.written.add(real)
        return target

    def remove_stale(self, skip: Path | None = None) -> list[Path]:
        """Delete files matching `ours` one folder down that this rendering did not write."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        base = self.root.resolve()
        skip_real = skip.resolve() if skip is not None and skip.exists() else None
        for sub in sorted(self.root.iterdir()):
            if sub.is_symlink() or not sub.is_dir():
                continue
            if skip_real is not None and sub.resolve() == skip_real:
                continue
            deleted = False
            for f in sorted(sub.iterdir()):
                if f.is_symlink() or not f.is_file() or not self.ours.match(f.name):
                    continue
                real = f.resolve()
                if real in self.written or real.parent.parent != base:
                    continue
                f.unlink()
                removed.append(f)
                deleted = True
            if deleted and not any(sub.iterdir()):
                sub.rmdir()
        return removed
