"""One detected face, and the small geometry helpers every detector shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(x, y, width, height)`` in pixels of the (EXIF-rotated) photo, clipped to it.
        score: The detector's confidence (RetinaFace, MTCNN: probability; HOG/CNN: dlib's
            detection score), or None for faces given as aligned crops.
        keypoints: Named points ``(x, y)`` in pixels. Always ``eye_left`` and ``eye_right``
            (the eye centres, left/right as seen in the image), and where known ``nose``,
            ``mouth_left``, ``mouth_right`` and ``mouth`` (mouth centre).
        landmarks: Which landmark source gave the keypoints: ``"retinaface"``, ``"mtcnn"``,
            ``"dlib68"``, or ``"none"`` for aligned crops. Alignment uses the UTKFace targets of
            that source.
    """

    box: tuple[int, int, int, int]
    score: float | None
    keypoints: dict[str, tuple[float, float]] = field(default_factory=dict)
    landmarks: str = "none"

    @property
    def area(self) -> int:
        """Box area in pixels (used by ``--faces largest``)."""
        return self.box[2] * self.box[3]


def clip_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int):
    """Integer (x, y, w, h) of a corner box clipped to the image."""
    left, top = max(0, int(round(x0))), max(0, int(round(y0)))
    right, bottom = min(width, int(round(x1))), min(height, int(round(y1)))
    return left, top, max(0, right - left), max(0, bottom - top)


def resize_by(image: np.ndarray, scale: float) -> np.ndarray:
    """Scale by ``scale``: area interpolation to shrink, bilinear to enlarge."""
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def midpoint(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The point halfway between ``a`` and ``b``."""
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2


def five_point_keypoints(points) -> dict[str, tuple[float, float]]:
    """Named keypoints from five points in RetinaFace's and MTCNN's order: eye on the image's
    left, eye on its right, nose, mouth corner on the left, on the right (plus the mouth
    centre between the corners)."""
    five = [(float(x), float(y)) for x, y in points]
    return {"eye_left": five[0], "eye_right": five[1], "nose": five[2],
            "mouth_left": five[3], "mouth_right": five[4], "mouth": midpoint(five[3], five[4])}
