"""Faces of one photo or video frame: detected, selected (``--faces``) and aligned."""

from __future__ import annotations

import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.faces.alignment import align_face, square_crop
from maskmtl_cli.faces.detection import Face, get_detector
from maskmtl_cli.prediction.config import FACE_MODES


def select_faces(faces: list[Face], mode: str) -> list[Face]:
    """Faces sorted left to right (``"all"``) or only the one with the largest box."""
    if mode not in FACE_MODES:
        raise InputError(f"Unknown --faces '{mode}'. Choose one of: {', '.join(FACE_MODES)}.")
    if mode == "largest" and faces:
        return [max(faces, key=lambda face: face.area)]
    return sorted(faces, key=lambda face: (face.box[0], face.box[1]))


def face_crops(image: np.ndarray, detector: str | None, faces: str = "all",
               min_face: int = 20) -> list[tuple[Face, np.ndarray]]:
    """Detect and align the faces of one photo.

    Args:
        image: RGB uint8 (H, W, 3).
        detector: A name from ``DETECTORS``, or None when the photo is already an aligned crop
            (``--aligned``: its centred square is the face).
        faces: ``"all"`` or ``"largest"``.
        min_face: Smallest face to find, in pixels.

    Returns:
        ``(face, crop)`` pairs; each crop is a square RGB uint8 face (200x200 when detected).
    """
    if detector is None:
        crop = square_crop(image)
        height, width = image.shape[:2]
        side = crop.shape[0]
        box = ((width - side) // 2, (height - side) // 2, side, side)
        return [(Face(box, None, {}, "none"), crop)]
    found = select_faces(get_detector(detector).detect(image, min_face), faces)
    return [(face, align_face(image, face)) for face in found]
