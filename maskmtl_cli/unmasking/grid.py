"""A picture grid of reconstructions: one face per row, one method per column."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Columns of the grid: (title, key in the versions dict); "own_mask" is drawn over the face.
COLUMNS = (("masked", "masked (no reconstruction)"), ("mask found", "own_mask"),
           ("model", "model, own mask"), ("model, exact mask", "model, exact mask"),
           ("Telea", "Telea, exact mask"), ("bare", "bare (reference)"))
_HEADER = 22


def overlay_mask(face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of an RGB uint8 face with the pixels of a (H, W) bool mask tinted red."""
    shown = face.copy()
    shown[mask] = (0.45 * shown[mask] + 0.55 * np.array([230, 40, 40])).astype(np.uint8)
    return shown


def grid_image(versions: dict[str, np.ndarray], pick: np.ndarray, scale: int = 2,
               gap: int = 4) -> np.ndarray:
    """The grid as an RGB uint8 image for the faces at ``pick``."""
    import cv2

    size = versions["bare (reference)"].shape[1] * scale
    columns = [(title, key) for title, key in COLUMNS if key in versions]
    width = len(columns) * (size + gap) + gap
    height = _HEADER + len(pick) * (size + gap) + gap
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for column, (title, _) in enumerate(columns):
        x = gap + column * (size + gap)
        cv2.putText(canvas, title, (x, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for row, index in enumerate(pick):
        y = _HEADER + row * (size + gap)
        for column, (_, key) in enumerate(columns):
            if key == "own_mask":
                face = overlay_mask(versions["masked (no reconstruction)"][index],
                                    versions[key][index, :, :, 0])
            else:
                face = versions[key][index]
            x = gap + column * (size + gap)
            canvas[y:y + size, x:x + size] = cv2.resize(face, (size, size),
                                                       interpolation=cv2.INTER_NEAREST)
    return canvas


def save_grid(path: Path, versions: dict[str, np.ndarray], pick: np.ndarray) -> Path:
    """Write ``grid_image`` as a PNG."""
    from maskmtl_cli.io import atomic_path
    from maskmtl_cli.prediction.render import save_image

    with atomic_path(Path(path), suffix=".png") as temp:
        save_image(temp, grid_image(versions, pick))
    return Path(path)
