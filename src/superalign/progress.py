"""Progress reporting that techniques can use without knowing about the terminal.

A technique receives a :class:`Progress` and calls ``advance = progress.task("sampling", total)``
then ``advance(k)``. The CLI passes :class:`RichProgress` (bars on a terminal, plain lines in a log);
tests and library users get the silent default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def task(self, description: str, total: int) -> Advance: ...


class NullProgress:
    """Reports nothing: the default for library calls and tests."""

    def task(self, description: str, total: int) -> Advance:
        return lambda n=1: None


class RichProgress:
    """Progress bars on a terminal, plain timestamped lines otherwise (CI logs, ``| tee``).

    Use as a context manager around the work.
    """

    LINE_EVERY_S = 15.0  # without a terminal, one line per task at most this often (and at the end)

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as _Progress,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self._console = console or Console()
        self._bars = _Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), TimeRemainingColumn(), console=self._console)

    def __enter__(self) -> "RichProgress":
        if self._console.is_terminal:
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._console.is_terminal:
            self._bars.stop()

    def task(self, description: str, total: int) -> Advance:
        if self._console.is_terminal:
            task_id = self._bars.add_task(description, total=total)
            return lambda n=1: self._bars.advance(task_id, n)
        return self._line_task(description, total)

    def _line_task(self, description: str, total: int) -> Advance:
        start = last = time.monotonic()
        done = 0
        self._console.print(f"{description}: 0/{total}")

        def advance(n: int = 1) -> None:
            nonlocal done, last
            done += n
            now = time.monotonic()
            if done >= total or now - last >= self.LINE_EVERY_S:
                last = now
                self._console.print(f"{description}: {done}/{total} ({now - start:.0f} s)")

        return advance


def print_metrics(metrics: list, as_json: bool = False, console=None) -> None:
    """Metrics one per line (name, value, 95% interval, n), or as JSON on stdout: what technique commands print."""
    import json

    if as_json:
        print(json.dumps([m.model_dump() for m in metrics], indent=1))
        return
    width = max((len(m.name) for m in metrics), default=0)
    for m in metrics:
        interval = f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else ""
        line = f"{m.name:<{width}}  {m.value:7.3f} {interval:>18}  n={m.n}"
        console.print(line, highlight=False) if console is not None else print(line)
