"""The MTCNN pipeline (pyramid, PNet, RNet and ONet stages) and the ``NumpyMtcnn`` detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskmtl_cli.blas import limit_blas_threads
from maskmtl_cli.prediction.mtcnn_numpy.boxes import _refine, _sort_by_score, _to_square, nms
from maskmtl_cli.prediction.mtcnn_numpy.layers import _onet, _pnet, _rnet, load_weights
from maskmtl_cli.prediction.mtcnn_numpy.sampling import crop_and_resize, resize_area

#: Defaults of ``mtcnn.MTCNN.detect_faces`` (mtcnn 1.0.0, ``stages/stage_*.py``).
PNET_INPUT = 12
SCALE_FACTOR = 0.709
THRESHOLD_PNET, THRESHOLD_RNET, THRESHOLD_ONET = 0.6, 0.7, 0.8
NMS_PNET_PER_SCALE, NMS_PNET_ALL, NMS_RNET, NMS_ONET = 0.5, 0.7, 0.7, 0.7
#: Order of the five points in ONet's output (all x, then all y).
KEYPOINT_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
#: Key order of ``keypoints`` in the package's JSON output (``utils/landmarks.parse_landmarks``).
KEYPOINT_KEYS = ("nose", "mouth_right", "right_eye", "left_eye", "mouth_left")


def pyramid_scales(height: int, width: int, min_face_size: int,
                   scale_factor: float = SCALE_FACTOR) -> np.ndarray:
    """The package's pyramid: ``12 / min_face_size`` times powers of ``scale_factor``.

    The number of levels depends only on the image size, as in mtcnn 1.0.0.
    """
    count = round(-((np.log(min(width, height) / PNET_INPUT) / np.log(scale_factor)) + 1))
    return PNET_INPUT / min_face_size * scale_factor ** np.arange(max(count, 0))


def _pnet_proposals(offsets: np.ndarray, probs: np.ndarray, scale: float) -> np.ndarray:
    """PNet cells over the threshold as image-pixel boxes, by score (stride 2, cell 11)."""
    score = probs[1, 0]
    ys, xs = np.nonzero(score > THRESHOLD_PNET)
    reg = offsets[:, 0, ys, xs].T.astype(np.float64)
    left, top = xs * 2 + 1, ys * 2 + 1
    boxes = np.stack([left + reg[:, 0] * 11, top + reg[:, 1] * 11, left + 11 + reg[:, 2] * 11,
                      top + 11 + reg[:, 3] * 11, score[ys, xs].astype(np.float64)], axis=-1)
    boxes = _sort_by_score(boxes)
    boxes[:, :4] /= scale
    return boxes


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 view of an RGB, grayscale (HxW or HxWx1) or RGBA image (alpha dropped)."""
    image = np.asarray(image)
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"Expected an image array of 0-255 values; received dtype={image.dtype}.")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError("Expected an RGB image of shape (height, width, 3) (grayscale and RGBA "
                         f"are converted); received shape={image.shape}.")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[:, :, :3]


