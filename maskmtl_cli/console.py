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
