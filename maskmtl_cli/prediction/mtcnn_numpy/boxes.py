"""Box arithmetic and NMS of the ``mtcnn`` package (``mtcnn/utils/bboxes.py``).

Rows are ``(x1, y1, x2, y2, score)`` in float64.
"""

from __future__ import annotations

import numpy as np

#: Rows of the IoU matrix computed at once in NMS (bounds memory for thousands of proposals).
_NMS_BLOCK = 1024


def _sort_by_score(boxes: np.ndarray) -> np.ndarray:
    """Descending by score, with the package's (unstable) ``np.argsort(...)[::-1]`` tie order."""
    return boxes[np.argsort(boxes[:, 4])[::-1]]


def _overlap(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """IoU (``"union"``) or intersection over the smaller area (``"min"``); no +1 on sizes."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter_w = np.maximum(0, np.minimum(a[:, None, 2], b[None, :, 2])
                         - np.maximum(a[:, None, 0], b[None, :, 0]))
    inter_h = np.maximum(0, np.minimum(a[:, None, 3], b[None, :, 3])
                         - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = inter_w * inter_h
    if method == "union":
        denominator = area_a[:, None] + area_b[None, :] - inter
    else:
        denominator = np.minimum(area_a[:, None], area_b[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denominator


def nms(boxes: np.ndarray, threshold: float, method: str = "union",
        sort: bool = True) -> np.ndarray:
    """The package's NMS: drop each box that overlaps any earlier (higher-scoring) box by more than
    ``threshold``, whether that earlier box was itself dropped or not."""
    if sort:
        boxes = _sort_by_score(boxes)
    suppressed = np.zeros(len(boxes), dtype=bool)
    for begin in range(0, len(boxes), _NMS_BLOCK):
        rows = np.arange(begin, min(begin + _NMS_BLOCK, len(boxes)))
        later = np.arange(len(boxes))[None, :] > rows[:, None]
        overlaps = _overlap(boxes[rows, :4], boxes[:, :4], method) > threshold
        suppressed |= (overlaps & later).any(axis=0)
    return boxes[~suppressed]


def _to_square(boxes: np.ndarray) -> np.ndarray:
    """Grow the shorter side to the longer one around the centre."""
    boxes = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    boxes[:, 0] += width * 0.5 - side * 0.5
    boxes[:, 1] += height * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply regression offsets scaled by the box size (+1 pixel convention)."""
    boxes = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] += offsets * np.stack([width, height, width, height], axis=-1)
    return boxes

