"""Face boxes and 68-point landmarks with dlib.

Faces are found with dlib's HOG frontal detector, its CNN (MMOD) detector or RetinaFace (the
detector of `maskmtl predict`, which finds masked and turned faces that HOG misses), and
landmarked with dlib's 68-point shape predictor (iBUG 300-W points, 0-based: jaw 0-16, brows
17-26, nose 27-35, eyes 36-47, mouth 48-67). All model files come from the
``face-recognition-models`` package, so nothing is downloaded. Each model is loaded at most
once per process.

Two ways to get a face box:

* detected: the detector runs on a copy of the image scaled so its longer side lies between
  ``DETECT_MIN_SIDE`` and ``DETECT_MAX_SIDE`` (huge photos are downscaled for detection only; the
  mask is drawn at full size), retrying with one 2x upsampling when a small image shows no face.
* aligned: for face crops such as UTKFace's, the crop itself is the face box (inset by
  ``ALIGNED_BOX``, the box dlib's HOG detector typically puts on such a crop), so no face is lost
  to a missed detection.

Before landmarking, the face region is rescaled so the box is about ``LANDMARK_FACE_SIZE`` pixels
wide: a 64x64 crop gets upscaled (the predictor is noticeably more accurate on it), a face that
fills a 6000 px photo gets downscaled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.faces.dlib_models import (  # noqa: F401  (re-exported)
    cnn_detector,
    hog_detector,
    import_dlib,
    shape_predictor,
)
from maskmtl_cli.schema import MASK_DETECTORS as DETECTORS

#: A RetinaFace box (x0, y0, x1, y1) -> the box dlib's shape predictor expects (HOG-like):
#: width and height factors and the shift of the centre as fractions of the width and height.
#: Measured on 399 UTKFace 200x200 crops where both found the face (every 24th sorted file):
#: HOG's box is 1.071 +- 0.093 times as wide and 0.949 +- 0.087 times as tall, its centre
#: 0.018 +- 0.054 widths to the right and 0.001 +- 0.059 heights lower.
RETINAFACE_TO_DLIB_BOX = (1.071, 0.949, 0.018, 0.001)
#: Face box of an aligned crop as fractions of its width and height (left, top, right, bottom).
#: Measured: on 300 UTKFace 200x200 crops, HOG puts its box at about (15, 15)-(194, 194); landmarks
#: from this fixed box differ from those from the detected box by 0.9% of the eye distance (mean).
ALIGNED_BOX = (0.075, 0.075, 0.97, 0.97)
#: Width in pixels that a face box is rescaled to before the shape predictor runs.
LANDMARK_FACE_SIZE = 200
#: The detector sees the image scaled so its longer side is at most this (huge photos).
DETECT_MAX_SIDE = 1280
#: ... and at least this (64 px crops are upscaled so the 80 px HOG window fits the face).
DETECT_MIN_SIDE = 200
#: The CNN detector is slow on a CPU: it sees at most this many pixels on the longer side.
CNN_MAX_SIDE = 640
#: A HOG detection image up to this size is retried with one 2x upsampling if nothing is found.
HOG_RETRY_MAX_SIDE = 640
#: The same for the CNN detector (4x the pixels is costly on a CPU).
CNN_RETRY_MAX_SIDE = 320
#: HOG boxes other than the best-scoring one need at least this score: drops weak false
#: positives (a badge on the astronaut's suit scores 0.03-0.12) that would otherwise get a
#: mask or, being larger, be taken for the largest face. The best box is always kept: on 300
#: UTKFace crops it scored 0.02 to 3.1 (5th percentile 0.34).
HOG_SECONDARY_MIN_SCORE = 0.25


@dataclass(frozen=True)
class FaceBox:
    """A face box in full-image pixel coordinates.

    Attributes:
        left: Left edge (inclusive).
        top: Top edge (inclusive).
        right: Right edge (exclusive).
        bottom: Bottom edge (exclusive).
        source: ``"detected"`` or ``"aligned"``.
        detector: ``"hog"``, ``"cnn"`` or ``"retinaface"`` for detected boxes, ``""`` for
            aligned ones.
    """

    left: int
    top: int
    right: int
    bottom: int
    source: str
    detector: str = ""

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)

    def as_text(self) -> str:
        """``"left top right bottom"``, the form written to masks.csv."""
        return f"{self.left} {self.top} {self.right} {self.bottom}"


@functools.cache
def retinaface_detector():
    """RetinaFace on ONNX Runtime, as `maskmtl predict` runs it (cached per process)."""
    from maskmtl_cli.faces.detection import get_detector

    return get_detector("retinaface")


def retinaface_boxes(image: np.ndarray) -> list[FaceBox]:
    """RetinaFace's faces in an RGB (or gray) image as boxes for dlib's shape predictor."""
    height, width = image.shape[:2]
    scale_w, scale_h, shift_x, shift_y = RETINAFACE_TO_DLIB_BOX
    boxes = []
    for face in retinaface_detector().detect(np.ascontiguousarray(image), 20):
        x, y, w, h = face.box
        centre_x, centre_y = x + w * (0.5 + shift_x), y + h * (0.5 + shift_y)
        half_w, half_h = w * scale_w / 2, h * scale_h / 2
        box = FaceBox(left=max(0, int(round(centre_x - half_w))),
                      top=max(0, int(round(centre_y - half_h))),
                      right=min(width, int(round(centre_x + half_w))),
                      bottom=min(height, int(round(centre_y + half_h))),
                      source="detected", detector="retinaface")
        if box.width > 1 and box.bottom - box.top > 1:
            boxes.append(box)
    return boxes


def aligned_box(width: int, height: int) -> FaceBox:
    """The face box of an aligned crop of the given size (see ``ALIGNED_BOX``)."""
    left, top, right, bottom = ALIGNED_BOX
    return FaceBox(
        left=int(round(left * width)),
        top=int(round(top * height)),
        right=max(int(round(right * width)), int(round(left * width)) + 1),
        bottom=max(int(round(bottom * height)), int(round(top * height)) + 1),
        source="aligned",
    )


class DlibLandmarker:
    """Finds face boxes and their 68 landmarks in 8-bit grayscale images.

    Args:
        detector: ``"hog"``, ``"cnn"``, ``"retinaface"`` or ``"auto"`` (RetinaFace only where
            HOG finds nothing).
        aligned: Use the whole image as the face box instead of running a detector.

    Models load lazily on first use and are shared by all instances in a process, so creating a
    landmarker per worker costs nothing after the first. Call ``load()`` to load them up front
    (before forking workers, so the children inherit them).
    """

    def __init__(self, detector: str = "hog", aligned: bool = False) -> None:
        if detector not in DETECTORS:
            raise InputError(
                f"Unknown detector {detector!r}. Choose one of: {', '.join(DETECTORS)}."
            )
        self.detector = detector
        self.aligned = aligned

    def load(self) -> None:
        """Load the models this landmarker will need now rather than on the first image."""
        shape_predictor()
        if not self.aligned:
            if self.detector in ("hog", "auto"):
                hog_detector()
            if self.detector == "cnn":
                cnn_detector()
            if self.detector in ("retinaface", "auto"):
                retinaface_detector()

    def find_boxes(self, gray: np.ndarray, rgb: np.ndarray | None = None) -> list[FaceBox]:
        """Face boxes in ``gray`` (H, W) uint8, largest first; empty if none is found.

        ``rgb`` is the same image in colour, for RetinaFace (which otherwise sees ``gray``).
        """
        height, width = gray.shape[:2]
        if self.aligned:
            return [aligned_box(width, height)]
        boxes: list[FaceBox] = []
        if self.detector in ("hog", "auto"):
            boxes = self._detect(gray, "hog", DETECT_MAX_SIDE, HOG_RETRY_MAX_SIDE)
        if self.detector == "cnn":
            boxes = self._detect(gray, "cnn", CNN_MAX_SIDE, CNN_RETRY_MAX_SIDE)
        if self.detector == "retinaface" or (self.detector == "auto" and not boxes):
            boxes = retinaface_boxes(rgb if rgb is not None else gray)
        return sorted(boxes, key=lambda box: (-box.area, box.top, box.left))

    def _detect(self, gray: np.ndarray, kind: str, max_side: int, retry_side: int) -> list[FaceBox]:
        import cv2

        height, width = gray.shape[:2]
        longer = max(height, width)
        scale = min(1.0, max_side / longer)
        if longer * scale < DETECT_MIN_SIDE:
            scale = DETECT_MIN_SIDE / longer
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            image = cv2.resize(gray, size, interpolation=interpolation)
        else:
            image = gray
        found = self._run_detector(kind, image, 0)
        if not found and max(image.shape[:2]) <= retry_side:
            found = self._run_detector(kind, image, 1)
        scale_x = width / image.shape[1]
        scale_y = height / image.shape[0]
        boxes = []
        for rect in found:
            box = FaceBox(
                left=int(round(rect.left() * scale_x)),
                top=int(round(rect.top() * scale_y)),
                right=int(round((rect.right() + 1) * scale_x)),
                bottom=int(round((rect.bottom() + 1) * scale_y)),
                source="detected",
                detector=kind,
            )
            if box.width > 1 and box.bottom - box.top > 1:
                boxes.append(box)
        return boxes

    @staticmethod
    def _run_detector(kind: str, image: np.ndarray, upsample: int) -> list:
        if kind == "cnn":
            return [found.rect for found in cnn_detector()(image, upsample)]
        rects, scores, _ = hog_detector().run(image, upsample, 0.0)
        if not len(rects):
            return []
        best = max(scores)
        return [rect for rect, score in zip(rects, scores)
                if score == best or score >= HOG_SECONDARY_MIN_SCORE]

    def landmarks(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 68 (x, y) landmarks of the face in ``box``, float32 (68, 2), full-image pixels.

        The region around the box is rescaled so the box is ``LANDMARK_FACE_SIZE`` wide first,
        unless it is already between 0.9 and 2 times that width.
        """
        import cv2

        dlib = import_dlib()
        predictor = shape_predictor()
        width = max(box.width, 1)
        scale = LANDMARK_FACE_SIZE / width
        if 0.5 <= scale <= 1.0 / 0.9:
            rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
            shape = predictor(gray, rect)
            return _shape_to_array(shape)
        # Crop the face with a margin of half a box on each side, then rescale the crop.
        height_img, width_img = gray.shape[:2]
        margin_x = width // 2
        margin_y = max(box.bottom - box.top, 1) // 2
        x0 = max(0, box.left - margin_x)
        y0 = max(0, box.top - margin_y)
        x1 = min(width_img, box.right + margin_x)
        y1 = min(height_img, box.bottom + margin_y)
        crop = gray[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        interpolation = cv2.INTER_CUBIC if scale > 1.0 else cv2.INTER_AREA
        resized = cv2.resize(crop, size, interpolation=interpolation)
        scale_x = size[0] / (x1 - x0)
        scale_y = size[1] / (y1 - y0)
        rect = dlib.rectangle(
            int(round((box.left - x0) * scale_x)),
            int(round((box.top - y0) * scale_y)),
            int(round((box.right - x0) * scale_x)) - 1,
            int(round((box.bottom - y0) * scale_y)) - 1,
        )
        points = _shape_to_array(predictor(resized, rect))
        # Map pixel centres back: x_src = (x_dst + 0.5) / scale - 0.5 + crop offset.
        points[:, 0] = (points[:, 0] + 0.5) / scale_x - 0.5 + x0
        points[:, 1] = (points[:, 1] + 0.5) / scale_y - 0.5 + y0
        return points


def _shape_to_array(shape) -> np.ndarray:
    return np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float32)
