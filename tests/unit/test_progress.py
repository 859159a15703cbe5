import io

from rich.console import Console

from superalign.progress import NullProgress, RichProgress


def test_plain_lines_without_a_terminal():
    out = io.StringIO()
    with RichProgress(Console(file=out, force_terminal=False, width=100)) as progress:
        advance = progress.task("sampling", 3)
        advance(2)
        advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "sampling: 0/3"
    assert lines[-1].startswith("sampling: 3/3")


def test_null_progress_accepts_calls():
    NullProgress().task("x", 5)(3)
