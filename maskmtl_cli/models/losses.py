"""Per-task losses, their weighting, and the soft-sharing penalty.

- Age, one of three (``AGE_LOSSES``; the head's output layer matches, see ``age_layers``):
  ``l1``, the mean absolute error in years, as in the MaskMTL paper (the released notebook used
  MSE on raw years, which made age outweigh the two classification losses about 100:1);
  ``log-l1``, the absolute error of ``log1p(age)``; ``ldl``, label-distribution learning: the
  KL divergence from a discretised Gaussian around the true age (Gao et al., TIP 2017) to the
  predicted distribution, plus a small L1 on its expected age.
- Gender: binary cross-entropy on P(female).
- Ethnicity ("race"): categorical cross-entropy over the 5 UTKFace classes (integer labels),
  optionally logit-adjusted by the training prior (Menon et al., "Long-tail learning via logit
  adjustment", ICLR 2021): the loss sees ``softmax(logits + tau log prior)``, so the network's
  own softmax learns class-balanced posteriors and rare classes are predicted more often.
- Any other classification task: categorical cross-entropy over its classes; any other
  regression task: the absolute error divided by the standard deviation of its training labels
  (an L1 on the standardised label, so a weight of 1 suits any unit).

Missing labels (NaN for regression, a negative class id for classification) are masked: each
task's loss is the mean over the samples that have its label (``masked_mean``), so a face
labelled only for gender still trains the gender head and adds nothing to the others.

Task losses are combined either with fixed weights or with learned homoscedastic-uncertainty
weights (Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
Geometry and Semantics", CVPR 2018). Soft parameter sharing ties the per-task encoders with an
L2 penalty between corresponding weights (Duong et al., ACL 2015; Ruder, arXiv:1706.05098).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import keras
from keras import ops

from maskmtl_cli.models.age_layers import AGE_BINS, AGE_DISTRIBUTION
from maskmtl_cli.tasks import CLASSIFICATION, TaskSpec, default_spec, is_sigmoid, to_spec

#: Weight of the L1 term (years) beside the KL term of the label-distribution age loss.
LDL_L1_WEIGHT = 0.05
_EPSILON = 1e-7


def age_loss(y_true, y_pred):
    """Per-sample absolute error in years; ``y_true`` (N,), ``y_pred`` (N, 1)."""
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    return ops.abs(ops.cast(y_true, "float32") - y_pred)


def age_log_loss(y_true, y_pred):
    """Per-sample absolute error of ``log1p(age)``; ``y_true`` (N,) years, ``y_pred`` (N, 1)."""
    y_pred = ops.maximum(ops.cast(ops.reshape(y_pred, (-1,)), "float32"), 0.0)
    return ops.abs(ops.log1p(ops.cast(y_true, "float32")) - ops.log1p(y_pred))


def age_target_distribution(y_true, sigma: float, bins: int = AGE_BINS):
    """Discretised Gaussians ``N(age, sigma^2)`` over whole years ``0..bins-1``, rows sum to 1."""
    ages = ops.arange(bins, dtype="float32")
    centre = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
    density = ops.exp(-0.5 * ops.square((ages[None, :] - centre) / sigma))
    return density / ops.sum(density, axis=-1, keepdims=True)


def age_ldl_loss(y_true, distribution, expected_age, sigma: float):
    """Per-sample KL(target || predicted) plus ``LDL_L1_WEIGHT`` x the L1 of the expected age."""
    target = age_target_distribution(y_true, sigma, ops.shape(distribution)[-1])
    predicted = ops.clip(ops.cast(distribution, "float32"), _EPSILON, 1.0)
    kl = ops.sum(target * (ops.log(ops.maximum(target, _EPSILON)) - ops.log(predicted)), axis=-1)
    return kl + LDL_L1_WEIGHT * age_loss(y_true, expected_age)


def adjusted_race_loss(y_true, y_pred, log_prior, tau: float = 1.0):
    """Cross-entropy of ``softmax(log p + tau log prior)``: logit adjustment for softmax outputs.

    ``y_pred`` holds the network's probabilities ``p``; their logits are ``log p`` up to a
    constant per row, which the softmax removes.
    """
    logits = ops.log(ops.clip(ops.cast(y_pred, "float32"), _EPSILON, 1.0))
    logits = logits + tau * ops.reshape(ops.cast(log_prior, "float32"), (1, -1))
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)


def gender_loss(y_true, y_pred):
    """Per-sample binary cross-entropy; ``y_true`` (N,) 0 male / 1 female, ``y_pred`` (N, 1)."""
    y_true = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
    return keras.losses.binary_crossentropy(y_true, ops.cast(y_pred, "float32"))


def race_loss(y_true, y_pred):
    """Per-sample categorical cross-entropy; ``y_true`` (N,) class ids, ``y_pred`` (N, K)."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return keras.losses.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"))


