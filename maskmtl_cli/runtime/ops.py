"""Numpy kernels of the runtime's layers: activations, convolution, pooling, per-channel affine.

Ops take and return float32 NHWC arrays and never modify their inputs (a feature map may feed
several layers). Convolutions are im2col plus one matmul; 1x1 convolutions are plain matmuls;
pooling combines strided slices. Semantics follow Keras 3 on the TensorFlow backend, including
TensorFlow's 'same' padding (extra pixel at the bottom/right) and average pooling that, with
'same' padding, averages over the valid cells of a window only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: One layer call: its input arrays (in argument order) -> its output array.
Op = Callable[[list[np.ndarray]], np.ndarray]
#: ``x * scale + shift`` per channel: an inference batch norm, ready to fold into a conv.
Affine = tuple[np.ndarray, np.ndarray]


# === Activations ===


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(np.float32(0), -x))


def _softmax(x: np.ndarray, axis: int | tuple[int, ...] = -1) -> np.ndarray:
    out = np.exp(x - x.max(axis=axis, keepdims=True))
    out /= out.sum(axis=axis, keepdims=True)
    return out


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, np.float32(0))))


def _leaky(x: np.ndarray, slope: np.float32) -> np.ndarray:
    """max(x, slope * x) when 0 <= slope <= 1: two passes, no boolean mask."""
    if 0 <= slope <= 1:
        out = x * slope
        return np.maximum(x, out, out=out)
    return np.where(x >= 0, x, x * slope)


_SELU_ALPHA, _SELU_SCALE = np.float32(1.6732632423543772), np.float32(1.0507009873554805)
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "relu6": lambda x: np.clip(x, np.float32(0), np.float32(6)),
    "leaky_relu": lambda x: _leaky(x, np.float32(0.2)),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(x / np.float32(6) + np.float32(0.5), 0, 1).astype("float32"),
    "softmax": _softmax,
    "tanh": np.tanh,
    "elu": _elu,
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * _elu(x)),
    "softplus": lambda x: np.logaddexp(np.float32(0), x),
    "softsign": lambda x: x / (np.float32(1) + np.abs(x)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "exponential": np.exp,
}


# === Convolution and affine ===


def _same_padding(size: int, window: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'same' padding along one axis: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def _windowed(x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], padding: str,
              fill: float) -> tuple[np.ndarray, int, int]:
    """Pad x for a sliding window: (padded x, output height, output width)."""
    (h, w), (kh, kw), (sh, sw) = x.shape[1:3], window, strides
    if padding == "valid":
        return x, (h - kh) // sh + 1, (w - kw) // sw + 1
    ho, top, bottom = _same_padding(h, kh, sh)
    wo, left, right = _same_padding(w, kw, sw)
    if top == bottom == left == right == 0:
        return x, ho, wo
    n, _, _, c = x.shape
    padded = np.full((n, h + top + bottom, w + left + right, c), fill, dtype="float32")
    padded[:, top : top + h, left : left + w] = x
    return padded, ho, wo


def _window_slices(
    x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], out: tuple[int, int]
):
    """Yield ``((i, j), x[:, i::sh, j::sw])`` cut to the output size, for every window offset."""
    (kh, kw), (sh, sw), (ho, wo) = window, strides, out
    for i in range(kh):
        for j in range(kw):
            yield (i, j), x[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw]


def _conv_op(kernel: np.ndarray, bias: np.ndarray | None, strides: tuple[int, int], padding: str,
             activation: Callable[[np.ndarray], np.ndarray], fold: Affine | None = None) -> Op:
    """Conv2D as im2col + one float32 matmul (a plain matmul for 1x1 kernels)."""
    kh, kw, channels, filters = kernel.shape
    matrix = kernel.reshape(kh * kw * channels, filters)
    if fold is not None:  # BN(conv(x)) = conv(x) * scale + shift: scale the kernel, shift the bias
        matrix = matrix * fold[0]
        bias = fold[1] if bias is None else bias * fold[0] + fold[1]
    matrix = np.ascontiguousarray(matrix, dtype="float32")

    def conv(inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0]
        n = x.shape[0]
        if kh == kw == 1:  # 'same' never pads a 1x1 kernel
            x = x[:, :: strides[0], :: strides[1]] if strides != (1, 1) else x
            ho, wo = x.shape[1:3]
            columns = x.reshape(-1, channels)
        else:
            x, ho, wo = _windowed(x, (kh, kw), strides, padding, 0.0)
            patches = np.empty((n, ho, wo, kh, kw, channels), dtype="float32")
            for (i, j), part in _window_slices(x, (kh, kw), strides, (ho, wo)):
                patches[:, :, :, i, j] = part
            columns = patches.reshape(-1, kh * kw * channels)
        out = columns @ matrix
        if bias is not None:
            out += bias
        return activation(out.reshape(n, ho, wo, filters))

    return conv


def _affine_op(scale: np.ndarray, shift: np.ndarray) -> Op:
    def affine(inputs: list[np.ndarray]) -> np.ndarray:
        out = inputs[0] * scale
        out += shift
        return out

    return affine


# === Pooling ===


def _pool_op(window: tuple[int, int], strides: tuple[int, int], padding: str, use_max: bool) -> Op:
    """2D max or average pooling; with 'same' padding averages count valid cells only (as TF)."""

    def pool(inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0]
        padded, ho, wo = _windowed(x, window, strides, padding, -np.inf if use_max else 0.0)
        out = None
        for _, part in _window_slices(padded, window, strides, (ho, wo)):
            if out is None:
                out = part.copy()
            elif use_max:
                np.maximum(out, part, out=out)
            else:
                out += part
        if use_max:
            return out
        if padded is x:  # every window lies inside the image
            out *= np.float32(1.0 / (window[0] * window[1]))
            return out
        ones = np.ones((1,) + x.shape[1:3] + (1,), "float32")
        ones, _, _ = _windowed(ones, window, strides, padding, 0.0)
        counts = sum(part for _, part in _window_slices(ones, window, strides, (ho, wo)))
        out /= counts
        return out

    return pool

