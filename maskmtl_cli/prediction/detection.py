"""Face detectors for `maskmtl predict`: MTCNN (default) and dlib's HOG and CNN detectors.

dlib's detectors were built for bare faces and miss many faces behind real masks (see issue 6:
on 80 frontal photos of masked people HOG found 1 face, dlib's CNN 50 and MTCNN 63), so MTCNN from
the ``mtcnn`` package (its weights ship inside the wheel) is the default, run by default with
numpy (``mtcnn_numpy``, no TensorFlow import) or with the package's own TensorFlow code. Its five
points give the eye centres directly, which still works when the lower face is covered. The dlib
detectors are options; their faces get eye centres from dlib's 68-point shape predictor run inside
the found box (face_recognition_models weights).

Each detector is built once per process (``get_detector`` caches it): loading MTCNN, the dlib CNN
or the 68-point predictor takes about a second each.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from maskmtl_cli.errors import InputError

DetectorName = Literal["mtcnn", "hog", "cnn"]
DETECTORS: tuple[str, ...] = ("mtcnn", "hog", "cnn")

#: mtcnn 1.0 sizes its image pyramid for 20-pixel faces whatever ``min_face_size`` says, and a
#: larger value shrinks the last pyramid level below PNet's input and crashes; so larger minimum
#: face sizes are handled by shrinking the photo instead (which is also faster).
_MTCNN_BASE_FACE = 20
#: Smallest faces (pixels) dlib's detectors find without upsampling: the HOG window is 80x80 and
#: the CNN (MMOD) window about 40x40.
_DLIB_BASE_FACE = {"hog": 80, "cnn": 40}
#: Upsampling stops once the upsampled photo would exceed this many pixels.
_DLIB_MAX_PIXELS = 16_000_000


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(x, y, width, height)`` in pixels of the (EXIF-rotated) photo, clipped to it.
        score: The detector's confidence (MTCNN: probability; HOG/CNN: dlib's detection score),
            or None for faces given as aligned crops.
        keypoints: Named points ``(x, y)`` in pixels. Always ``eye_left`` and ``eye_right``
            (the eye centres, left/right as seen in the image), and where known ``nose``,
            ``mouth_left``, ``mouth_right`` and ``mouth`` (mouth centre).
        landmarks: Which landmark source gave the keypoints: ``"mtcnn"``, ``"dlib68"``, or
            ``"none"`` for aligned crops. Alignment uses the UTKFace targets of that source.
    """

    box: tuple[int, int, int, int]
    score: float | None
    keypoints: dict[str, tuple[float, float]] = field(default_factory=dict)
    landmarks: str = "none"

    @property
    def area(self) -> int:
        """Box area in pixels (used by ``--faces largest``)."""
        return self.box[2] * self.box[3]


def check_detector_name(name: str) -> str:
    """Return ``name`` if it is a known detector, else raise InputError listing the choices."""
    if name not in DETECTORS:
        raise InputError(f"Unknown detector '{name}'. Choose one of: {', '.join(DETECTORS)}.")
    return name


@functools.lru_cache(maxsize=None)
def get_detector(name: str, engine: str = "numpy") -> "MtcnnDetector | DlibDetector":
    """The process-wide detector called ``name`` (built on first use, then reused).

    Args:
        name: ``"mtcnn"`` (default in the CLI), ``"hog"`` or ``"cnn"``.
        engine: For MTCNN: ``"numpy"`` runs the ``mtcnn`` package's networks and weights with
            numpy (``mtcnn_numpy``: no TensorFlow import, same detections), ``"keras"`` runs
            the package itself on TensorFlow. Ignored by the dlib detectors.

    Returns:
        An object with ``detect(image_rgb, min_face) -> list[Face]``.

    Raises:
        InputError: Unknown detector name.
    """
    check_detector_name(name)
    if name == "mtcnn":
        return MtcnnDetector(engine)
    return DlibDetector(name)


def _clip_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int):
    """Integer (x, y, w, h) of a corner box clipped to the image."""
    left, top = max(0, int(round(x0))), max(0, int(round(y0)))
    right, bottom = min(width, int(round(x1))), min(height, int(round(y1)))
    return left, top, max(0, right - left), max(0, bottom - top)


