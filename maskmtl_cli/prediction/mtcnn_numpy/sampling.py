"""Image sampling like TensorFlow's ``resize_area`` and ``crop_and_resize`` kernels (CHW images)."""

from __future__ import annotations

import numpy as np


def _area_weights(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and overlap weights ``(size_out, k)`` of TF's area resize along one axis."""
    scale = np.float32(size_in) / np.float32(size_out)
    start = np.arange(size_out, dtype=np.float32) * scale
    end = np.arange(1, size_out + 1, dtype=np.float32) * scale
    first, last = np.floor(start).astype(np.int64), np.ceil(end).astype(np.int64)
    index = first[:, None] + np.arange(int((last - first).max()))[None, :]
    weight = np.minimum(index + 1, end[:, None]) - np.maximum(index, start[:, None])
    weight = np.where(index < last[:, None], weight, 0).astype(np.float32)
    return np.minimum(index, size_in - 1), weight


def _resize_axis1(x: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted rows (axis 1): ``out[:, i] = sum_k weight[i, k] * x[:, index[i, k]]``."""
    shape = (x.shape[0], index.shape[0], x.shape[2])
    result, gathered = np.zeros(shape, np.float32), np.empty(shape, np.float32)
    for k in range(index.shape[1]):
        np.take(x, index[:, k], axis=1, out=gathered)
        gathered *= weight[None, :, k, None]
        result += gathered
    return result


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tf.image.resize(..., method="area")`` of one ``(c, h, w)`` float32 image.

    Each output pixel averages the input pixels its footprint covers, weighted by the covered
    fraction (TensorFlow's ``resize_area`` kernel, computed separably: rows, then columns, the
    columns as rows of the transposed image because gathering whole rows is much faster).
    """
    by_rows = _resize_axis1(image, *_area_weights(image.shape[1], height))
    by_rows = np.ascontiguousarray(by_rows.transpose(0, 2, 1))
    result = _resize_axis1(by_rows, *_area_weights(image.shape[2], width))
    scale = ((np.float32(image.shape[1]) / np.float32(height))
             * (np.float32(image.shape[2]) / np.float32(width)))
    result *= np.float32(1.0) / scale
    return np.ascontiguousarray(result.transpose(0, 2, 1))


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear ``size`` x ``size`` crops ``(c, n, size, size)`` like ``tf.image.crop_and_resize``.

    Args:
        image: ``(c, h, w)`` float32 image.
        boxes: ``(n, 4)`` as ``(y1, x1, y2, x2)`` normalised so that 1.0 is ``h - 1`` (``w - 1``);
            samples outside the image are 0.
        size: Side of the square crops.
    """
    height, width = image.shape[1:]
    boxes = boxes.astype(np.float32)
    step = np.arange(size, dtype=np.float32)

    def axis(low: np.ndarray, high: np.ndarray, extent: int):
        scale = (high - low) * np.float32(extent - 1) / np.float32(size - 1)
        coords = low[:, None] * np.float32(extent - 1) + step[None, :] * scale[:, None]
        inside = (coords >= 0) & (coords <= extent - 1)
        lower = np.clip(np.floor(coords), 0, extent - 1).astype(np.int64)
        upper = np.clip(np.ceil(coords), 0, extent - 1).astype(np.int64)
        return lower, upper, coords - np.floor(coords), inside

    top, bottom, y_lerp, y_in = axis(boxes[:, 0], boxes[:, 2], height)
    left, right, x_lerp, x_in = axis(boxes[:, 1], boxes[:, 3], width)
    top, bottom, y_lerp = top[:, :, None], bottom[:, :, None], y_lerp[:, :, None]
    left, right, x_lerp = left[:, None, :], right[:, None, :], x_lerp[:, None, :]
    upper_row = image[:, top, left]
    upper_row += (image[:, top, right] - upper_row) * x_lerp
    lower_row = image[:, bottom, left]
    lower_row += (image[:, bottom, right] - lower_row) * x_lerp
    upper_row += (lower_row - upper_row) * y_lerp
    upper_row[:, ~(y_in[:, :, None] & x_in[:, None, :])] = 0
    return upper_row

