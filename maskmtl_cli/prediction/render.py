"""What `maskmtl predict` writes: JSON and CSV text, annotated photos and CAM overlays.

The text renderers take ``FaceRecord`` objects (``records.py``) and return strings (the CLI
prints them; the HTTP server sends them); the image renderers take and return RGB uint8 arrays
(``save_image`` writes). The terminal table is ``cli/predict_render.py``'s.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from maskmtl_cli.data.labels import RACE_NAMES
from maskmtl_cli.errors import InputError

if TYPE_CHECKING:  # pragma: no cover

    from maskmtl_cli.prediction.records import FaceRecord

#: Box colours for annotated photos (RGB), cycled by face index.
_COLOURS = ((255, 64, 64), (64, 160, 255), (64, 210, 90), (255, 190, 0), (200, 90, 255))
#: Shortest side of a CAM overlay; smaller aligned crops are enlarged to this for viewing.
CAM_DISPLAY_SIZE = 200


def csv_columns(records: Iterable["FaceRecord"] = ()) -> list[str]:
    """Column names of ``--csv`` output, in order: UTKFace's fields, then the records' other
    tasks (``<task>``, and for classification ``<task>_probability`` and
    ``p_<task>_<class>``). When any face comes from a video, ``frame``, ``time_s`` and
    ``track`` follow ``file`` (empty for photos)."""
    records = list(records)
    video = ["frame", "time_s", "track"] if _has_video(records) else []
    columns = (["file", *video, "face", "x", "y", "width", "height", "detector_score", "age",
                "gender", "gender_probability", "p_female", "ethnicity",
                "ethnicity_probability"]
               + [f"p_{name}" for name in RACE_NAMES])
    for task in first_tasks(records):
        columns.append(task.name)
        if task.probabilities is not None:
            columns += [f"{task.name}_probability",
                        *(f"p_{task.name}_{name}" for name in task.probabilities)]
    return columns


def _has_video(records: list["FaceRecord"]) -> bool:
    return any(record.frame is not None for record in records)


def first_tasks(records: Iterable["FaceRecord"]) -> tuple:
    """The other tasks of the model (every record of a run has the same ones)."""
    for record in records:
        return record.tasks
    return ()


def _task_cells(record: "FaceRecord") -> list[str]:
    cells = []
    for task in record.tasks:
        if task.probabilities is None:
            cells.append(_cell(task.value, 4))
        else:
            cells += [task.label, _cell(task.probability, 4),
                      *(_cell(value, 4) for value in task.probabilities.values())]
    return cells


def records_to_csv(records: Iterable["FaceRecord"]) -> str:
    """CSV text with a header row and one row per face (empty cells where a task is missing)."""
    records = list(records)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns(records))
    video = _has_video(records)
    for record in records:
        probabilities = record.ethnicity_probabilities or {}
        frame = ([] if not video else
                 ["" if record.frame is None else record.frame, _cell(record.time_s, 3),
                  "" if record.track is None else record.track])
        writer.writerow([
            record.file, *frame, record.face, *record.box, _cell(record.detector_score, 4),
            _cell(record.age, 1), record.gender or "", _cell(record.gender_probability, 4),
            _cell(record.p_female, 4), record.ethnicity or "",
            _cell(record.ethnicity_probability, 4),
            *(_cell(probabilities.get(name), 4) for name in RACE_NAMES),
            *_task_cells(record),
        ])
    return buffer.getvalue()


def records_to_json(records: Iterable["FaceRecord"]) -> str:
    """A JSON list with one object per face (see ``FaceRecord.to_dict``)."""
    return json.dumps([record.to_dict() for record in records], indent=2)


def task_text(task) -> str:
    """``happy 0.81`` for a class, ``3.27`` for a value."""
    if task.probabilities is None:
        return f"{task.value:.3g}"
    return f"{task.label} {task.probability:.2f}"


def face_label(record: "FaceRecord") -> str:
    """Short label drawn on annotated photos, e.g. ``#0 34y female 0.91 Asian 0.78``."""
    parts = [f"#{record.face}"]
    if record.age is not None:
        parts.append(f"{record.age:.0f}y")
    if record.gender is not None:
        parts.append(f"{record.gender} {record.gender_probability:.2f}")
    if record.ethnicity is not None:
        parts.append(f"{record.ethnicity} {record.ethnicity_probability:.2f}")
    parts += [task_text(task) for task in record.tasks]
    return " ".join(parts)


def annotate(image: np.ndarray, records: list["FaceRecord"],
             labels: list[str] | None = None) -> np.ndarray:
    """A copy of an RGB photo with each face's box and label drawn.

    Args:
        image: RGB uint8 (H, W, 3), the photo the boxes refer to (EXIF-rotated).
        records: The faces found in it; a face with a track gets its track's colour.
        labels: The text to draw per record; default ``face_label``.

    Returns:
        A new RGB uint8 array; ``image`` is not modified.
    """
    import cv2

    canvas = np.ascontiguousarray(image.copy())
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.4, min(height, width) / 900)
    for index, record in enumerate(records):
        colour = _COLOURS[(record.face if record.track is None else record.track)
                          % len(_COLOURS)]
        x, y, w, h = record.box
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        label = face_label(record) if labels is None else labels[index]
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                                                     thickness)
        top = y - text_h - baseline - 2 * thickness
        if top < 0:  # No room above the box: draw the label inside it.
            top = y
        left = min(max(0, x), max(0, width - text_w - 2))
        cv2.rectangle(canvas, (left, top), (left + text_w + 2, top + text_h + baseline + 2),
                      colour, cv2.FILLED)
        cv2.putText(canvas, label, (left + 1, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas


def cam_overlay(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A Grad-CAM heatmap blended over an aligned face crop (JET colours: red = high).

    Args:
        face: Square aligned face, RGB uint8 (S, S, 3) or gray (S, S[, 1]).
        heatmap: float (h, w) in 0..1 at any resolution.
        alpha: Weight of the heatmap in the blend.

    Returns:
        RGB uint8 of side ``max(S, CAM_DISPLAY_SIZE)``.
    """
    import cv2

    if face.ndim == 3 and face.shape[2] == 1:
        face = face[:, :, 0]
    if face.ndim == 2:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    side = max(face.shape[0], CAM_DISPLAY_SIZE)
    if face.shape[0] != side:
        face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(np.clip(heatmap, 0.0, 1.0).astype("float32"), (side, side),
                      interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap(np.uint8(np.round(heat * 255)), cv2.COLORMAP_JET)
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(face, 1.0 - alpha, coloured, alpha, 0.0)


def save_image(path: Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image (format from the suffix), creating parent folders.

    Raises:
        InputError: The file cannot be written (permissions, unsupported suffix, full disk).
    """
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    try:
        written = cv2.imwrite(str(path), bgr)
    except cv2.error as error:
        written, reason = False, str(error).strip().splitlines()[-1]
    else:
        reason = "OpenCV could not encode or write it"
    if not written:
        raise InputError(f"Cannot write '{path}': {reason}. Check the folder is writable, or "
                         "pick another output folder.")
    return path


def _cell(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
