"""Finding image files in folders: the one definition every command uses."""

from __future__ import annotations

import os
from pathlib import Path

#: File suffixes treated as images (compared lower-case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: File suffixes `maskmtl predict` reads as videos (with OpenCV), from folders and when named.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
#: What `maskmtl mask` writes at the top of its output folder beside the masked images: the
#: records, the binary masks (``--save-masks``) and the contact sheet (``--preview``).
MASKS_CSV = "masks.csv"
MASKS_DIR = "_masks"
PREVIEW_PNG = "preview.png"
#: Masked versions 1..K-1 of each photo (``maskmtl mask --variants K``):
#: ``_variants/<k>/<relative path>``, each a mask output folder of its own.
VARIANTS_DIR = "_variants"


def mask_run_extras(root: Path) -> frozenset[Path]:
    """The resolved paths of a mask run's own outputs below ``root`` (empty for other folders).

    A folder written by `maskmtl mask` (it holds ``masks.csv``) also holds the binary masks, the
    contact sheet and the other masked versions of each photo (``--variants``); they are images,
    but not more face photos of the data set (a photo's versions train as one face).
    """
    root = Path(root)
    if not (root / MASKS_CSV).is_file():
        return frozenset()
    return frozenset((root / name).resolve() for name in (MASKS_DIR, PREVIEW_PNG, VARIANTS_DIR))


def scan_image_files(root: Path, excluded: frozenset[Path] | set[Path] = frozenset(),
                     suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> tuple[list[Path], int]:
    """Image files below ``root`` (sorted) and the count of other files.

    Hidden files and folders (names starting with a dot) are skipped, and so are folders and
    files whose resolved path is in ``excluded``; folder links are not followed. ``suffixes``:
    the files to list (`predict` adds ``VIDEO_SUFFIXES``).
    """
    images, ignored = [], 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")
                               and (not excluded or Path(folder, name).resolve() not in excluded))
        for name in files:
            if name.startswith(".") or (excluded and Path(folder, name).resolve() in excluded):
                continue
            if os.path.splitext(name)[1].lower() in suffixes:
                images.append(Path(folder, name))
            else:
                ignored += 1
    return sorted(images), ignored
