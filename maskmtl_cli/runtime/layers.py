"""Numpy implementations of the Keras layers maskmtl networks use (inference semantics).

Each builder takes a layer's serialized config and its variables and returns an ``Op``: a function
from the layer's input arrays to its output array, float32, NHWC. Ops never modify their inputs
(a feature map may feed several layers). The array kernels (convolution, pooling, activations)
live in ``maskmtl_cli.runtime.ops``; this module reads layer configs, checks the options the
runtime supports and binds weights.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from maskmtl_cli.errors import ModelError
from maskmtl_cli.runtime.ops import (
    _ACTIVATIONS,
    Affine,
    Op,
    _affine_op,
    _conv_op,
    _leaky,
    _pool_op,
    _softmax,
)

#: The variables of a layer (argument None) or of one of its sublayers (attribute name).
WeightsGetter = Callable[[str | None], list[np.ndarray]]
Builder = Callable[[dict, dict, WeightsGetter, "Affine | None"], Op]

#: Layers that are the identity at inference (augmentation, noise and dropout layers).
#: RandomCrop is not among them: at inference it crops or resizes to its target size.
IDENTITY_LAYERS = frozenset(
    {
        "InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomContrast",
        "RandomBrightness", "RandomSaturation", "RandomHue", "RandomSharpness", "RandomShear",
        "RandomColorJitter", "RandomColorDegeneration", "RandomGrayscale", "RandomInvert",
        "RandomPosterization", "RandomErasing", "RandomGaussianBlur", "RandomPerspective",
        "RandomElasticTransform",
    }
)
#: Layers whose inference batch norm ``make_op`` may fold into their weights.
FOLDABLE_LAYERS = frozenset({"Conv2D", "Dense"})
_FLOAT_POLICIES = ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


class UnsupportedModelError(ModelError, ValueError):
    """The numpy runtime cannot run this model file; load it with Keras instead.

    Attributes:
        layer_class: The unsupported layer's class name, or None when the file itself is the
            problem (not a zip, truncated, no functional graph).
    """

    def __init__(self, message: str, layer_class: str | None = None):
        super().__init__(message)
        self.layer_class = layer_class


def make_op(layer: dict, weights: WeightsGetter, fold: Affine | None = None) -> Op:
    """The numpy function of one serialized layer, its weights bound.

    Args:
        layer: One entry of the functional config's ``layers`` list.
        weights: Reads the layer's variables, in creation order.
        fold: A following batch norm to fold into the weights (``FOLDABLE_LAYERS`` only).

    Raises:
        UnsupportedModelError: Unknown layer class, or an option the runtime does not implement.
    """
    class_name = layer["class_name"]
    config = layer.get("config", {})
    policy = config.get("dtype")
    if isinstance(policy, dict):
        policy = policy.get("config", {}).get("name")
    if policy is not None and policy not in _FLOAT_POLICIES:
        _unsupported(layer, f"dtype policy '{policy}'")
    if class_name in IDENTITY_LAYERS and not layer.get("registered_name"):
        return identity
    registered = layer.get("registered_name") or class_name  # None for built-in Keras layers
    builder = _BUILDERS.get(registered)
    if builder is None:
        raise UnsupportedModelError(
            f"Layer '{layer['name']}' is a {registered}, which the numpy runtime does not "
            f"support (supported: {', '.join(SUPPORTED_LAYERS)}); load the model with Keras.",
            layer_class=class_name,
        )
    if config.get("data_format", "channels_last") != "channels_last":
        _unsupported(layer, "data_format='channels_first'")
    return builder(layer, config, weights, fold)


def batch_norm_affine(layer: dict, weights: WeightsGetter, sublayer: str | None = None) -> Affine:
    """An inference BatchNormalization as per-channel ``(scale, shift)``.

    Variables come in Keras' creation order: gamma (if ``scale``), beta (if ``center``),
    moving mean, moving variance; ``scale = gamma / sqrt(variance + epsilon)``.
    """
    config = layer.get("config", {}) if sublayer is None else {}
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, 3) or config.get("renorm") or config.get("synchronized"):
        _unsupported(layer, "a non-channel axis or renormalisation")
    params = weights(sublayer)
    gamma = params.pop(0) if params and config.get("scale", True) else None
    beta = params.pop(0) if params and config.get("center", True) else None
    if len(params) != 2:
        _unsupported(layer, "an unexpected set of batch-norm variables")
    mean, variance = params
    epsilon = np.float32(config.get("epsilon", 1e-3))
    scale = np.float32(1) / np.sqrt(variance + epsilon)
    if gamma is not None:
        scale = scale * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    return scale.astype("float32"), shift.astype("float32")


def _unsupported(layer: dict, what: str) -> None:
    """Raise UnsupportedModelError for an option of a supported layer class."""
    raise UnsupportedModelError(
        f"Layer '{layer['name']}' ({layer['class_name']}) uses {what}, which the numpy runtime "
        "does not support; load the model with Keras.",
        layer_class=layer["class_name"],
    )


def identity(inputs: list[np.ndarray]) -> np.ndarray:
    """The op of layers that do nothing at inference."""
    return inputs[0]


# === Activations ===


def _activation(layer: dict, value: Any) -> Callable[[np.ndarray], np.ndarray]:
    """An activation by its serialized name (a string, or a dict holding one)."""
    if isinstance(value, dict):
        value = value.get("config")
    if value is None:
        return _ACTIVATIONS["linear"]
    if not isinstance(value, str) or value not in _ACTIVATIONS:
        _unsupported(layer, f"activation {value!r}")
    return _ACTIVATIONS[value]


# === Convolution, dense, normalisation ===


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, float)):
        return int(value), int(value)
    return int(value[0]), int(value[1])


def _build_conv2d(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    if _pair(config.get("dilation_rate", 1)) != (1, 1) or config.get("groups", 1) != 1:
        _unsupported(layer, "dilation or grouped convolution")
    padding = config.get("padding", "valid")
    if padding not in ("valid", "same"):
        _unsupported(layer, f"padding='{padding}'")
    params = weights(None)
    if len(params) != (2 if config.get("use_bias", True) else 1):
        _unsupported(layer, f"{len(params)} weight arrays (quantisation?)")
    bias = params[1] if len(params) > 1 else None
    activation = _activation(layer, config.get("activation"))
    return _conv_op(params[0], bias, _pair(config.get("strides", 1)), padding, activation, fold)


def _build_dense(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    params = weights(None)
    if len(params) != (2 if config.get("use_bias", True) else 1):
        _unsupported(layer, f"{len(params)} weight arrays (LoRA or quantisation)")
    kernel, bias = params[0], params[1] if len(params) > 1 else None
    if fold is not None:
        kernel = kernel * fold[0]
        bias = fold[1] if bias is None else bias * fold[0] + fold[1]
    kernel = np.ascontiguousarray(kernel, dtype="float32")
    activation = _activation(layer, config.get("activation"))

    def dense(inputs: list[np.ndarray]) -> np.ndarray:
        out = inputs[0] @ kernel
        if bias is not None:
            out += bias
        return activation(out)

    return dense


def _build_batch_norm(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    return _affine_op(*batch_norm_affine(layer, weights))


def _build_rescaling(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    scale = np.asarray(config.get("scale", 1.0), dtype="float32")
    offset = np.asarray(config.get("offset", 0.0), dtype="float32")
    return _affine_op(scale, offset)


# === Pooling ===


def _build_pooling(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    window = _pair(config.get("pool_size", 2))
    strides = _pair(config.get("strides") or window)
    padding = config.get("padding", "valid")
    if padding not in ("valid", "same"):
        _unsupported(layer, f"padding='{padding}'")
    return _pool_op(window, strides, padding, layer["class_name"] == "MaxPooling2D")


def _build_global_average(
    layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None
) -> Op:
    keepdims = bool(config.get("keepdims", False))
    return lambda inputs: inputs[0].mean(axis=(1, 2), keepdims=keepdims, dtype="float32")


# === Element-wise, shape and merge layers ===


def _build_leaky_relu(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    slope = np.float32(config.get("negative_slope", config.get("alpha", 0.3)))
    return lambda inputs: _leaky(inputs[0], slope)


def _build_relu(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    max_value, slope = config.get("max_value"), np.float32(config.get("negative_slope") or 0.0)
    threshold = np.float32(config.get("threshold") or 0.0)

    def relu(inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0]
        out = np.where(x >= threshold, x, slope * (x - threshold))
        return np.minimum(out, np.float32(max_value)) if max_value is not None else out

    return relu


def _build_activation(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    function = _activation(layer, config.get("activation"))
    return lambda inputs: function(inputs[0])


def _build_softmax(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    axis = config.get("axis", -1)
    axis = tuple(axis) if isinstance(axis, list) else int(axis)
    return lambda inputs: _softmax(inputs[0], axis)


def _build_flatten(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    def flatten(inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0]
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # explicit: works for 0 images

    return flatten


def _build_add(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    def add(inputs: list[np.ndarray]) -> np.ndarray:
        out = inputs[0] + inputs[1]
        for other in inputs[2:]:
            out += other
        return out

    return add


def _build_concatenate(
    layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None
) -> Op:
    axis = int(config.get("axis", -1))
    return lambda inputs: np.concatenate(inputs, axis=axis)


# === maskmtl>NonLocalBlock ===


def _build_non_local(layer: dict, config: dict, weights: WeightsGetter, fold: Affine | None) -> Op:
    """``maskmtl_cli.models.non_local_block.NonLocalBlock``: z = BN(W_z softmax(theta phi^T) g) + x.

    Its sublayers' variables sit under the attribute names theta, phi, g, w_z and batch_norm.
    """
    theta, phi, g, w_z = (weights(part) for part in ("theta", "phi", "g", "w_z"))
    if not len(theta) == len(phi) == len(g) == len(w_z) == 2:
        _unsupported(layer, "a set of theta/phi/g/w_z variables other than kernel + bias")
    inner = theta[0].shape[-1]
    linear = _ACTIVATIONS["linear"]
    # The block's BN has default options (epsilon 1e-3, center, scale); fold it into W_z.
    norm = None
    if config.get("use_batch_norm", True):
        norm = batch_norm_affine(layer, weights, "batch_norm")
    theta_conv, phi_conv, g_conv = (
        _conv_op(kernel, bias, (1, 1), "valid", linear) for kernel, bias in (theta, phi, g)
    )
    w_z_conv = _conv_op(w_z[0], w_z[1], (1, 1), "valid", linear, fold=norm)
    subsample = _pool_op((2, 2), (2, 2), "valid", use_max=True) if config.get("subsample") else None

    def non_local(inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0]
        n, h, w, _ = x.shape
        context = subsample([x]) if subsample else x
        positions = context.shape[1] * context.shape[2]
        queries = theta_conv([x]).reshape(n, h * w, inner)  # theta(x_i)
        keys = phi_conv([context]).reshape(n, positions, inner)  # phi(x_j)
        values = g_conv([context]).reshape(n, positions, inner)  # g(x_j)
        attention = _softmax(queries @ keys.transpose(0, 2, 1))  # eq. (3): softmax over j
        update = w_z_conv([(attention @ values).reshape(n, h, w, inner)])  # W_z y_i, eq. (6)
        update += x
        return update

    return non_local


_BUILDERS: dict[str, Builder] = {
    "Conv2D": _build_conv2d,
    "Dense": _build_dense,
    "BatchNormalization": _build_batch_norm,
    "MaxPooling2D": _build_pooling,
    "AveragePooling2D": _build_pooling,
    "GlobalAveragePooling2D": _build_global_average,
    "Flatten": _build_flatten,
    "Rescaling": _build_rescaling,
    "LeakyReLU": _build_leaky_relu,
    "ReLU": _build_relu,
    "Activation": _build_activation,
    "Softmax": _build_softmax,
    "Add": _build_add,
    "Concatenate": _build_concatenate,
    "maskmtl>NonLocalBlock": _build_non_local,
}
#: Layer classes the runtime runs (identity layers included); custom ones by registered name.
SUPPORTED_LAYERS = tuple(sorted(set(_BUILDERS) | IDENTITY_LAYERS))
