"""Non-local block, embedded-Gaussian version.

Reference: X. Wang, R. Girshick, A. Gupta, K. He, "Non-local Neural Networks", CVPR 2018
(arXiv:1711.07971), equations (1), (3) and (6). For every position i of a feature map x,

    y_i = sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j)        (embedded Gaussian, eq. 3)
    z_i = W_z y_i + x_i                                       (residual connection, eq. 6)

where theta, phi and g are 1x1 convolutions to half the input channels and W_z is a 1x1
convolution back to the input channels, followed by batch normalisation whose scale starts at
zero so the block begins as the identity (section 4.1 of the paper).
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="maskmtl")
class NonLocalBlock(keras.layers.Layer):
    """Embedded-Gaussian non-local block with a residual connection (Wang et al., CVPR 2018).

    Every output position attends to every input position, which lets a small CNN relate
    distant face regions (for example the eyes above a mask and the forehead).

    Args:
        inter_channels: Channels of the theta/phi/g embeddings. None means half the input
            channels (at least 1), as in the paper.
        use_batch_norm: Batch-normalise ``W_z y`` with the scale initialised to zero, so the
            block starts as the identity. Without it ``W_z`` itself is initialised to zero.
        subsample: Max-pool phi and g by 2x2 before the attention (the paper's cheaper
            variant); cuts the attention cost by 4.
        bn_momentum: Momentum of the batch normalisation's moving statistics.
        **kwargs: Standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: Feature map of shape ``(batch, height, width, channels)``.
        training: Whether batch normalisation runs in training mode.

    Returns:
        A tensor of the same shape as ``inputs``.

    Example:

    >>> block = NonLocalBlock()
    >>> block(keras.ops.ones((2, 6, 6, 32))).shape
    (2, 6, 6, 32)
    """

    def __init__(
        self,
        inter_channels: int | None = None,
        use_batch_norm: bool = True,
        subsample: bool = False,
        bn_momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inter_channels = inter_channels
        self.use_batch_norm = use_batch_norm
        self.subsample = subsample
        self.bn_momentum = bn_momentum

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"NonLocalBlock needs a known channel count. Received: input_shape={input_shape}"
            )
        inner = self.inter_channels or max(1, channels // 2)
        self._inner = inner
        # theta, phi, g: the three 1x1 embeddings of eq. (3).
        self.theta = layers.Conv2D(inner, 1, name="theta", dtype=self.dtype_policy)
        self.phi = layers.Conv2D(inner, 1, name="phi", dtype=self.dtype_policy)
        self.g = layers.Conv2D(inner, 1, name="g", dtype=self.dtype_policy)
        # W_z of eq. (6); zero-initialised (directly or through the BN scale) => identity start.
        self.w_z = layers.Conv2D(
            channels,
            1,
            name="w_z",
            kernel_initializer="glorot_uniform" if self.use_batch_norm else "zeros",
            dtype=self.dtype_policy,
        )
        for conv in (self.theta, self.phi, self.g):
            conv.build(input_shape)
        self.w_z.build(tuple(input_shape[:-1]) + (inner,))
        if self.use_batch_norm:
            self.batch_norm = layers.BatchNormalization(
                momentum=self.bn_momentum,
                gamma_initializer="zeros",
                name="w_z_bn",
                dtype=self.dtype_policy,
            )
            self.batch_norm.build(input_shape)
        if self.subsample:
            self.pool = layers.MaxPooling2D(2, name="pool", dtype=self.dtype_policy)
        self.built = True

    def call(self, inputs, training=None):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is None or width is None:
            shape = ops.shape(inputs)
            height, width = shape[1], shape[2]
        inner = self._inner
        theta = ops.reshape(self.theta(inputs), (-1, height * width, inner))
        context = self.pool(inputs) if self.subsample else inputs
        phi = ops.reshape(self.phi(context), (-1, _positions(context), inner))
        g = ops.reshape(self.g(context), (-1, _positions(context), inner))
        # f(x_i, x_j) = exp(theta_i . phi_j), normalised over j: a softmax (eq. 3). Computed in
        # float32 so mixed precision cannot overflow the exponent.
        logits = ops.matmul(theta, ops.transpose(phi, (0, 2, 1)))
        attention = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        attended = ops.matmul(ops.cast(attention, g.dtype), g)
        attended = ops.reshape(attended, (-1, height, width, inner))
        update = self.w_z(attended)
        if self.use_batch_norm:
            update = self.batch_norm(update, training=training)
        return inputs + update

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inter_channels": self.inter_channels,
                "use_batch_norm": self.use_batch_norm,
                "subsample": self.subsample,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


def _positions(feature_map):
    """Number of spatial positions (height x width), static when known."""
    height, width = feature_map.shape[1], feature_map.shape[2]
    if height is None or width is None:
        shape = ops.shape(feature_map)
        return shape[1] * shape[2]
    return height * width
