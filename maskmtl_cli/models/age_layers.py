"""Output layers of the age head: the three ways it can model age.

- ``l1``: a standardised age ``z``, turned into years by ``Rescaling(std, mean)`` (a built-in
  layer; the original MaskMTL head).
- ``log-l1``: a standardised log-age ``z``; ``LogAgeDecoder`` returns ``expm1(mean + std * z)``
  years, so errors are relative (a 2-year error weighs as much at age 4 as 20 years at 60).
- ``ldl``: label-distribution learning (Geng et al., "Facial Age Estimation by Learning from
  Label Distributions", TPAMI 2013; Gao et al., "Deep Label Distribution Learning with Label
  Ambiguity", TIP 2017): a softmax over the whole ages ``0..AGE_BINS-1`` and ``ExpectedAge``,
  the mean of that distribution in years. The loss (``losses.age_ldl_loss``) compares the
  softmax with a Gaussian around the true age.
"""

from __future__ import annotations

import keras
from keras import ops

#: Ages of the label distribution: whole years 0..116 (UTKFace's oldest face is 116).
AGE_BINS = 117
#: Auxiliary output of ``ldl`` networks: the age distribution the loss needs. The inference
#: graph leaves it out (``models.export.inference_network``).
AGE_DISTRIBUTION = "age_distribution"


@keras.saving.register_keras_serializable(package="maskmtl")
class ExpectedAge(keras.layers.Layer):
    """The expected age of a distribution over whole years ``0 .. bins-1``.

    Args:
        **kwargs: Standard layer arguments (``name``, ``dtype``).

    Call arguments:
        inputs: Probabilities of shape ``(batch, bins)`` (rows sum to 1).

    Returns:
        ``(batch, 1)`` ages in years: ``sum_k k * p_k``.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        ages = ops.arange(ops.shape(inputs)[-1], dtype="float32")
        return ops.sum(inputs * ages, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)


@keras.saving.register_keras_serializable(package="maskmtl")
class LogAgeDecoder(keras.layers.Layer):
    """Years from a standardised log-age: ``expm1(mean + std * z)``, at least 0.

    Args:
        mean: Mean of ``log1p(age)`` over the training labels.
        std: Standard deviation of ``log1p(age)`` over the training labels.
        **kwargs: Standard layer arguments (``name``, ``dtype``).

    Call arguments:
        inputs: ``(batch, 1)`` standardised log-ages.

    Returns:
        ``(batch, 1)`` ages in years.
    """

    def __init__(self, mean: float, std: float, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean = float(mean)
        self.std = float(std)

    def call(self, inputs):
        log_age = self.mean + self.std * ops.cast(inputs, "float32")
        # Clipped so that a wild early-training output cannot overflow exp (e^6 - 1 = 402 years).
        # exp(x) - 1 rather than expm1, which tf2onnx cannot export; at ages of a year or more
        # the two agree to float32 precision.
        return ops.maximum(ops.exp(ops.clip(log_age, -1.0, 6.0)) - 1.0, 0.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std})
        return config
