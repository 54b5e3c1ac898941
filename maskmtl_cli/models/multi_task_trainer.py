"""Training wrapper: one Keras model that owns the multi-task loss, its weights and metrics.

The network itself (``architectures.build_network``) stays a plain functional model, which is
what ``best.keras`` holds for inference. ``MultiTaskTrainer`` wraps it for ``fit``: it applies
the training-only augmentation, adds the per-task losses (``losses.LossSpec``), fixed or
uncertainty weights, the soft-sharing penalty, and per-task metrics (``age_mae`` in years,
``gender_loss``, ``gender_acc``, ``race_loss``, ``race_acc``; the two losses are the plain
cross-entropies whatever the training loss, so runs stay comparable; ``<task>_loss`` and
``<task>_acc`` for other classification tasks, ``<task>_mae`` for other regression tasks, each
over the samples that have the label). Saved as ``last.keras`` together with the optimizer
state, it is what ``maskmtl train --resume`` reloads. It overrides only ``call``,
``compute_loss`` and ``compute_metrics``, so every Keras backend's own ``train_step``
(TensorFlow, JAX, PyTorch) drives it unchanged.

With the segmentation head, each training image carries its ground-truth mask as one extra,
last channel (0..255); ``call`` splits it off, moves it with the image through the flip and
shift of the augmentation, and returns it as the ``segmentation_target`` output, which the
Dice + BCE loss and the ``segmentation_iou`` metric compare with ``segmentation``. The target
``segmentation`` (N,) says which images have a mask at all (1) or not (0).
"""

from __future__ import annotations

import keras
from keras import ops

from maskmtl_cli.models.architectures import soft_sharing_groups
from maskmtl_cli.models.losses import (
    LossSpec,
    UncertaintyWeighting,
    as_specs,
    masked_mean,
    monitored_losses,
    soft_sharing_penalty,
    task_losses,
    weighted_sum,
)
from maskmtl_cli.models.segmentation import SEGMENTATION_TARGET, iou, segmentation_loss
from maskmtl_cli.tasks import CLASSIFICATION, SEGMENTATION, is_sigmoid


def build_augmentation(seed: int, rotation: float = 0.0,
                       scale: float = 0.0) -> keras.Sequential:
    """Light, training-only augmentation: horizontal flip, +-8% shift, +-15% brightness, and
    with ``rotation`` (degrees) and ``scale`` (a fraction) a random rotation and zoom: the
    alignment jitter of faces found by a detector."""
    geometric = [
        keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip"),
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed + 1,
                                       name="augment_shift"),
    ]
    if rotation > 0:
        geometric.append(keras.layers.RandomRotation(rotation / 360.0, fill_mode="reflect",
                                                     seed=seed + 3, name="augment_rotation"))
    if scale > 0:
        geometric.append(keras.layers.RandomZoom((-scale, scale), fill_mode="reflect",
                                                 seed=seed + 4, name="augment_zoom"))
    return keras.Sequential(
        [*geometric,
         keras.layers.RandomBrightness(0.15, value_range=(0.0, 255.0), seed=seed + 2,
                                       name="augment_brightness")],
        name="augmentation",
    )