class NumpyMtcnn:
    """MTCNN face detector with the ``mtcnn`` package's weights and pipeline, in NumPy only.

    Build once and reuse: construction loads the three weight files (~0.15 s with joblib's import).

    Args:
        weights_dir: Folder with ``pnet.lz4``, ``rnet.lz4`` and ``onet.lz4``; default: the one in
            the installed ``mtcnn`` wheel.

    Example:
        >>> detector = NumpyMtcnn()
        >>> faces = detector.detect_faces(image_rgb)  # [{"box": [x, y, w, h], ...}, ...]
    """

    def __init__(self, weights_dir: Path | None = None) -> None:
        self.weights_dir = weights_dir
        # Conv kernels go from Keras' (kh, kw, in, out) to (out, in, kh, kw), the im2col order.
        self._weights = {
            name: [np.ascontiguousarray(w.transpose(3, 2, 0, 1)) if w.ndim == 4 else w
                   for w in load_weights(name, weights_dir)]
            for name in ("pnet", "rnet", "onet")}

    def detect_faces(self, image: np.ndarray, min_face_size: int = 20) -> list[dict]:
        """Faces in one image, as ``mtcnn.MTCNN().detect_faces(image, min_face_size=...)`` returns.

        Args:
            image: RGB ``(height, width, 3)`` array of 0-255 values (uint8 usually); grayscale and
                RGBA are converted (the package itself fails on them).
            min_face_size: Sets the first pyramid scale (``12 / min_face_size``). Pyramid levels too
                small for PNet are skipped, where the package would fail.

        Returns:
            One dict per face, highest confidence first: ``box`` ``[x, y, width, height]`` (ints,
            clipped to the image), ``confidence`` (float) and ``keypoints`` (``nose``,
            ``mouth_right``, ``right_eye``, ``left_eye``, ``mouth_left``: ``[x, y]`` ints).

        Raises:
            ValueError: ``image`` is not an image array, or ``min_face_size`` is not positive.
        """
        return _to_json(self.detect_array(image, min_face_size))

    def detect_array(self, image: np.ndarray, min_face_size: int = 20) -> np.ndarray:
        """Unrounded detections: the package's ``output_type="numpy", box_format="xyxy"`` rows.

        Returns:
            ``(faces, 15)`` float64 rows ``x1, y1, x2, y2, confidence``, then the x of
            ``KEYPOINT_ORDER``'s five points, then their y; boxes clipped to the image (to
            ``width - 1``, ``height - 1``), points not; highest confidence first.

        Raises:
            ValueError: As ``detect_faces``.
        """
        if min_face_size <= 0:
            raise ValueError("min_face_size must be positive; "
                             f"received min_face_size={min_face_size}.")
        rgb = _as_rgb(image)
        height, width = rgb.shape[:2]
        if min(height, width) < PNET_INPUT:
            return np.empty((0, 15))
        # (x - 127.5) / 128 is exact in float32 for 0-255 integers. Channels first (see
        # layers._conv).
        normalized = rgb.transpose(2, 0, 1).astype(np.float32, order="C")
        normalized = (normalized - np.float32(127.5)) / np.float32(128)
        with limit_blas_threads(1):
            boxes = self._stage_pnet(normalized, min_face_size)
            if len(boxes):
                boxes = self._stage_rnet(normalized, boxes)
            if not len(boxes):
                return np.empty((0, 15))
            rows = self._stage_onet(normalized, boxes)
        rows[:, [0, 2]] = np.clip(rows[:, [0, 2]], 0, width - 1)
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, height - 1)
        return rows

    def _stage_pnet(self, image: np.ndarray, min_face_size: int) -> np.ndarray:
        """Proposals over the pyramid: NMS per level (0.5), across levels (0.7), then squared."""
        height, width = image.shape[1:]
        found = []
        for scale in pyramid_scales(height, width, min_face_size):
            # The package truncates (float) height * scale to ints, as tf.image.resize does.
            size_h, size_w = (np.asarray([height, width]) * scale).astype(np.int32)
            if min(size_h, size_w) < PNET_INPUT - 1:  # PNet's output would be empty
                continue
            level = resize_area(image, int(size_h), int(size_w))
            offsets, probs = _pnet(level[:, None], self._weights["pnet"])
            proposals = _pnet_proposals(offsets, probs, scale)
            found.append(nms(proposals, NMS_PNET_PER_SCALE, sort=False))
        boxes = np.concatenate(found) if found else np.empty((0, 5))
        return _to_square(nms(boxes, NMS_PNET_ALL))

    def _stage_rnet(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """RNet on 24x24 crops: new scores, refined boxes, threshold 0.7, NMS 0.7, squared."""
        offsets, probs = _rnet(_extract_patches(image, boxes, 24), self._weights["rnet"])
        boxes = boxes.copy()
        boxes[:, 4] = probs[:, 1]
        boxes = _refine(boxes, offsets)
        boxes = boxes[boxes[:, 4] > THRESHOLD_RNET]
        return _to_square(nms(boxes, NMS_RNET))

    def _stage_onet(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """ONet on 48x48 crops: points, scores, refined boxes, threshold 0.8, NMS 0.7 ("min")."""
        offsets, points, probs = _onet(_extract_patches(image, boxes, 48), self._weights["onet"])
        # Points are placed in the box given to ONet (before refinement); the package keeps
        # them in float32.
        width = boxes[:, 2:3] - boxes[:, 0:1] + 1
        height = boxes[:, 3:4] - boxes[:, 1:2] + 1
        points = np.concatenate([width * points[:, :5] + boxes[:, 0:1] - 1,
                                 height * points[:, 5:] + boxes[:, 1:2] - 1], axis=1)
        boxes = boxes.copy()
        boxes[:, 4] = probs[:, 1]
        rows = np.concatenate([_refine(boxes, offsets), points.astype(np.float32)], axis=1)
        return nms(rows[rows[:, 4] > THRESHOLD_ONET], NMS_ONET, method="min")


def _extract_patches(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Crops for RNet/ONet: boxes divided by (height, width), sampled as TF samples them."""
    height, width = image.shape[1:]
    normalized = boxes[:, [1, 0, 3, 2]] / np.asarray([[height, width, height, width]])
    return crop_and_resize(image, normalized, size)


def _to_json(rows: np.ndarray) -> list[dict]:
    """The package's JSON (``utils/bboxes.to_json``): box ``[x, y, w, h]`` and points rounded."""
    sizes = np.stack([rows[:, 0], rows[:, 1], rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]],
                     axis=1)
    boxes, points = sizes.round().astype(int), rows[:, 5:].round().astype(int)
    faces = []
    for box, score, point in zip(boxes, rows[:, 4], points):
        named = {name: [int(point[i]), int(point[i + 5])] for i, name in enumerate(KEYPOINT_ORDER)}
        faces.append({"box": [int(v) for v in box], "confidence": float(score),
                      "keypoints": {name: named[name] for name in KEYPOINT_KEYS}})
    return faces
