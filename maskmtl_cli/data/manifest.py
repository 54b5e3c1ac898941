"""Scanning image folders into labelled tables, and reading/writing manifest CSVs.

A manifest is the one file that ``train``, ``eval`` and ``predict`` read: one row per image with
``path`` (relative to the manifest's folder, or absolute), ``filename``, ``age``, ``gender``,
``race`` (empty where unknown), ``sha1`` (content hash) and ``split`` (train / val / test), then
``mask`` (the image's ground-truth mask PNG, for a folder written by ``maskmtl mask
--save-masks``; relative like ``path``) and every other label column of the label CSV.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from maskmtl_cli.data.files import (
    IMAGE_SUFFIXES,
    MASKS_CSV,
    MASKS_DIR,
    mask_run_extras,
    scan_image_files,
)
from maskmtl_cli.data.labels import TASKS, label_problem, parse_utkface_name, read_label_csv
from maskmtl_cli.errors import DataError, InputError, OutputError, place_error_message
from maskmtl_cli.io import atomic_path
from maskmtl_cli.tasks import MASK_COLUMN

MANIFEST_COLUMNS = ("path", "filename", *TASKS, "sha1", "split")
#: Working columns of ``split`` that are not written to the manifest.
INTERNAL_COLUMNS = ("note", "group_key", "group")
SPLITS = ("train", "val", "test")


@dataclass
class ScanResult:
    """Usable images with labels, plus everything that was left out and why."""

    # pandas.DataFrame: path (absolute), filename, age, gender, race, sha1, note, mask
    # (absolute, or empty), then the label CSV's other columns
    table: "object"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    lenient: list[str] = field(default_factory=list)  # names parsed leniently
    ignored_files: int = 0  # files without an image suffix


def find_images(root: Path) -> tuple[list[Path], int]:
    """All image files below ``root`` (recursive, sorted) and the count of non-image files.

    In a folder written by `maskmtl mask`, its binary masks and contact sheet are left out.
    """
    if not root.exists():
        raise InputError(f"Data folder not found: {root}. Pass a folder of face images.")
    if not root.is_dir():
        raise InputError(f"{root} is a file, not a folder. Pass the folder that holds the images.")
    images, ignored = scan_image_files(root, mask_run_extras(root))
    if not images:
        what = "is empty" if ignored == 0 else f"has {ignored} files but no images"
        raise InputError(f"Data folder {root} {what}. Supported: "
                         f"{', '.join(sorted(IMAGE_SUFFIXES))}.")
    return images, ignored


def inspect_image(path: Path) -> tuple[str, str]:
    """Return (sha1 of the bytes, problem). ``problem`` is "" for a decodable, complete image."""
    import cv2
    import numpy as np

    try:
        data = path.read_bytes()
    except OSError as error:
        return "", f"unreadable: {error.strerror or error}"
    digest = hashlib.sha1(data).hexdigest()
    if not data:
        return digest, "empty file"
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-64:]:
        return digest, "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        return digest, "truncated PNG (no IEND chunk)"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return digest, "not a decodable image"
    return digest, ""


def scan_dataset(root: Path, labels_csv: Path | None = None, threads: int = 4) -> ScanResult:
    """Hash, check and label every image below ``root``.

    Labels come from ``labels_csv`` when given (matched by path relative to ``root``, then by
    bare file name), else from UTKFace-style file names.
    """
    import pandas as pd

    root = Path(root)
    paths, ignored = find_images(root)
    label_table = read_label_csv(labels_csv) if labels_csv is not None else None
    with ThreadPoolExecutor(max_workers=threads) as pool:
        inspected = list(pool.map(inspect_image, paths))

    rows, skipped, lenient = [], [], []
    extra_columns = [column for column in (label_table.columns if label_table is not None else ())
                     if column not in TASKS]
    masks = mask_files(root)
    for path, (digest, problem) in zip(paths, inspected):
        relative = path.relative_to(root).as_posix()
        if problem:
            skipped.append((relative, problem))
            continue
        note, extras = "", []
        if label_table is not None:
            key = relative if relative in label_table.index else path.name
            if key not in label_table.index:
                skipped.append((relative, "no row in the label CSV"))
                continue
            values = label_table.loc[key]
            age, gender, race = (
                None if task not in values.index or pd.isna(values[task]) else values[task]
                for task in TASKS
            )
            extras = [values[column] for column in extra_columns]
        else:
            parsed = parse_utkface_name(path.name)
            if parsed.status == "unparseable":
                skipped.append((relative, f"malformed name: {parsed.reason}"))
                continue
            if parsed.status == "lenient":
                lenient.append(relative)
                note = "lenient name parse"
            age, gender, race = parsed.age, parsed.gender, parsed.race
        bad_label = label_problem(age, gender, race)
        if bad_label:
            skipped.append((relative, f"label out of range: {bad_label}"))
            continue
        gender, race = (None if value is None else int(value) for value in (gender, race))
        rows.append((str(path.resolve()), relative, age, gender, race, digest, note,
                     masks.get(relative, ""), *extras))

    table = pd.DataFrame(rows, columns=["path", "filename", *TASKS, "sha1",
                                        "note", MASK_COLUMN, *extra_columns])
    table["group_key"] = source_hashes(root, table["filename"].tolist(), table["sha1"].tolist())
    table["age"] = pd.to_numeric(table["age"], errors="coerce").astype("float64")
    for column in ("gender", "race"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    if not table[MASK_COLUMN].astype(bool).any():
        table = table.drop(columns=MASK_COLUMN)
    return ScanResult(table=table, skipped=skipped, lenient=lenient, ignored_files=ignored)


def mask_files(root: Path) -> dict[str, str]:
    """Relative image path -> absolute path of its mask PNG, for a ``maskmtl mask`` output.

    A folder written by ``maskmtl mask --save-masks`` holds ``masks.csv`` and
    ``_masks/<relative path>.png`` per masked image; other folders give an empty dict.
    """
    masks_dir = root / MASKS_DIR
    if not ((root / MASKS_CSV).is_file() and masks_dir.is_dir()):
        return {}
    found = {}
    for folder, _, files in os.walk(masks_dir):
        for name in files:
            if name.endswith(".png"):
                mask = Path(folder, name)
                found[mask.relative_to(masks_dir).as_posix()[:-4]] = str(mask.resolve())
    return found


def source_hashes(root: Path, relatives: list[str], own_hashes: list[str]) -> list[str]:
    """Content hashes to group duplicates by: a masked copy's source photo's, else its own.

    ``maskmtl mask`` gives byte-identical photos different masks, so the masked copies no longer
    match. When ``root`` holds a ``maskmtl mask`` output (masks.csv + mask_config.json) and the
    source folder is still there, copies are grouped by their sources' hashes, so duplicates of
    one photo stay in one split. Files whose source cannot be read keep their own hash.
    """
    import json

    import pandas as pd

    records, config = root / "masks.csv", root / "mask_config.json"
    if not (records.is_file() and config.is_file()):
        return list(own_hashes)
    try:
        source_dir = Path(json.loads(config.read_text())["input_dir"])
        table = pd.read_csv(records, usecols=["source", "output"], dtype=str).dropna()
    except (OSError, ValueError, KeyError):
        return list(own_hashes)
    source_of = dict(zip(table["output"], table["source"]))
    keys = []
    for relative, own in zip(relatives, own_hashes):
        source = source_dir / source_of[relative] if relative in source_of else None
        try:
            keys.append(hashlib.sha1(source.read_bytes()).hexdigest() if source else own)
        except OSError:
            keys.append(own)
    return keys


def write_manifest(table, path: Path, overwrite: bool = False) -> Path:
    """Write ``table`` as a manifest CSV, paths relative to the manifest's folder, atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists. Pass --overwrite to replace it, or choose "
                         "another file with -o.")
    if path.exists() and path.is_dir():
        raise InputError(f"{path} is a folder. Pass a file name such as manifest.csv with -o.")
    extras = [c for c in table.columns if c not in MANIFEST_COLUMNS and c not in INTERNAL_COLUMNS]
    out = table.loc[:, [c for c in MANIFEST_COLUMNS if c in table.columns] + extras].copy()
    base = path.parent.resolve()
    out["path"] = [os.path.relpath(p, base) for p in out["path"]]
    if MASK_COLUMN in out.columns:
        out[MASK_COLUMN] = [os.path.relpath(p, base) if isinstance(p, str) and p else ""
                            for p in out[MASK_COLUMN]]
    ages = out["age"].dropna()
    if (ages == ages.round()).all():
        out["age"] = out["age"].astype("Int64")  # "34", not "34.0", for whole years
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp, open(temp, "w", newline="") as stream:
            out.to_csv(stream, index=False)
    except BaseException as error:
        message = place_error_message(error, path) if isinstance(error, OSError) else None
        if message is not None:  # a read-only folder or a full disk: one line, no traceback
            raise OutputError(message) from None
        raise
    return path


