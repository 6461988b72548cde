"""One rendered folder tree: atomic writes confined to its root, unique file names, and removal
of the files a previous rendering wrote that this one did not.

The files are derived (regenerated from the ledger on every rendering): each is written
atomically but without its own fsync, and `sync` makes the folders durable once at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from benchsmith.errors import BenchsmithError
from benchsmith.export.markdown import safe_name, short_hash
from benchsmith.store.rundir import atomic_write_bytes, sync_dirs


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
        self._real: dict[Path, Path] = {}  # folder -> resolved (checked inside the root)

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

    def _checked(self, target: Path) -> Path:
        """`target` resolved, refused unless inside the root. A folder is resolved once (a
        large rendering writes thousands of files into a few folders); a file that is a
        symlink is resolved itself."""
        folder = target.parent
        real_dir = self._real.get(folder)
        if real_dir is None:
            if folder == self.root:
                real_dir = self.root.resolve()
            else:
                real_dir = _inside(self.root, folder)
                folder.mkdir(parents=True, exist_ok=True)  # checked first, so made inside
            self._real[folder] = real_dir
        if target.name in ("", ".", "..") or target.is_symlink():
            return _inside(self.root, target)
        return real_dir / target.name

    def write(self, rel: Path, text: str) -> Path:
        """Write `text` to `<root>/<rel>` atomically (skipped when unchanged)."""
        target = self.root / rel
        if not self._real:
            self.root.mkdir(parents=True, exist_ok=True)
        self._checked(target)
        data = text.encode("utf-8")
        # Unchanged files are left alone: re-rendering a large run costs reads, not writes.
        if not (target.is_file() and not target.is_symlink() and target.read_bytes() == data):
            atomic_write_bytes(target, data, durable=False)
        self.written.add(self._checked(target))
        return target

    def sync(self) -> None:
        """Make the written files' folders durable (once each)."""
        sync_dirs(p.parent for p in self.written)

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