def _shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """Downscale by ``scale`` (< 1) with area interpolation."""
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class MtcnnDetector:
    """MTCNN (Zhang et al., 2016) from the ``mtcnn`` package, with its five facial points.

    By default the package's weights run on numpy (``mtcnn_numpy.NumpyMtcnn``); ``engine="keras"``
    uses the package's own TensorFlow implementation.
    """

    name = "mtcnn"

    def __init__(self, engine: str = "numpy") -> None:
        if engine == "keras":
            from mtcnn import MTCNN

            self._mtcnn = MTCNN()
        else:
            from maskmtl_cli.prediction.mtcnn_numpy import NumpyMtcnn

            self._mtcnn = NumpyMtcnn()

    def detect(self, image: np.ndarray, min_face: int = 20) -> list[Face]:
        """Faces at least ``min_face`` pixels tall or wide in an RGB uint8 image."""
        height, width = image.shape[:2]
        if min(height, width) < 12 or min_face > max(height, width):
            return []
        scale = min(1.0, _MTCNN_BASE_FACE / min_face)
        work = _shrink(image, scale) if scale < 1.0 else image
        if min(work.shape[:2]) < 12:
            return []
        found = self._mtcnn.detect_faces(np.ascontiguousarray(work),
                                         min_face_size=min(min_face, _MTCNN_BASE_FACE))
        sx, sy = width / work.shape[1], height / work.shape[0]
        faces = []
        for item in found:
            x, y, w, h = (float(v) for v in item["box"])
            box = _clip_box(x * sx, y * sy, (x + w) * sx, (y + h) * sy, width, height)
            if max(box[2], box[3]) < min_face:
                continue
            points = {name: (float(p[0]) * sx, float(p[1]) * sy)
                      for name, p in item["keypoints"].items()}
            keypoints = {
                "eye_left": points["left_eye"],
                "eye_right": points["right_eye"],
                "nose": points["nose"],
                "mouth_left": points["mouth_left"],
                "mouth_right": points["mouth_right"],
                "mouth": _midpoint(points["mouth_left"], points["mouth_right"]),
            }
            faces.append(Face(box, float(item["confidence"]), keypoints, "mtcnn"))
        return faces


class DlibDetector:
    """dlib's HOG (``"hog"``) or MMOD CNN (``"cnn"``) detector plus the 68-point predictor."""

    def __init__(self, name: str) -> None:
        import dlib
        import face_recognition_models

        self.name = name
        if name == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detector_model_location())
        self._predictor = dlib.shape_predictor(
            face_recognition_models.pose_predictor_model_location())

    def _upsampling(self, image: np.ndarray, min_face: int) -> tuple[np.ndarray, int]:
        """The image to search (shrunk for large minimum faces) and dlib's upsample count."""
        base = _DLIB_BASE_FACE[self.name]
        if min_face >= base:
            scale = base / min_face
            return (_shrink(image, scale) if scale < 0.95 else image), 0
        times = math.ceil(math.log2(base / min_face))
        pixels = image.shape[0] * image.shape[1]
        while times > 0 and pixels * 4 ** times > _DLIB_MAX_PIXELS:
            times -= 1
        return image, times

    def detect(self, image: np.ndarray, min_face: int = 20) -> list[Face]:
        """Faces at least about ``min_face`` pixels wide in an RGB uint8 image."""
        import dlib

        height, width = image.shape[:2]
        image = np.ascontiguousarray(image)
        work, upsample = self._upsampling(image, min_face)
        sx, sy = width / work.shape[1], height / work.shape[0]
        if self.name == "hog":
            rects, scores, _ = self._detector.run(work, upsample, 0.0)
            found = list(zip(rects, scores))
        else:
            found = [(d.rect, d.confidence) for d in self._detector(work, upsample)]
        faces = []
        for rect, score in found:
            box = _clip_box(rect.left() * sx, rect.top() * sy, (rect.right() + 1) * sx,
                            (rect.bottom() + 1) * sy, width, height)
            if box[2] < 2 or box[3] < 2 or max(box[2], box[3]) < min_face:
                continue
            shape = self._predictor(image, dlib.rectangle(
                int(rect.left() * sx), int(rect.top() * sy),
                int(rect.right() * sx), int(rect.bottom() * sy)))
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(Face(box, float(score), dlib68_keypoints(points), "dlib68"))
        return faces


def dlib68_keypoints(points: np.ndarray) -> dict[str, tuple[float, float]]:
    """Named keypoints from dlib's 68 points (iBUG 300-W order), as used for alignment.

    Eye centres are the means of the six eye-contour points (36-41 is the eye on the image's
    left, 42-47 the one on its right), as in ``benchmarks/measure_utkface_alignment.py``.
    """
    def point(values: np.ndarray) -> tuple[float, float]:
        return float(values[0]), float(values[1])

    return {
        "eye_left": point(points[36:42].mean(axis=0)),
        "eye_right": point(points[42:48].mean(axis=0)),
        "nose": point(points[30]),
        "mouth_left": point(points[48]),
        "mouth_right": point(points[54]),
        "mouth": point(points[48:68].mean(axis=0)),
    }


def _midpoint(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
