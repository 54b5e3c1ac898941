"""``RunState``: what ``state.json`` holds, shared by the training loop and ``RunRecorder``.

It stays a JSON document (a ``TypedDict``), so that ``state.json`` is written and read back as
is, and a run saved by an older version (fewer keys) still resumes.
"""

from __future__ import annotations

import math
from typing import TypedDict


class RunState(TypedDict, total=False):
    """The state of a run folder, updated after every epoch.

    Keys:
        epochs_done: Epochs finished so far.
        best_val_loss: Lowest validation loss (``inf`` before the first epoch).
        best_epoch: Epoch of ``best_val_loss`` (0: none yet).
        best_metrics: Validation metrics of that epoch.
        last_metrics: Every metric of the latest epoch.
        timed_images, timed_seconds, timed_cpu_seconds: Images trained on and the wall and
            CPU seconds they took, compilation left out (the images/s figures).
        wall_seconds: Wall time of all ``fit`` calls of the run.
        age_mean, age_std: Age statistics of the training labels (the age head's scale).
        stopped_early: Whether ``--early-stopping`` ended the run.
        onnx_parity: Largest ONNX-Keras difference per output of ``best.onnx``.
        val_collapse: Most common validation prediction and its share, per task.
    """

    epochs_done: int
    best_val_loss: float
    best_epoch: int
    best_metrics: dict[str, float]
    last_metrics: dict[str, float]
    timed_images: int
    timed_seconds: float
    timed_cpu_seconds: float
    wall_seconds: float
    age_mean: float
    age_std: float
    stopped_early: bool
    onnx_parity: dict[str, float]
    val_collapse: dict[str, dict]


def new_state(age_mean: float, age_std: float) -> RunState:
    """The state of a run that has not trained an epoch yet."""
    return RunState(epochs_done=0, best_val_loss=math.inf, best_epoch=0, best_metrics={},
                    timed_images=0, timed_seconds=0.0, timed_cpu_seconds=0.0,
                    wall_seconds=0.0, age_mean=age_mean, age_std=age_std)


def run_status(state: RunState, epochs: int, nan_epoch: int | None) -> str:
    """``nan``, ``stopped_early``, ``finished`` or ``interrupted``."""
    if nan_epoch:
        return "nan"
    if state.get("stopped_early"):
        return "stopped_early"
    return "finished" if state["epochs_done"] >= epochs else "interrupted"
