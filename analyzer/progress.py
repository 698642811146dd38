"""Progress of a cold open on stderr: the first open of a big bundle builds its index.

Shown only by the command line (:func:`enable`, from ``--quiet`` and whether stderr is a
terminal), and only once the work has lasted :data:`DELAY` seconds: a quick open prints
nothing, a piped or redirected stderr never receives a bar. Rich is imported only then.
"""

from __future__ import annotations

import sys
import time

#: seconds of work before a bar appears
DELAY = 2.0
_enabled = False


def enable(quiet: bool) -> None:
    """The command line's choice: a bar unless ``--quiet`` or stderr is not a terminal."""
    global _enabled
    _enabled = not quiet and sys.stderr.isatty()


def enabled() -> bool:
    return _enabled


class ColdOpen:
    """``progress(done, total)`` for :meth:`TaskGraph.from_snapshot`: a transient bar of the
    rows indexed, started once the open has lasted :data:`DELAY` seconds."""

    def __init__(self, what: str, delay: float = DELAY):
        self.what = what
        self.delay = delay
        self.t0 = time.monotonic()
        self._p = None

    def __call__(self, done: int, total: int) -> None:
        if self._p is None:
            if done >= total or time.monotonic() - self.t0 < self.delay:
                return
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._p.start()
            self._task = self._p.add_task(self.what, total=total)
        self._p.update(self._task, completed=done)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


def cold_open(what: str) -> ColdOpen | None:
    """A progress callback when the command line asked for one, else None."""
    return ColdOpen(what) if _enabled else None
