"""The derived pages a run writes once its work is done: readable Markdown and the HTML
report. On a large run the Markdown is rendered by a child process (its own read-only ledger
connection, the run's lock held for it by the parent) while the parent writes the run's files
and the report: two cores, not one. Threads did not help here: the report's short SQLite reads
give up the GIL and wait to get it back while the renderer holds it."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchsmith.export.child_process import second_core, spawn_python
from benchsmith.export.readable import render_after_run
from benchsmith.recipes.base import Recipe
from benchsmith.recipes.registry import builtin_names
from benchsmith.store.ledger import Ledger

READABLE_CHILD_MIN = 2_000  # accepted answers from which a child renders the Markdown


@dataclass(frozen=True)
class AfterRun:
    readable_warning: str | None
    report: Path | None  # written; None when not asked for or not written
    report_warning: str | None


@dataclass(frozen=True)
class ReadableChild:
    """A child process that renders the run's readable Markdown. Started with the run, it
    imports what it needs while requests are in flight, then waits for `go`: the rendering is
    all that is left on the critical path at the end."""

    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, ledger: Ledger, root: Path, recipe: Recipe, layout: str) -> ReadableChild | None:
        """The child, when it pays: a large run (counting the requests still to send), two
        cores, a recipe a new process finds by name (a built-in one); else None and the
        parent renders."""
        if layout == "off" or recipe.readable is None or recipe.name not in builtin_names() \
                or not second_core():
            return None
        (n,) = ledger.db.execute(
            "SELECT COUNT(*) FROM units WHERE state IN ('ok', 'pending')").fetchone()
        if n < READABLE_CHILD_MIN:
            return None
        proc = spawn_python(
            # Ctrl-C is the parent's to handle: it stops the run, then says go or stop.
            "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "from benchsmith.export.after_run import _readable_main; _readable_main()",
            [str(root), layout], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if proc is None:
            return None
        return cls(proc)

    def go(self) -> None:
        """Render now: the run's answers are all in the ledger."""
        if self.proc.stdin is None or self.proc.stdin.closed:
            return
        try:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
        except OSError:
            pass  # the child is gone: `wait` says so and the parent renders

    def wait(self) -> tuple[bool, str | None]:
        """(whether the child rendered, its warning)."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()  # a line at most; EOF when the child exits
        self.proc.stdout.close()
        self.proc.wait()
        text = out.decode("utf-8", "replace").strip()
        return self.proc.returncode == 0 and text != _NOT_RENDERED, text or None

    def stop(self) -> None:
        """No rendering: the run did not end normally."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # end of input: the child exits without rendering
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # the child's atomic writes remove their temp files
            self.proc.wait()


_NOT_RENDERED = "not rendered"


def _readable_main() -> None:
    """The child of `ReadableChild`: argv = run dir, layout. Renders after a `go` line on
    stdin (end of input: exits without rendering); prints a warning, if any."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if sys.stdin.readline().strip() != "go":
        sys.stdout.write(_NOT_RENDERED + "\n")
        return
    warning = render_after_run(Path(sys.argv[1]), None, sys.argv[2])
    if warning:
        sys.stdout.write(warning + "\n")


def write_pages(root: Path, recipe: Recipe, readable_layout: str, report: bool,
                child: ReadableChild | None = None) -> AfterRun:
    """The readable Markdown (`readable_layout`, see `outputs.readable`; by `child` when one
    was started) and, with `report`, the run report. Never raises for a page that cannot be
    written: it returns a warning."""
    try:
        readable_warning = None if child else render_after_run(root, recipe, readable_layout)
        report_path = report_warning = None
        if report:
            from benchsmith.report.build import REPORT_NAME, write_after_run

            report_warning = write_after_run(root)
            report_path = None if report_warning else root / REPORT_NAME
        if child:
            child.go()  # (already told, on the usual path)
            done, readable_warning = child.wait()
            if not done:  # killed or broken: render here, nothing is lost
                readable_warning = render_after_run(root, recipe, readable_layout)
    except BaseException:
        if child:
            child.stop()
        raise
    return AfterRun(readable_warning, report_path, report_warning)
