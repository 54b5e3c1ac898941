"""Per-task losses, their weighting, and the soft-sharing penalty.

- Age: L1 (mean absolute error) in years, as in the MaskMTL paper. The released notebook used
  MSE on raw years, which made age outweigh the two classification losses about 100:1.
- Gender: binary cross-entropy on P(female).
- Ethnicity ("race"): categorical cross-entropy over the 5 UTKFace classes (integer labels).

Task losses are combined either with fixed weights or with learned homoscedastic-uncertainty
weights (Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
Geometry and Semantics", CVPR 2018). Soft parameter sharing ties the per-task encoders with an
L2 penalty between corresponding weights (Duong et al., ACL 2015; Ruder, arXiv:1706.05098).
"""

from __future__ import annotations

import itertools

import keras
from keras import ops


def age_loss(y_true, y_pred):
    """Per-sample absolute error in years; ``y_true`` (N,), ``y_pred`` (N, 1)."""
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    return ops.abs(ops.cast(y_true, "float32") - y_pred)


def gender_loss(y_true, y_pred):
    """Per-sample binary cross-entropy; ``y_true`` (N,) 0 male / 1 female, ``y_pred`` (N, 1)."""
    y_true = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
    return keras.losses.binary_crossentropy(y_true, ops.cast(y_pred, "float32"))


def race_loss(y_true, y_pred):
    """Per-sample categorical cross-entropy; ``y_true`` (N,) class ids, ``y_pred`` (N, 5)."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return keras.losses.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"))


TASK_LOSSES = {"age": age_loss, "gender": gender_loss, "race": race_loss}


def task_losses(tasks, y_true: dict, y_pred: dict) -> list:
    """Mean loss of each task, in the order of ``tasks`` (scalars, float32)."""
    return [ops.mean(TASK_LOSSES[task](y_true[task], y_pred[task])) for task in tasks]


def weighted_sum(losses: list, weights) -> "keras.KerasTensor":
    """Fixed-weight total: ``sum_t w_t L_t``."""
    return sum(float(weight) * loss for weight, loss in zip(weights, losses))


@keras.saving.register_keras_serializable(package="maskmtl")
class UncertaintyWeighting(keras.layers.Layer):
    """Learned task weighting by homoscedastic uncertainty (Kendall et al., CVPR 2018).

    Holds one log-variance ``s_t = log sigma_t^2`` per task and combines task losses as

        L = sum_t exp(-s_t) * L_t + s_t

    which is eq. (7) of the paper with ``s_t`` in place of ``log sigma_t`` for numerical
    stability (the form most implementations use; the paper's factors 1/2 only rescale s_t).
    A task whose loss is large or noisy learns a larger ``s_t`` and so a smaller weight.

    Args:
        num_tasks: How many task losses are combined.
        **kwargs: Standard layer arguments.

    Call arguments:
        losses: A list of ``num_tasks`` scalar losses.

    Returns:
        The combined scalar loss.
    """

    def __init__(self, num_tasks: int, **kwargs):
        kwargs.setdefault("dtype", "float32")  # loss arithmetic stays float32 under mixed precision
        super().__init__(**kwargs)
        self.num_tasks = num_tasks
        self.log_variances = self.add_weight(
            shape=(num_tasks,), initializer="zeros", name="log_variances", dtype="float32"
        )

    def call(self, losses):
        stacked = ops.stack([ops.cast(loss, "float32") for loss in losses])
        return ops.sum(ops.exp(-self.log_variances) * stacked + self.log_variances)

    def task_weights(self):
        """Current effective weights ``exp(-s_t)``, as a numpy array."""
        return keras.ops.convert_to_numpy(ops.exp(-self.log_variances))

    def compute_output_shape(self, input_shape):
        return ()

    def get_config(self):
        config = super().get_config()
        config.update({"num_tasks": self.num_tasks})
        return config


def soft_sharing_penalty(groups: list[list]) -> "keras.KerasTensor":
    """L2 distance between corresponding weights of the per-task encoders.

    Args:
        groups: Each group lists the same weight (same layer, same role) in two or more
            task-specific encoders.

    Returns:
        ``sum over groups, over task pairs (a, b) of ||W_a - W_b||^2`` (float32 scalar).
    """
    total = ops.zeros((), dtype="float32")
    for group in groups:
        for first, second in itertools.combinations(group, 2):
            difference = ops.cast(first, "float32") - ops.cast(second, "float32")
            total = total + ops.sum(ops.square(difference))
    return total
