"""The three MTCNN networks (PNet, RNet, ONet) in NumPy, and the loading of their weights.

Layers work on channels-first "CNHW" float32 arrays with Keras semantics; the networks follow
``mtcnn/network/{pnet,rnet,onet}.py`` of the ``mtcnn`` package 1.0.0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def mtcnn_weights_dir() -> Path:
    """The ``assets/weights`` folder of the installed ``mtcnn`` package, found without importing it.

    Raises:
        FileNotFoundError: The ``mtcnn`` package is not installed.
    """
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The 'mtcnn' package, whose wheel ships the MTCNN weights, is not "
                                "installed. Install it with: pip install mtcnn==1.0.0")
    return Path(spec.submodule_search_locations[0]) / "assets" / "weights"


def load_weights(name: str, directory: Path | None = None) -> list[np.ndarray]:
    """The weight arrays of one network (``"pnet"``, ``"rnet"`` or ``"onet"``), in Keras order.

    The files are joblib dumps (LZ4) of ``model.get_weights()``: plain float32 arrays, so
    unpickling needs neither TensorFlow nor Keras. Conv kernels are ``(kh, kw, in, out)``.
    """
    import joblib  # ~0.1 s to import; only needed here

    path = (directory or mtcnn_weights_dir()) / f"{name}.lz4"
    if not path.is_file():
        raise FileNotFoundError(f"MTCNN weights not found: {path}. Reinstall mtcnn==1.0.0.")
    return [np.asarray(array, dtype=np.float32) for array in joblib.load(path)]


# === Layers (channels-first "CNHW" float32 arrays, Keras semantics) ===
# Channels-first keeps the im2col copies and matmuls on long contiguous rows (pixels), which is
# several times faster in NumPy than channels-last with its 3-32 value runs.

def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'valid' stride-1 convolution by im2col and one matmul.

    Args:
        x: ``(in, n, h, w)`` input.
        kernel: ``(out, in, kh, kw)`` (Keras' ``(kh, kw, in, out)`` transposed at load time).
        bias: ``(out,)``.
    """
    out, channels, kh, kw = kernel.shape
    _, n, height, width = x.shape
    if kh == kw == 1:
        columns = x.reshape(channels, -1)
    else:
        windows = sliding_window_view(x, (kh, kw), axis=(2, 3))  # (in, n, h', w', kh, kw)
        height, width = height - kh + 1, width - kw + 1
        columns = windows.transpose(0, 4, 5, 1, 2, 3).reshape(channels * kh * kw, -1)
    result = kernel.reshape(out, -1) @ columns
    result += bias[:, None]
    return result.reshape(out, n, height, width)


def _prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Keras PReLU, ``relu(x) - alpha * relu(-x)``, one alpha per channel (axis 0); in place."""
    alpha = alpha.reshape((-1,) + (1,) * (x.ndim - 1))
    negative = np.minimum(x, 0)
    negative *= alpha
    np.maximum(x, 0, out=x)
    x += negative
    return x


def _max_pool(x: np.ndarray, size: int, stride: int, padding: str) -> np.ndarray:
    """Keras MaxPooling2D on axes 2-3; 'same' pads at the end first (TensorFlow's split), -inf."""
    height, width = x.shape[2:4]
    if padding == "same":
        out_h, out_w = -(-height // stride), -(-width // stride)
        pad_h = max((out_h - 1) * stride + size - height, 0)
        pad_w = max((out_w - 1) * stride + size - width, 0)
        x = np.pad(x, ((0, 0), (0, 0), (pad_h // 2, pad_h - pad_h // 2),
                       (pad_w // 2, pad_w - pad_w // 2)), constant_values=-np.inf)
    else:
        out_h, out_w = (height - size) // stride + 1, (width - size) // stride + 1
    result = None
    for dy in range(size):
        for dx in range(size):
            part = x[:, :, dy:dy + stride * (out_h - 1) + 1:stride,
                     dx:dx + stride * (out_w - 1) + 1:stride]
            result = part.copy() if result is None else np.maximum(result, part, out=result)
    return result


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    exp = np.exp(x - x.max(axis=axis, keepdims=True))
    return exp / exp.sum(axis=axis, keepdims=True)


def _flatten_transposed(x: np.ndarray) -> np.ndarray:
    """Keras ``Permute((2, 1, 3))`` then ``Flatten`` of NHWC, i.e. Caffe's (w, h, c) order."""
    return x.transpose(1, 3, 2, 0).reshape(x.shape[1], -1)


def _dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return x @ kernel + bias


# === Networks (mtcnn/network/{pnet,rnet,onet}.py; w is the get_weights() list) ===

def _pnet(x: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Box offsets ``(4, n, h, w)`` and face probabilities ``(2, n, h, w)``."""
    x = _max_pool(_prelu(_conv(x, w[0], w[1]), w[2]), 2, 2, "same")
    x = _prelu(_conv(x, w[3], w[4]), w[5])
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    return _conv(x, w[9], w[10]), _softmax(_conv(x, w[11], w[12]), axis=0)


def _rnet(x: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Box offsets ``(n, 4)`` and face probabilities ``(n, 2)`` of crops ``(3, n, 24, 24)``."""
    x = _max_pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, "same")
    x = _max_pool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, "valid")
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    x = _dense(_flatten_transposed(x), w[9], w[10])
    x = _prelu(x.T, w[11]).T
    return _dense(x, w[12], w[13]), _softmax(_dense(x, w[14], w[15]), axis=-1)


def _onet(x: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box offsets ``(n, 4)``, points ``(n, 10)`` (x then y, 0-1) and probabilities ``(n, 2)``."""
    x = _max_pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, "same")
    x = _max_pool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, "valid")
    x = _max_pool(_prelu(_conv(x, w[6], w[7]), w[8]), 2, 2, "same")
    x = _prelu(_conv(x, w[9], w[10]), w[11])
    x = _dense(_flatten_transposed(x), w[12], w[13])
    x = _prelu(x.T, w[14]).T
    return (_dense(x, w[15], w[16]), _dense(x, w[17], w[18]),
            _softmax(_dense(x, w[19], w[20]), axis=-1))