def read_manifest(path):
    """Read a manifest CSV; ``path`` values come back absolute. Raises DataError when unusable."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Manifest not found: {path}. Create one with "
                        "`maskmtl split DATA_DIR -o manifest.csv`, or pass its path.")
    try:
        table = pd.read_csv(path, dtype={"path": str, "filename": str, "sha1": str, "split": str,
                                         MASK_COLUMN: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"Cannot read manifest {path}: {error}") from None
    if "path" not in table.columns:
        raise DataError(f"Manifest {path} has no 'path' column; is it a maskmtl manifest? "
                        "Create one with `maskmtl split`.")
    base = path.parent.resolve()
    table["path"] = [p if os.path.isabs(p) else os.path.normpath(base / p) for p in table["path"]]
    if MASK_COLUMN in table.columns:
        table[MASK_COLUMN] = [
            "" if not isinstance(p, str) or not p else p if os.path.isabs(p)
            else os.path.normpath(base / p) for p in table[MASK_COLUMN]]
    if "filename" not in table.columns:
        table["filename"] = [Path(p).name for p in table["path"]]
    for task in TASKS:
        if task not in table.columns:
            table[task] = pd.NA
    table["age"] = pd.to_numeric(table["age"], errors="coerce").astype("float64")
    for column in ("gender", "race"):
        values = pd.to_numeric(table[column], errors="coerce")
        fractional = values.notna() & (values != values.round())
        if fractional.any():
            row = int(fractional.to_numpy().argmax())
            raise DataError(f"Manifest {path}, row {row + 2}: {column} {values.iloc[row]:g} is "
                            "not a whole number (class ids are 0, 1, ...). Fix the label, or "
                            "re-run `maskmtl split`.")
        table[column] = values.astype("Int64")
    if "split" not in table.columns:
        table["split"] = ""
    table["split"] = table["split"].fillna("").astype(str)
    return table
