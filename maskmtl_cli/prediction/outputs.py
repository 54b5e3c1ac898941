"""What `maskmtl predict` writes besides its records: Grad-CAM overlays and predicted masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskmtl_cli.faces.detection import Face
from maskmtl_cli.prediction.inputs import InputImage


@dataclass
class Pending:
    """A photo whose faces are aligned but not yet predicted."""

    image: InputImage
    photo: np.ndarray | None
    faces: list[Face]
    crops: list[np.ndarray]
    inputs: list[np.ndarray]


def cam_batches(cam, inputs: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Grad-CAM over ``inputs`` in chunks of ``batch_size``."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(inputs), batch_size):
        for task, maps in cam(inputs[start:start + batch_size]).items():
            parts.setdefault(task, []).append(maps)
    return {task: np.concatenate(maps) for task, maps in parts.items()}


def save_cams(folder: Path, item: Pending, heatmaps: dict[str, np.ndarray],
               offset: int) -> list[Path]:
    """One PNG per face per task: ``<name>_face<i>_<task>.png`` beside the input's sub-path."""
    from maskmtl_cli.prediction.render import cam_overlay, save_image

    written = []
    relative = item.image.relative
    for index, crop in enumerate(item.crops):
        for task, maps in heatmaps.items():
            path = folder / relative.parent / f"{relative.stem}_face{index}_{task}.png"
            written.append(save_image(path, cam_overlay(crop, maps[offset + index])))
    return written


def save_masks(folder: Path, item: Pending, outputs: dict[str, np.ndarray], offset: int,
                aligned: bool) -> list[Path]:
    """One PNG per face (255 = covered), ``<name>_face<i>.png`` beside the input's sub-path.

    A mask is drawn in the frame of the face crop the model saw: the input's centred square at
    its own size for ``--aligned`` inputs, the 200x200 aligned crop for detected faces.
    """
    import cv2

    from maskmtl_cli.faces.alignment import CROP_SIZE
    from maskmtl_cli.prediction.render import save_image

    written = []
    relative = item.image.relative
    for index, face in enumerate(item.faces):
        side = int(face.box[2]) if aligned else CROP_SIZE
        covered = (outputs["segmentation"][offset + index] >= 0.5).astype(np.uint8) * 255
        covered = cv2.resize(covered, (side, side), interpolation=cv2.INTER_NEAREST)
        path = folder / relative.parent / f"{relative.stem}_face{index}.png"
        written.append(save_image(path, covered))
    return written
