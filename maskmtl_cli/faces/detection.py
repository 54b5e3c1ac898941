"""Face detectors for `maskmtl predict`: RetinaFace (default), MTCNN and dlib's HOG and CNN.

- ``retinaface`` (default): RetinaFace with a MobileNet-0.25 backbone on ONNX Runtime, searched
  as an image pyramid (``faces/retinaface.py``). It finds masked, turned and small faces
  (docs/predict.md: 99% of real masked frontal portraits, 94% turned aside, against 77% and 48%
  for MTCNN) in a few milliseconds, and gives five points (eyes, nose, mouth corners).
- ``mtcnn``: MTCNN (Zhang et al., 2016) from the ``mtcnn`` package on TensorFlow, with the same
  five points; slower to start (TensorFlow) and to run, kept for comparison with earlier runs.
- ``hog`` / ``cnn``: dlib's HOG and MMOD CNN detectors, made for bare frontal faces (HOG misses
  most masked ones); their faces get eye centres from dlib's 68-point shape predictor.

Each detector is built once per process (``get_detector`` caches it).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.faces.face import Face, clip_box, five_point_keypoints, resize_by
from maskmtl_cli.faces.retinaface import RETINAFACE_THRESHOLD, RetinaFaceDetector
from maskmtl_cli.schema import DEFAULT_DETECTOR, DETECTOR_HELP, DETECTORS  # noqa: F401

__all__ = ["Face", "RETINAFACE_THRESHOLD", "RetinaFaceDetector", "check_detector_name",
           "get_detector", "MtcnnDetector", "DlibDetector", "dlib68_keypoints"]

#: mtcnn 1.0 sizes its image pyramid for 20-pixel faces whatever ``min_face_size`` says, and a
#: larger value shrinks the last pyramid level below PNet's input and crashes; so larger minimum
#: face sizes are handled by shrinking the photo instead (which is also faster).
_MTCNN_BASE_FACE = 20
#: Smallest faces (pixels) dlib's detectors find without upsampling: the HOG window is 80x80 and
#: the CNN (MMOD) window about 40x40.
_DLIB_BASE_FACE = {"hog": 80, "cnn": 40}
#: Upsampling stops once the upsampled photo would exceed this many pixels.
_DLIB_MAX_PIXELS = 16_000_000


def check_detector_name(name: str) -> str:
    """Return ``name`` if it is a known detector, else raise InputError listing the choices."""
    if name not in DETECTORS:
        raise InputError(f"Unknown detector '{name}'. Choose one of: {', '.join(DETECTORS)}.")
    return name


@functools.lru_cache(maxsize=None)
def get_detector(name: str = DEFAULT_DETECTOR, threshold: float | None = None):
    """The process-wide detector called ``name`` (built on first use, then reused).

    Args:
        name: ``"retinaface"`` (default), ``"mtcnn"``, ``"hog"`` or ``"cnn"``.
        threshold: RetinaFace's score threshold; None uses ``RETINAFACE_THRESHOLD``. Ignored by
            the other detectors.

    Returns:
        An object with ``name`` and ``detect(image_rgb, min_face) -> list[Face]``.

    Raises:
        InputError: Unknown detector name.
    """
    check_detector_name(name)
    if name == "retinaface":
        return RetinaFaceDetector(RETINAFACE_THRESHOLD if threshold is None else threshold)
    if name == "mtcnn":
        return MtcnnDetector()
    return DlibDetector(name)


class MtcnnDetector:
    """MTCNN (Zhang et al., 2016) from the ``mtcnn`` package (TensorFlow), with its five points."""

    name = "mtcnn"

    def __init__(self) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up lines
        from maskmtl_cli.extras import MTCNN_PACKAGES, require_extra

        require_extra("train", "--detector mtcnn", MTCNN_PACKAGES)
        from mtcnn import MTCNN

        self._mtcnn = MTCNN()

    def detect(self, image: np.ndarray, min_face: int = 20) -> list[Face]:
        """Faces at least ``min_face`` pixels tall or wide in an RGB uint8 image."""
        height, width = image.shape[:2]
        if min(height, width) < 12 or min_face > max(height, width):
            return []
        scale = min(1.0, _MTCNN_BASE_FACE / min_face)
        work = resize_by(image, scale) if scale < 1.0 else image
        if min(work.shape[:2]) < 12:
            return []
        found = self._mtcnn.detect_faces(np.ascontiguousarray(work),
                                         min_face_size=min(min_face, _MTCNN_BASE_FACE))
        sx, sy = width / work.shape[1], height / work.shape[0]
        faces = []
        for item in found:
            x, y, w, h = (float(v) for v in item["box"])
            box = clip_box(x * sx, y * sy, (x + w) * sx, (y + h) * sy, width, height)
            if max(box[2], box[3]) < min_face:
                continue
            points = {name: (float(p[0]) * sx, float(p[1]) * sy)
                      for name, p in item["keypoints"].items()}
            keypoints = five_point_keypoints(
                [points[name] for name in ("left_eye", "right_eye", "nose", "mouth_left",
                                           "mouth_right")])
            faces.append(Face(box, float(item["confidence"]), keypoints, "mtcnn"))
        return faces


class DlibDetector:
    """dlib's HOG (``"hog"``) or MMOD CNN (``"cnn"``) detector plus the 68-point predictor."""

    def __init__(self, name: str) -> None:
        from maskmtl_cli.faces.dlib_models import cnn_detector, hog_detector, shape_predictor

        self.name = name
        self._detector = hog_detector() if name == "hog" else cnn_detector()
        self._predictor = shape_predictor()

    def _upsampling(self, image: np.ndarray, min_face: int) -> tuple[np.ndarray, int]:
        """The image to search (shrunk for large minimum faces) and dlib's upsample count."""
        base = _DLIB_BASE_FACE[self.name]
        if min_face >= base:
            scale = base / min_face
            return (resize_by(image, scale) if scale < 0.95 else image), 0
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
            box = clip_box(rect.left() * sx, rect.top() * sy, (rect.right() + 1) * sx,
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


