"""The other faces of each manifest row: its bare source photo and its other masked versions.

A manifest made by ``maskmtl split`` of a ``maskmtl mask`` output lists version 0 of each
masked photo. The folder it came from knows the rest: ``mask_config.json`` names the input
folder, ``masks.csv`` maps every output to its source photo (the bare face), and
``_variants/<k>/`` holds versions ``k = 1..K-1`` (``maskmtl mask --variants K``) at the same
relative paths. Because they are found from the row, every version and the bare copy of a photo
follow it into its split, and the split itself does not change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskmtl_cli.data.files import MASKS_CSV, MASKS_DIR, VARIANTS_DIR


@dataclass(frozen=True)
class FaceVersions:
    """Per manifest row: its masked versions and its bare photo (arrays in row order).

    Attributes:
        masked: uint8 (N, V, size, size, C): version 0 (the manifest's image) and the others;
            a version that is missing or unreadable repeats version 0.
        bare: uint8 (N, size, size, C) bare photos (zeros where ``has_bare`` is False).
        has_bare: bool (N,): the bare photo was found and read.
        versions: bool (N, V): which versions were read (version 0 always).
    """

    masked: np.ndarray
    bare: np.ndarray
    has_bare: np.ndarray
    versions: np.ndarray


def _mask_root(path: str, filename: str) -> Path | None:
    """The folder a manifest row's image sits in, as ``split`` saw it (its data root)."""
    path, filename = Path(path), Path(filename)
    parts = len(filename.parts)
    if parts == 0 or path.parts[-parts:] != filename.parts:
        return None
    return path.parents[parts - 1]


def _root_sources(root: Path) -> tuple[Path, dict[str, str], int] | None:
    """(input folder, output -> source relative paths, number of versions) of a mask output."""
    import pandas as pd

    config, records = root / "mask_config.json", root / MASKS_CSV
    if not (config.is_file() and records.is_file()):
        return None
    try:
        input_dir = Path(json.loads(config.read_text(encoding="utf-8"))["input_dir"])
        table = pd.read_csv(records, usecols=["source", "output"], dtype=str).dropna()
    except (OSError, ValueError, KeyError):
        return None
    count = 1
    while (root / VARIANTS_DIR / str(count)).is_dir():
        count += 1
    return input_dir, dict(zip(table["output"], table["source"])), count


def version_paths(rows) -> tuple[list[str], list[list[str]]]:
    """Bare photo path ("" when unknown) and the paths of versions 1..V-1 of every row.

    ``rows`` are manifest rows (``path`` absolute, ``filename`` relative to the split folder).
    V is the largest version count among the rows' mask outputs; rows with fewer versions get
    "" for the missing ones.
    """
    roots: dict[Path, tuple | None] = {}
    found = []
    for path, filename in zip(rows["path"], rows["filename"]):
        root = _mask_root(str(path), str(filename))
        if root is not None and root not in roots:
            roots[root] = _root_sources(root)
        found.append((root, str(filename), roots.get(root) if root is not None else None))
    count = max([info[2] for info in roots.values() if info is not None] or [1])
    bare, others = [], []
    for root, filename, info in found:
        if info is None:
            bare.append("")
            others.append([""] * (count - 1))
            continue
        input_dir, source_of, own = info
        source = source_of.get(filename)
        bare.append(str(input_dir / source) if source else "")
        others.append([str(root / VARIANTS_DIR / str(k) / filename) if k < own else ""
                       for k in range(1, count)])
    return bare, others


def version_mask_paths(rows) -> list[list[str]]:
    """The mask PNG (``mask --save-masks``) of versions 1..V-1 of every row ("" when unknown):
    ``_variants/<k>/_masks/<filename>.png`` beside each version."""
    _, others = version_paths(rows)
    masks = []
    for paths, filename in zip(others, rows["filename"].astype(str)):
        roots = [_mask_root(path, filename) if path else None for path in paths]
        masks.append([str(root / MASKS_DIR / f"{filename}.png") if root else ""
                      for root in roots])
    return masks


def load_versions(rows, images: np.ndarray, size: int, color_mode: str,
                  cache_dir, with_versions: bool = True) -> FaceVersions:
    """Read the bare photo and the other masked versions of every row of ``rows``.

    Args:
        rows: The manifest rows of ``images`` (same order).
        images: Version 0 of each row, as loaded (uint8 (N, size, size, C)).
        size, color_mode: As the images.
        cache_dir: The data layer's image cache (a Path), or None.
        with_versions: Read the other versions too; False reads only the bare photos (V = 1).
    """
    from maskmtl_cli.data.dataset import load_all

    bare_paths, other_paths = version_paths(rows)
    count = 1 + (len(other_paths[0]) if other_paths and with_versions else 0)
    masked = np.repeat(images[:, None], count, axis=1)
    versions = np.zeros((len(images), count), dtype=bool)
    versions[:, 0] = True
    for k in range(1, count):
        paths = [row[k - 1] for row in other_paths]
        loaded, ok = _load_some(paths, size, color_mode, cache_dir, load_all)
        masked[ok, k] = loaded[ok]
        versions[:, k] = ok
    bare, has_bare = _load_some(bare_paths, size, color_mode, cache_dir, load_all)
    return FaceVersions(masked=masked, bare=bare, has_bare=has_bare, versions=versions)


def _load_some(paths: list[str], size: int, color_mode: str, cache_dir, load_all):
    """Images of the non-empty paths (zeros elsewhere) and which ones were read."""
    channels = 1 if color_mode == "gray" else 3
    out = np.zeros((len(paths), size, size, channels), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    wanted = [index for index, path in enumerate(paths) if path]
    if wanted:
        images, read, _ = load_all([paths[i] for i in wanted], [""] * len(wanted), size,
                                   color_mode, Path(cache_dir) if cache_dir else None)
        out[wanted], ok[wanted] = images, read
    return out, ok
