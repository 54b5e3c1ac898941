"""Training wrapper: one Keras model that owns the multi-task loss, its weights and metrics.

The network itself (``architectures.build_network``) stays a plain functional model, which is
what ``best.keras`` holds for inference. ``MultiTaskTrainer`` wraps it for ``fit``: it applies
the training-only augmentation, adds the per-task losses (``losses.LossSpec``), fixed or
uncertainty weights, the soft-sharing penalty, and per-task metrics (``age_mae`` in years,
``gender_loss``, ``gender_acc``, ``race_loss``, ``race_acc``; the two losses are the plain
cross-entropies whatever the training loss, so runs stay comparable). Saved as
``last.keras`` together with the optimizer state, it is what ``maskmtl train --resume`` reloads.
It overrides only ``compute_loss`` and ``compute_metrics``, so every Keras backend's own
``train_step`` (TensorFlow, JAX, PyTorch) drives it unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

from maskmtl_cli.models.architectures import soft_sharing_groups
from maskmtl_cli.models.losses import (
    LossSpec,
    UncertaintyWeighting,
    monitored_losses,
    soft_sharing_penalty,
    task_losses,
    weighted_sum,
)


def build_augmentation(seed: int) -> keras.Sequential:
    """Light, training-only augmentation: horizontal flip, +-8% shift, +-15% brightness."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip"),
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed + 1,
                                           name="augment_shift"),
            keras.layers.RandomBrightness(0.15, value_range=(0.0, 255.0), seed=seed + 2,
                                          name="augment_brightness"),
        ],
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
        tasks: Tasks to train, in canonical order; each must be a network output.
        loss_weights: Fixed weight per task (ignored with ``uncertainty_weighting``).
        uncertainty_weighting: Learn the task weights (Kendall et al., CVPR 2018).
        soft_l2: Strength of the L2 penalty between the per-task encoders (``soft`` arch).
        age_loss: "l1", "log-l1" or "ldl" (must match the network's age head).
        age_sigma: Width in years of the "ldl" target distribution.
        race_log_prior: Log training prior of the ethnicity classes for logit adjustment, or
            None for the plain cross-entropy.
        age_bin_weights: Training weight of the age loss per whole year of age, or None.
        augment: Random flip, shift and brightness on training batches.
        seed: Seed of the augmentation.
        **kwargs: Standard model arguments (``name``).

    Call arguments:
        inputs: Images, any numeric dtype, 0..255, shape ``(N, size, size, C)``.
        training: Training mode for dropout, batch norm and augmentation.

    Targets passed to ``fit`` are a dict with ``age`` (N,) years, ``gender`` (N,) 0/1 and
    ``race`` (N,) class ids, for the tasks trained.
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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.network = network
        self.age_loss = age_loss
        self.age_sigma = float(age_sigma)
        self.race_log_prior = (None if race_log_prior is None
                               else [float(value) for value in race_log_prior])
        self.age_bin_weights = (None if age_bin_weights is None
                                else [float(value) for value in age_bin_weights])
        self.loss_spec = LossSpec(
            age_loss, self.age_sigma,
            None if self.race_log_prior is None else tuple(self.race_log_prior),
            None if self.age_bin_weights is None else tuple(self.age_bin_weights))
        self.augment = bool(augment)
        self.seed = int(seed)
        self.augmentation = build_augmentation(self.seed) if self.augment else None
        self.tasks = list(tasks)
        self.loss_weights = [float(w) for w in (loss_weights or [1.0] * len(self.tasks))]
        self.uncertainty_weighting = bool(uncertainty_weighting)
        self.soft_l2 = float(soft_l2)
        self.uncertainty = (
            UncertaintyWeighting(len(self.tasks), name="uncertainty")
            if self.uncertainty_weighting
            else None
        )
        self.task_trackers = [
            keras.metrics.Mean(name="age_mae" if task == "age" else f"{task}_loss")
            for task in self.tasks
        ]
        self.gender_accuracy = (
            keras.metrics.BinaryAccuracy(name="gender_acc") if "gender" in self.tasks else None
        )
        self.race_accuracy = (
            keras.metrics.SparseCategoricalAccuracy(name="race_acc")
            if "race" in self.tasks
            else None
        )

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, "float32")
        if training and self.augmentation is not None:
            inputs = self.augmentation(inputs, training=True)
        return self.network(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = task_losses(self.tasks, y, y_pred, self.loss_spec, training=bool(training))
        if self.uncertainty is not None:
            total = self.uncertainty(losses)
        else:
            total = weighted_sum(losses, self.loss_weights)
        if self.soft_l2 > 0:
            groups = soft_sharing_groups(self.network, self.tasks)
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
        # Weight each batch's mean by its size, as Keras does for the total loss: unweighted,
        # the short last batch counted as much as a full one (the val split is sorted by file
        # name, which starts with the age, so val age MAE read 0.4 years too high).
        batch = ops.cast(ops.shape(y_pred[self.tasks[0]])[0], "float32")
        for tracker, loss in zip(self.task_trackers, monitored_losses(self.tasks, y, y_pred)):
            tracker.update_state(ops.mean(loss), sample_weight=batch)
        if self.gender_accuracy is not None:
            self.gender_accuracy.update_state(
                ops.reshape(ops.cast(y["gender"], "float32"), (-1, 1)), y_pred["gender"]
            )
        if self.race_accuracy is not None:
            self.race_accuracy.update_state(
                ops.reshape(ops.cast(y["race"], "int32"), (-1, 1)), y_pred["race"]
            )
        return self.get_metrics_result()

    def task_weights(self) -> dict[str, float]:
        """The effective weight of each task loss (learned ones with uncertainty weighting)."""
        if self.uncertainty is None:
            return dict(zip(self.tasks, self.loss_weights))
        return {task: float(w) for task, w in zip(self.tasks, self.uncertainty.task_weights())}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "tasks": self.tasks,
                "loss_weights": self.loss_weights,
                "uncertainty_weighting": self.uncertainty_weighting,
                "soft_l2": self.soft_l2,
                "age_loss": self.age_loss,
                "age_sigma": self.age_sigma,
                "race_log_prior": self.race_log_prior,
                "age_bin_weights": self.age_bin_weights,
                "augment": self.augment,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(config.pop("network"))
        return cls(network=network, **config)
