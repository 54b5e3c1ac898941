"""Output channels: results go to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Diagnostics, warnings, progress bars and summary tables meant for people.
err_console = Console(stderr=True)
#: Results: tables, JSON and CSV meant to be read or piped.
out_console = Console()


def make_progress(*extra_columns, console: Console | None = None) -> Progress:
    """A rich progress bar on stderr with count, rate-friendly columns, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console or err_console,
        transient=False,
    )


class CountProgress:
    """Context manager: a bar on stderr with rate and ETA, fed by ``(done, total)`` calls (the
    progress callback of batch jobs such as ``mask`` and ``unmask``).

    Args:
        description: The bar's label ("masking", "unmasking").
    """

    def __init__(self, description: str):
        self.description = description

    def __enter__(self):
        self._bar = make_progress(TextColumn("{task.fields[rate]}"))
        self._task = None
        self._bar.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if total == 0:
            return
        if self._task is None:
            self._task = self._bar.add_task(self.description, total=total, rate="")
        speed = self._bar.tasks[self._task].speed
        rate = f"{speed:.1f} img/s" if speed else ""
        self._bar.update(self._task, completed=done, rate=rate)

    def __exit__(self, *exc_info):
        return self._bar.__exit__(*exc_info)
