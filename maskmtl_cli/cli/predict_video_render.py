"""Terminal rendering of `maskmtl predict` on videos: the track table, frame progress, notes.

``prediction.video_run`` fills ``PredictResult.tracks`` (``TrackSummary`` objects); this module
shows them, one row per track, and draws a progress bar with frames per second and the time
left while a video is read.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from maskmtl_cli.prediction.predict import PredictResult
    from maskmtl_cli.prediction.tracking import TaskSummary, TrackSummary


def _task_cell(task: TaskSummary | None) -> str:
    """``28.8 ± 2.3`` for a value, ``female 0.62 (votes 71%)`` for classes."""
    if task is None:
        return "-"
    if task.label is None:
        return f"{task.value:.1f} ± {task.std:.1f}"
    return f"{task.label} {task.probability:.2f} (votes {task.votes[task.label]:.0%})"


def _task_names(tracks: list[TrackSummary]) -> list[str]:
    return [task.name for task in tracks[0].tasks] if tracks else []


def tracks_table(tracks: list[TrackSummary]) -> Table:
    """A rich table, one row per track: file, track, frames, time span and each task pooled
    over the track (mean ± standard deviation, or class, mean probability and vote share)."""
    from rich import box
    from rich.table import Table

    table = Table(header_style="bold", box=box.SIMPLE_HEAD, title="Tracks",
                  title_justify="left")
    table.add_column("File", overflow="fold")
    for name in ("Track", "Frames", "Seen", "Time s"):
        table.add_column(name, justify="right")
    names = _task_names(tracks)
    for name in names:
        table.add_column(name.capitalize() if name in ("age", "gender", "ethnicity") else name,
                         justify="right" if name == "age" else "left")
    for track in tracks:
        table.add_row(track.file, str(track.track), f"{track.first_frame}-{track.last_frame}",
                      str(track.frames), f"{track.first_time_s:.1f}-{track.last_time_s:.1f}",
                      *(_task_cell(track.task(name)) for name in names))
    return table


def tracks_lines(tracks: list[TrackSummary]) -> list[str]:
    """One line per track for narrow terminals, e.g. ``clip.mp4 track 1, frames 0-89 (90
    seen): age 28.8 ± 2.3, gender female 0.55 (votes 60%), ...``."""
    lines = []
    for track in tracks:
        parts = [f"{name} {_task_cell(track.task(name))}" for name in _task_names(tracks)]
        lines.append(f"{track.file} track {track.track}, frames {track.first_frame}-"
                     f"{track.last_frame} ({track.frames} seen): {', '.join(parts)}")
    return lines


def print_video_notes(result: PredictResult) -> None:
    """Notes about videos on stderr: files cut short, a camera stopped."""
    from rich.markup import escape

    from maskmtl_cli.console import err_console

    for note in result.notes:
        err_console.print(f"[yellow]Note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def video_summary(result: PredictResult, photo_faces: int) -> str:
    """The one-line summary on stderr of a run with videos."""
    photos = f"{photo_faces} face(s) in {result.images} image(s); " if result.images else ""
    text = (f"{photos}{result.frames} frame(s) of {result.videos} video(s) predicted, "
            f"{len(result.tracks)} track(s); model {result.model_path}, detector "
            f"{result.detector}.")
    if result.tracks_path is not None:
        text += f" Track summary: {result.tracks_path}."
    return text


def check_interrupted(result: PredictResult) -> None:
    """After printing the results: Ctrl-C during a video says what was kept, exit 130."""
    import typer
    from rich.markup import escape

    from maskmtl_cli.console import err_console

    if result.interrupted:
        err_console.print(f"[yellow]Interrupted.[/] {escape(result.interrupted)} Annotated "
                          "videos and the --tracks file hold the frames done.",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(code=130)


@contextmanager
def video_progress_reporter() -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(name, frames read, frames announced or 0)`` callback: one bar per video on
    stderr with frames/s and the time left."""
    state: dict = {}

    def update(name: str, done: int, total: int) -> None:
        if state.get("name") != name:
            if "progress" not in state:
                from rich.progress import TextColumn

                from maskmtl_cli.console import make_progress

                state["progress"] = make_progress(TextColumn("{task.fields[rate]}"))
                state["progress"].start()
            state.update(name=name, start=time.monotonic(), first=done,
                         task=state["progress"].add_task(name, total=total or None, rate=""))
        elapsed = time.monotonic() - state["start"]
        rate = (done - state["first"]) / elapsed if elapsed > 0 else 0.0
        state["progress"].update(state["task"], completed=done,
                                 rate=f"{rate:.1f} frames/s" if elapsed > 0.5 else "")

    try:
        yield update
    finally:
        if "progress" in state:
            state["progress"].stop()
