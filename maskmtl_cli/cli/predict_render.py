"""Terminal rendering of `maskmtl predict`: the results table or lines, warnings, progress.

``prediction.predict`` returns a ``PredictResult``; this module prints it. CSV and JSON text and
annotated images are made by ``prediction.render`` (the HTTP server uses them too).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from maskmtl_cli.prediction.render import first_tasks, records_to_csv, records_to_json, task_text
from maskmtl_cli.tasks import RACE_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from maskmtl_cli.prediction.predict import FaceRecord, PredictResult

#: Photos without a face listed one by one on stderr before the rest are counted.
_MAX_LISTED = 10
#: Narrowest terminal that shows results as a table; narrower ones get one line per face.
_TABLE_WIDTH = 110


def records_table(records: list[FaceRecord]) -> Table:
    """A rich table: file, face, box, age, gender, ethnicity and the five class probabilities
    (about 120 columns wide; ``records_lines`` suits narrow terminals)."""
    from rich import box
    from rich.table import Table

    table = Table(header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("File", overflow="fold")
    for name in ("Face", "Box x,y,w,h", "Age", "Gender", "Ethnicity"):
        table.add_column(name, justify="right" if name in ("Face", "Age") else "left")
    for name in RACE_NAMES:
        table.add_column(name, justify="right")
    for task in first_tasks(records):
        table.add_column(task.name, justify="right" if task.probabilities is None else "left")
    for record in records:
        probabilities = record.ethnicity_probabilities or {}
        table.add_row(
            record.file, str(record.face), ",".join(str(v) for v in record.box),
            "-" if record.age is None else f"{record.age:.1f}",
            "-" if record.gender is None else f"{record.gender} {record.gender_probability:.2f}",
            "-" if record.ethnicity is None
            else f"{record.ethnicity} {record.ethnicity_probability:.2f}",
            *("-" if name not in probabilities else f"{probabilities[name]:.2f}"
              for name in RACE_NAMES),
            *(task_text(task) for task in record.tasks),
        )
    return table


def records_lines(records: list[FaceRecord]) -> list[str]:
    """One line per face for narrow terminals, e.g. ``photo.jpg #0 [180,65,84,107]: age 34.5,
    female 0.91, White 0.78 (White 0.78, Black 0.05, Asian 0.10, Indian 0.04, Others 0.03)``."""
    lines = []
    for record in records:
        parts = []
        if record.age is not None:
            parts.append(f"age {record.age:.1f}")
        if record.gender is not None:
            parts.append(f"{record.gender} {record.gender_probability:.2f}")
        if record.ethnicity is not None:
            spread = ", ".join(f"{name} {value:.2f}"
                               for name, value in record.ethnicity_probabilities.items())
            parts.append(f"{record.ethnicity} {record.ethnicity_probability:.2f} ({spread})")
        parts += [f"{task.name} {task_text(task)}" for task in record.tasks]
        box_text = ",".join(str(v) for v in record.box)
        lines.append(f"{record.file} #{record.face} [{box_text}]: {', '.join(parts)}")
    return lines


@contextmanager
def progress_reporter() -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar on stderr for runs of several photos."""
    bar: dict = {}

    def update(done: int, total: int) -> None:
        if total < 2:
            return
        if not bar:
            from maskmtl_cli.console import make_progress

            bar["progress"] = make_progress()
            bar["progress"].start()
            bar["task"] = bar["progress"].add_task("Predicting", total=total)
        bar["progress"].update(bar["task"], completed=done)

    try:
        yield update
    finally:
        if bar:
            bar["progress"].stop()


def tiny_crop_warnings(result: PredictResult) -> list[str]:
    """One warning per ``--aligned`` crop too small to hold a usable face."""
    from maskmtl_cli.prediction.inputs import MIN_ALIGNED_SIDE

    if result.detector != "aligned":
        return []
    return [
        f"'{record.file}' is only {record.box[2]}x{record.box[3]} px: an aligned face crop "
        f"under {MIN_ALIGNED_SIDE} px a side holds too little of a face, so its prediction "
        "is unreliable. Pass a larger crop."
        for record in result.records if min(record.box[2:]) < MIN_ALIGNED_SIDE
    ]


def print_tables(result: PredictResult) -> None:
    """The default output: the photos' faces, then the videos' tracks (tables on wide
    terminals, one line per face or track on narrow ones)."""
    from maskmtl_cli.cli.predict_video_render import tracks_lines, tracks_table
    from maskmtl_cli.console import out_console

    photos = [record for record in result.records if record.frame is None]
    wide = out_console.width >= _TABLE_WIDTH
    if photos:
        if wide:
            out_console.print(records_table(photos))
        else:
            for line in records_lines(photos):
                out_console.print(line, highlight=False, markup=False, soft_wrap=True)
    if result.tracks:
        if wide:
            out_console.print(tracks_table(result.tracks))
        else:
            for line in tracks_lines(result.tracks):
                out_console.print(line, highlight=False, markup=False, soft_wrap=True)


def print_result(result: PredictResult, output_format: str = "table") -> None:
    """Results to stdout in ``output_format`` (table, json or csv); problems and a summary to
    stderr."""
    import typer
    from rich.markup import escape

    from maskmtl_cli.cli.predict_video_render import print_video_notes, video_summary
    from maskmtl_cli.console import err_console

    for _, reason in result.unreadable:
        err_console.print(f"[yellow]Skipped unreadable file:[/] {escape(reason)}",
                          highlight=False, soft_wrap=True)
    shown = result.no_face[:_MAX_LISTED]
    for path in shown:
        err_console.print(f"[yellow]No face found[/] in '{escape(path)}'.", highlight=False,
                          soft_wrap=True)
    if len(result.no_face) > len(shown):
        err_console.print(f"[yellow]No face found[/] in {len(result.no_face) - len(shown)} more "
                          "images.", highlight=False, soft_wrap=True)
    if result.crop_like:
        err_console.print(
            f"  {len(result.crop_like)} of them look like aligned face crops (small and about "
            "square): if they are, pass --aligned to predict on the whole image.",
            highlight=False, soft_wrap=True)
    if result.no_face:
        err_console.print(
            "  Faces smaller than --min-face are ignored; try a smaller --min-face or another "
            "--detector, or --aligned if the images are face crops.", highlight=False,
            soft_wrap=True)
    for warning in tiny_crop_warnings(result)[:_MAX_LISTED]:
        err_console.print(f"[yellow]Warning:[/] {escape(warning)}", highlight=False,
                          soft_wrap=True)
    print_video_notes(result)
    if output_format == "json":
        typer.echo(records_to_json(result.records))
    elif output_format == "csv":
        typer.echo(records_to_csv(result.records), nl=False)
    else:
        print_tables(result)
    photo_faces = sum(record.frame is None for record in result.records)
    summary = (f"{photo_faces} face(s) in {result.images} image(s); model "
               f"{result.model_path}, detector {result.detector}.")
    if result.videos:
        summary = video_summary(result, photo_faces)
    if result.annotated:
        summary += f" Annotated copies: {len(result.annotated)} in {result.annotate_dir}."
    if result.cams:
        summary += f" Grad-CAM images: {len(result.cams)} in {result.cam_dir}."
    if result.masks:
        summary += f" Predicted masks: {len(result.masks)} in {result.masks_dir}."
    err_console.print(summary, highlight=False, soft_wrap=True)
