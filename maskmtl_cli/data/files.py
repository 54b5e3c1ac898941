"""Finding image files in folders: the one definition every command uses."""

from __future__ import annotations

import os
from pathlib import Path

#: File suffixes treated as images (compared lower-case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def scan_image_files(root: Path, excluded: frozenset[Path] | set[Path] = frozenset()
                     ) -> tuple[list[Path], int]:
    """Image files below ``root`` (sorted) and the count of other files.

    Hidden files and folders (names starting with a dot) are skipped, and so are folders whose
    resolved path is in ``excluded``; folder links are not followed.
    """
    images, ignored = [], 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")
                               and (not excluded or Path(folder, name).resolve() not in excluded))
        for name in files:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                images.append(Path(folder, name))
            else:
                ignored += 1
    return sorted(images), ignored
