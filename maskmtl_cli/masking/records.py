"""masks.csv and failures.csv: the per-image records of a mask run, merged across resumed runs.

masks.csv has one row per image, sorted by source path. Columns:

* ``index``: position of the image in the sorted input list (its random stream is
  ``default_rng([seed, index])``); ``source``: path relative to the input folder;
  ``output`` and ``mask``: paths relative to the output folder (empty when not written).
* ``status``: ``masked``, ``failed`` (no output), ``copied`` (failed, copied unmasked with
  ``--on-fail copy``) or ``existing`` (an output kept from an earlier run that left no row);
  ``reason`` (``unreadable``, ``truncated``, ``too_small``, ``no_face``, ``error``) and ``detail``.
* ``faces``, ``template``, ``colour``, ``texture``, ``texture_weight``, ``face_box``
  (``left top right bottom`` in pixels, right and bottom exclusive), ``landmark_source``
  (``detected`` or ``aligned``), ``detector`` (``hog`` or ``cnn``): one value per masked face,
  joined with ``;`` when ``--faces all`` masks several; ``width``, ``height`` of the image.

failures.csv repeats source, status, reason and detail of the failed and copied rows.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from maskmtl_cli.data.files import MASKS_CSV
from maskmtl_cli.masking.io import write_atomic

FAILURES_CSV = "failures.csv"
CONFIG_JSON = "mask_config.json"
MASKED, FAILED, COPIED, EXISTING = "masked", "failed", "copied", "existing"
#: Columns of masks.csv, in order.
CSV_COLUMNS = (
    "index", "source", "output", "mask", "status", "reason", "detail", "faces", "template",
    "colour", "texture", "texture_weight", "face_box", "landmark_source", "detector", "width",
    "height",
)
FAILURE_COLUMNS = ("source", "status", "reason", "detail")


def new_record(index: int, source: str) -> dict:
    """An empty masks.csv row for image ``index`` (status ``masked`` until a step fails)."""
    record = dict.fromkeys(CSV_COLUMNS, "")
    record.update(index=index, source=source, status=MASKED, faces=0)
    return record


def existing_record(index: int, source: str) -> dict:
    """The row of an output that exists but that no earlier masks.csv describes."""
    record = new_record(index, source)
    record.update(output=source, status=EXISTING, faces="",
                  detail="output existed and masks.csv had no row for it")
    return record


def read_records(path: Path) -> dict[str, dict]:
    """Rows of an earlier masks.csv by source (empty if there is none or it is unreadable)."""
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeError):
        return {}
    return {
        row["source"]: {column: row.get(column) or "" for column in CSV_COLUMNS}
        for row in rows
        if row.get("source")
    }


def write_tables(
    output_root: Path, previous: dict[str, dict], kept: list[dict], records: list[dict]
) -> list[dict]:
    """Merge earlier rows, kept rows and new records; write masks.csv and failures.csv.

    Returns:
        The merged rows, sorted by source.
    """
    merged = dict(previous)
    for row in [*kept, *records]:
        merged[row["source"]] = row
    table = [merged[source] for source in sorted(merged)]
    write_atomic(output_root / MASKS_CSV, _csv_bytes(table, CSV_COLUMNS))
    failures = [row for row in table if row["status"] in (FAILED, COPIED)]
    write_atomic(output_root / FAILURES_CSV, _csv_bytes(failures, FAILURE_COLUMNS))
    return table


def _csv_bytes(rows: list[dict], columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8", errors="surrogateescape")


def settings_warnings(config_path: Path, settings: dict, kept: int) -> list[str]:
    """A warning when outputs kept by a resumed run were made with other style settings."""
    if not kept or not config_path.is_file():
        return []
    try:
        earlier = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return []
    changed = sorted(key for key, value in settings.items() if earlier.get(key) != value)
    if not changed:
        return []
    return [
        f"{kept} existing outputs were kept from an earlier run with different settings "
        f"({', '.join(changed)}); add --overwrite to redo them."
    ]