def _replicas_in_sync() -> int:
    """Replicas a TensorFlow step runs on at once (``tf.distribute``, ``train --devices``);
    1 on other backends (JAX's DataParallel computes the loss over the whole batch)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="maskmtl")
class MultiTaskTrainer(keras.Model):
    """Wrap a MaskMTL network with its multi-task loss for ``fit``.

    Args:
        network: The functional network (input ``image``, outputs keyed by task).
        tasks: Tasks to train, in canonical order; each must be a network output. Names of
            UTKFace's tasks, or ``TaskSpec`` dicts (``TaskSpec.to_dict``) for any task.
        loss_weights: Fixed weight per task, then segmentation's (ignored with
            ``uncertainty_weighting``).
        uncertainty_weighting: Learn the task weights (Kendall et al., CVPR 2018).
        soft_l2: Strength of the L2 penalty between the per-task encoders (``soft`` arch).
        age_loss: "l1", "log-l1" or "ldl" (must match the network's age head).
        age_sigma: Width in years of the "ldl" target distribution.
        race_log_prior: Log training prior of the ethnicity classes for logit adjustment, or
            None for the plain cross-entropy.
        age_bin_weights: Training weight of the age loss per whole year of age, or None.
        augment: Random flip, shift and brightness on training batches.
        seed: Seed of the augmentation.
        align_rotation: Largest random rotation in degrees of the augmentation (0: none).
        align_scale: Largest random zoom of the augmentation, a fraction (0: none).
        regression_scales: Standard deviation of the training labels of each regression task
            other than age (its L1 is divided by it).
        segmentation: Train the network's ``segmentation`` output too.
        **kwargs: Standard model arguments (``name``).

    Call arguments:
        inputs: Images, any numeric dtype, 0..255, shape ``(N, size, size, C)``; with
            ``segmentation``, ``(N, size, size, C + 1)`` with the mask as the last channel.
        training: Training mode for dropout, batch norm and augmentation.

    Targets passed to ``fit`` are a dict with ``age`` (N,) years, ``gender`` (N,) 0/1,
    ``race`` (N,) class ids, other classification tasks' class ids and regression tasks'
    values, for the tasks trained (NaN or -1 where unknown), and ``segmentation`` (N,) 1/0.
    """

    def __init__(
        self,
        network: keras.Model,
        tasks,
        loss_weights=None,
        uncertainty_weighting: bool = False,
        soft_l2: float = 0.0,
        age_loss: str = "l1",
        age_sigma: float = 2.5,
        race_log_prior=None,
        age_bin_weights=None,
        augment: bool = False,
        seed: int = 0,
        align_rotation: float = 0.0,
        align_scale: float = 0.0,
        regression_scales=None,
        segmentation: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.network = network
        self.task_specs = as_specs(tasks)
        self.regression_scales = {str(k): float(v) for k, v in (regression_scales or {}).items()}
        self.segmentation = bool(segmentation)
        self.age_loss = age_loss
        self.age_sigma = float(age_sigma)
        self.race_log_prior = (None if race_log_prior is None
                               else [float(value) for value in race_log_prior])
        self.age_bin_weights = (None if age_bin_weights is None
                                else [float(value) for value in age_bin_weights])
        self.loss_spec = LossSpec(
            age_loss, self.age_sigma,
            None if self.race_log_prior is None else tuple(self.race_log_prior),
            None if self.age_bin_weights is None else tuple(self.age_bin_weights),
            tuple(sorted(self.regression_scales.items())))
        self.augment = bool(augment)
        self.seed = int(seed)
        self.align_rotation = float(align_rotation)
        self.align_scale = float(align_scale)
        self.augmentation = (build_augmentation(self.seed, self.align_rotation, self.align_scale)
                             if self.augment else None)
        self.tasks = [spec.name for spec in self.task_specs]
        losses = len(self.tasks) + self.segmentation
        self.loss_weights = [float(w) for w in (loss_weights or [1.0] * losses)]
        self.uncertainty_weighting = bool(uncertainty_weighting)
        self.soft_l2 = float(soft_l2)
        self.uncertainty = (
            UncertaintyWeighting(losses, name="uncertainty") if self.uncertainty_weighting
            else None
        )
        self.task_trackers = [keras.metrics.Mean(name=_tracker_name(spec))
                              for spec in self.task_specs]
        self.gender_accuracy = (
            keras.metrics.BinaryAccuracy(name="gender_acc") if "gender" in self.tasks else None
        )
        self.race_accuracy = (
            keras.metrics.SparseCategoricalAccuracy(name="race_acc")
            if "race" in self.tasks
            else None
        )
        self.other_accuracies = [  # gender's and race's keep their own attributes (resume)
            keras.metrics.SparseCategoricalAccuracy(name=f"{spec.name}_acc")
            for spec in self.task_specs
            if spec.kind == CLASSIFICATION and spec.name not in ("gender", "race")
        ]
        self.segmentation_trackers = [keras.metrics.Mean(name=f"segmentation_{metric}")
                                      for metric in ("loss", "iou") if self.segmentation]

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, "float32")
        if not self.segmentation:
            if training and self.augmentation is not None:
                inputs = self.augmentation(inputs, training=True)
            return self.network(inputs, training=training)
        images, target = inputs[..., :-1], inputs[..., -1:]
        if training and self.augmentation is not None:
            *geometric, brightness = self.augmentation.layers
            both = ops.concatenate([images, target], axis=-1)
            for layer in geometric:
                both = layer(both, training=True)
            images, target = both[..., :-1], both[..., -1:]
            images = brightness(images, training=True)
        outputs = dict(self.network(images, training=training))
        outputs[SEGMENTATION_TARGET] = ops.cast(target >= 127.5, "float32")
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = task_losses(self.task_specs, y, y_pred, self.loss_spec, training=bool(training))
        if self.segmentation:
            has_mask = ops.cast(ops.reshape(y[SEGMENTATION], (-1,)), "float32")
            losses.append(masked_mean(
                segmentation_loss(y_pred[SEGMENTATION_TARGET], y_pred[SEGMENTATION]), has_mask))
        if self.uncertainty is not None:
            total = self.uncertainty(losses)
        else:
            total = weighted_sum(losses, self.loss_weights)
        if self.soft_l2 > 0:
            groups = soft_sharing_groups(self.network,
                                         self.tasks + [SEGMENTATION] * self.segmentation)
            total = total + self.soft_l2 * soft_sharing_penalty(groups)
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), "float32")
        replicas = _replicas_in_sync()
        if replicas > 1:
            # tf.distribute sums the replicas' gradients: each returns its share of the mean,
            # as Keras' own losses do (Keras reports the loss multiplied back).
            total = total / replicas
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Each batch's mean counts by the samples that have the label, as Keras weighs the
        # total loss: unweighted, the short last batch counted as much as a full one (the val
        # split is sorted by file name, which starts with the age, so val age MAE read 0.4
        # years too high).
        pairs = monitored_losses(self.task_specs, y, y_pred)
        for tracker, (loss, known) in zip(self.task_trackers, pairs):
            tracker.update_state(masked_mean(loss, known), sample_weight=ops.sum(known))
        accuracies = {metric.name: metric for metric in self.other_accuracies}
        if self.gender_accuracy is not None:
            accuracies["gender_acc"] = self.gender_accuracy
        if self.race_accuracy is not None:
            accuracies["race_acc"] = self.race_accuracy
        for spec, (_, known) in zip(self.task_specs, pairs):
            metric = accuracies.get(f"{spec.name}_acc")
            if metric is None:
                continue
            labels = ops.where(known > 0, ops.cast(ops.reshape(y[spec.name], (-1,)), "float32"),
                               0.0)
            labels = ops.reshape(labels if is_sigmoid(spec) else ops.cast(labels, "int32"),
                                 (-1, 1))
            metric.update_state(labels, y_pred[spec.name], sample_weight=known)
        if self.segmentation:
            has_mask = ops.cast(ops.reshape(y[SEGMENTATION], (-1,)), "float32")
            target, predicted = y_pred[SEGMENTATION_TARGET], y_pred[SEGMENTATION]
            for tracker, values in zip(self.segmentation_trackers,
                                       (segmentation_loss(target, predicted),
                                        iou(target, predicted))):
                tracker.update_state(masked_mean(values, has_mask),
                                     sample_weight=ops.sum(has_mask))
        return self.get_metrics_result()

    def task_weights(self) -> dict[str, float]:
        """The effective weight of each task loss (learned ones with uncertainty weighting)."""
        names = self.tasks + [SEGMENTATION] * self.segmentation
        if self.uncertainty is None:
            return dict(zip(names, self.loss_weights))
        return {task: float(w) for task, w in zip(names, self.uncertainty.task_weights())}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "tasks": [spec.to_dict() for spec in self.task_specs],
                "loss_weights": self.loss_weights,
                "uncertainty_weighting": self.uncertainty_weighting,
                "soft_l2": self.soft_l2,
                "age_loss": self.age_loss,
                "age_sigma": self.age_sigma,
                "race_log_prior": self.race_log_prior,
                "age_bin_weights": self.age_bin_weights,
                "augment": self.augment,
                "seed": self.seed,
                "align_rotation": self.align_rotation,
                "align_scale": self.align_scale,
                "regression_scales": self.regression_scales,
                "segmentation": self.segmentation,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(config.pop("network"))
        return cls(network=network, **config)


def _tracker_name(spec) -> str:
    """``age_mae``, ``<task>_mae`` for regression, ``<task>_loss`` for classification."""
    return f"{spec.name}_mae" if spec.kind != CLASSIFICATION else f"{spec.name}_loss"
