"""Grad-CAM heatmaps per task: which parts of the face drove each prediction.

Grad-CAM (Selvaraju et al., ICCV 2017) weights each channel of a convolutional feature map ``A``
by the spatial mean of the gradient of the task's score ``y`` with respect to it, sums and keeps
the positive part: ``cam = relu(sum_k mean_ij(dy/dA_ij^k) * A^k)``. The MaskMTL paper
(Mukherjee et al., PReMI 2021, Figure 2) shows such maps per task. Scores: ``age`` the predicted
age in years; ``gender`` the probability of the predicted gender; ``race`` the probability of the
predicted class.

The feature map of a task is the 4-D activation nearest to that task's output in the model graph,
looking through pooling layers (the last convolutional block's activation before it is pooled, at
twice the pooled resolution), so hard-sharing models get the shared trunk's map and models with
task branches get each branch's own map. Everything is ``keras``/``keras.ops``
except the gradient itself, which needs the backend's autodiff: TensorFlow (the default backend)
is supported; JAX and PyTorch backends raise ModelError (they would need ``jax.grad`` and
``torch.autograd`` respectively).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskmtl_cli.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import keras


def feature_tensor(model: "keras.Model", task: str):
    """The 4-D (N, H, W, C) activation closest to ``task``'s output, not counting pooling outputs.

    Args:
        model: A functional maskmtl model.
        task: One of its output names.

    Returns:
        A KerasTensor of the model's graph.

    Raises:
        ModelError: The model has no such output or no spatial feature map before it.
    """
    outputs = dict(zip(model.output_names, model.outputs))
    if task not in outputs:
        raise ModelError(f"The model has no '{task}' output (it has {', '.join(outputs)}).")
    seen, frontier = set(), [outputs[task]]
    while frontier:  # Breadth-first from the output towards the input.
        next_frontier = []
        for tensor in frontier:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            history = getattr(tensor, "_keras_history", None)
            shape = tuple(tensor.shape)
            pooled = history is not None and "Pooling2D" in type(history.operation).__name__
            if len(shape) == 4 and (shape[1] or 0) > 1 and (shape[2] or 0) > 1 \
                    and tensor is not model.inputs[0] and not pooled:
                return tensor
            if history is None:
                continue
            node = history.operation._inbound_nodes[history.node_index]
            next_frontier.extend(node.input_tensors)
        frontier = next_frontier
    raise ModelError(
        f"No convolutional feature map feeds the model's '{task}' output, so Grad-CAM cannot "
        "be computed for it. Run without --cam."
    )


def _task_scores(task: str, output):
    """Per-image scalar score of the predicted label (see the module docstring)."""
    from keras import ops

    if task == "age":
        return output[:, 0]
    if task == "gender":
        probability = output[:, 0]
        return ops.where(probability >= 0.5, probability, 1.0 - probability)
    return ops.max(output, axis=-1)


def _normalise(cam):
    """relu, then scale each map to 0..1."""
    from keras import ops

    cam = ops.relu(cam)
    peak = ops.max(cam, axis=(1, 2), keepdims=True)
    return cam / (peak + 1e-8)


class GradCam:
    """Grad-CAM for every task of one model; build once, call on batches of model inputs."""

    def __init__(self, model: "keras.Model", tasks: list[str]) -> None:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise ModelError(
                f"Grad-CAM (--cam) needs the TensorFlow backend; KERAS_BACKEND is "
                f"'{keras.backend.backend()}'. Unset KERAS_BACKEND or set it to tensorflow."
            )
        self.tasks = list(tasks)
        features = [feature_tensor(model, task) for task in self.tasks]
        outputs = dict(zip(model.output_names, model.outputs))
        self._model = keras.Model(model.inputs,
                                  features + [outputs[task] for task in self.tasks])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Heatmaps for a batch of model inputs.

        Args:
            images: uint8 or float (N, size, size, C) in 0..255, as the model takes them.

        Returns:
            ``{task: float32 (N, h, w)}`` in 0..1 at the feature map's resolution (resize for
            display with ``render.cam_overlay``).
        """
        import tensorflow as tf
        from keras import ops

        inputs = tf.convert_to_tensor(np.asarray(images, dtype="float32"))
        count = len(self.tasks)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(inputs)
            values = self._model(inputs, training=False)
            features, outputs = values[:count], values[count:]
            scores = [ops.sum(_task_scores(task, output))
                      for task, output in zip(self.tasks, outputs)]
        maps = {}
        for task, feature, score in zip(self.tasks, features, scores):
            gradient = tape.gradient(score, feature)
            if gradient is None:
                raise ModelError(f"The '{task}' output does not depend on its feature map; "
                                 "Grad-CAM cannot be computed. Run without --cam.")
            weights = ops.mean(gradient, axis=(1, 2), keepdims=True)
            cam = _normalise(ops.sum(weights * feature, axis=-1))
            maps[task] = np.asarray(ops.convert_to_numpy(cam), dtype="float32")
        del tape
        return maps