TASK_LOSSES = {"age": age_loss, "gender": gender_loss, "race": race_loss}


def as_specs(tasks) -> list[TaskSpec]:
    """Task specs from specs, their dicts or UTKFace task names."""
    return [to_spec(task, default_spec) for task in tasks]


def known_labels(y_true, spec: TaskSpec):
    """1.0 where a sample has a label for ``spec`` (not NaN / not negative), else 0.0; (N,)."""
    values = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    if spec.kind == CLASSIFICATION:
        return ops.cast(values >= 0, "float32")
    return ops.cast(ops.logical_not(ops.isnan(values)), "float32")


def filled(y_true, known):
    """Labels with the unknown ones replaced by 0, so that no NaN reaches a loss."""
    values = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    return ops.where(known > 0, values, ops.zeros_like(values))


def masked_mean(values, known):
    """Mean of per-sample ``values`` over the known samples (0 when none is known)."""
    return ops.sum(values * known) / ops.maximum(ops.sum(known), 1.0)


def monitored_loss(spec: TaskSpec, y_true, y_pred: dict, scale: float = 1.0):
    """Per-sample figure ``train`` reports: an absolute error in the label's units for
    regression (age MAE in years), the plain cross-entropy for classification.

    ``scale`` divides the regression error (the training loss of other regression tasks)."""
    if spec.kind != CLASSIFICATION:
        return age_loss(y_true, y_pred[spec.name]) / scale
    if is_sigmoid(spec):
        return gender_loss(y_true, y_pred[spec.name])
    return race_loss(y_true, y_pred[spec.name])


@dataclass(frozen=True)
class LossSpec:
    """Which variant of each task loss a run trains with.

    Attributes:
        age_loss: "l1", "log-l1" or "ldl".
        age_sigma: Width in years of the "ldl" target distribution.
        race_log_prior: Log training prior of the ethnicity classes for logit adjustment, or
            None for the plain cross-entropy.
        age_bin_weights: Weight of the age loss per whole year of true age (training only),
            or None for equal weights.
        regression_scales: (task, standard deviation of its training labels) of regression
            tasks other than age: their L1 is divided by it.
    """

    age_loss: str = "l1"
    age_sigma: float = 2.5
    race_log_prior: tuple[float, ...] | None = None
    age_bin_weights: tuple[float, ...] | None = None
    regression_scales: tuple[tuple[str, float], ...] = ()


def task_losses(tasks, y_true: dict, y_pred: dict, spec: LossSpec = LossSpec(),
                training: bool = True) -> list:
    """Mean loss of each task over the samples that have its label, in the order of ``tasks``.

    ``tasks`` holds ``TaskSpec``s or UTKFace task names. ``spec.age_bin_weights`` weigh the age
    loss only when ``training``: validation losses stay plain means, so runs with and without
    reweighting select their best epoch alike.

    Returns:
        Scalars, float32.
    """
    losses = []
    scales = dict(spec.regression_scales)
    for task in as_specs(tasks):
        known = known_labels(y_true[task.name], task)
        target = filled(y_true[task.name], known)
        if task.name == "age" and spec.age_loss == "ldl":
            loss = age_ldl_loss(target, y_pred[AGE_DISTRIBUTION], y_pred["age"], spec.age_sigma)
        elif task.name == "age" and spec.age_loss == "log-l1":
            loss = age_log_loss(target, y_pred["age"])
        elif task.name == "race" and spec.race_log_prior is not None:
            loss = adjusted_race_loss(target, y_pred["race"], spec.race_log_prior)
        else:
            loss = monitored_loss(task, target, y_pred, scales.get(task.name, 1.0))
        if task.name == "age" and training and spec.age_bin_weights is not None:
            loss = loss * age_weights(target, spec.age_bin_weights)
        losses.append(masked_mean(loss, known))
    return losses


def age_weights(y_true, bin_weights):
    """Each sample's weight: the weight of its true age rounded to a whole year."""
    table = ops.convert_to_tensor(bin_weights, dtype="float32")
    index = ops.clip(ops.round(ops.reshape(ops.cast(y_true, "float32"), (-1,))), 0,
                     len(bin_weights) - 1)
    return ops.take(table, ops.cast(index, "int32"))


def monitored_losses(tasks, y_true: dict, y_pred: dict) -> list:
    """The per-task numbers ``train`` reports, whatever the training losses (see
    ``monitored_loss``), each with the mask of the samples that have the label.

    Returns:
        (per-sample values, known) pairs, float32 (N,), unknown labels filled with 0.
    """
    pairs = []
    for task in as_specs(tasks):
        known = known_labels(y_true[task.name], task)
        pairs.append((monitored_loss(task, filled(y_true[task.name], known), y_pred), known))
    return pairs


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
