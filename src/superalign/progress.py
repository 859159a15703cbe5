"""Progress reporting that techniques can use without knowing about the terminal.

A technique receives a :class:`Progress` and calls ``advance = progress.task("sampling", total)``
then ``advance(k)``. The CLI passes :class:`RichProgress` (bars on a terminal, plain lines in a log);
tests and library users get the silent default.
"""

from __future__ import annotations

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
    """Progress bars on a rich console; use as a context manager around the work."""

    def __init__(self, console=None):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as _Progress,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self._bars = _Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), TimeRemainingColumn(), console=console)

    def __enter__(self) -> "RichProgress":
        self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.stop()

    def task(self, description: str, total: int) -> Advance:
        task_id = self._bars.add_task(description, total=total)
        return lambda n=1: self._bars.advance(task_id, n)
