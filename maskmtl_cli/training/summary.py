"""``summary.json``: what a finished (or stopped) run reports about itself (docs/train.md)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from maskmtl_cli.backend import describe_device
from maskmtl_cli.training.config import TrainConfig
from maskmtl_cli.training.data import TrainingData
from maskmtl_cli.training.devices import Placement
from maskmtl_cli.training.state import RunState, run_status


@dataclass(frozen=True)
class RunSetup:
    """How a run is set up: its settings, folder and the resolved backend choices.

    Attributes:
        cfg: The run's settings, with the tasks' classes read from the labels.
        run_dir: The run folder.
        backend: The Keras backend.
        policy: The Keras dtype policy (``float32`` or ``mixed_bfloat16``).
        jit: Whether XLA/jit compilation was asked for (off when running eagerly).
        placement: Where the batches run (``training.devices.place``).
        data: The training data (``training.data.TrainingData``).
    """

    cfg: TrainConfig
    run_dir: Path
    backend: str
    policy: str
    jit: bool
    placement: Placement
    data: TrainingData


def resolved_specs(cfg: TrainConfig):
    """The trained tasks with the loss weights actually used (for ``tasks.json``)."""
    return tuple(replace(spec, weight=cfg.loss_weights[spec.name]) for spec in cfg.tasks)


def _throughput(state: RunState) -> dict:
    timed = state.get("timed_seconds", 0.0)
    cpu = state.get("timed_cpu_seconds", 0.0)
    return {
        "wall_seconds": round(state.get("wall_seconds", 0.0), 2),
        "images_per_second": round(state["timed_images"] / timed, 1) if timed > 0 else None,
        "images_per_cpu_second": round(state["timed_images"] / cpu, 1) if cpu > 0 else None,
    }


def run_summary(setup: RunSetup, state: RunState, trainer, nan_epoch: int | None) -> dict:
    """The JSON-ready summary of a run (see docs/train.md for the fields)."""
    import keras

    from maskmtl_cli.models import count_parameters

    cfg, data = setup.cfg, setup.data
    parameters = count_parameters(trainer.network)
    best_loss = state["best_val_loss"]
    return {
        "run_dir": str(setup.run_dir),
        "status": run_status(state, cfg.epochs, nan_epoch),
        "arch": cfg.arch, "nonlocal": cfg.nonlocal_block, "preset": cfg.preset,
        "tasks": list(cfg.task_names),
        "task_specs": [spec.to_dict() for spec in resolved_specs(cfg)],
        "segmentation": cfg.segmentation,
        "parameters": parameters["total"], "trainable_parameters": parameters["trainable"],
        "epochs_run": state["epochs_done"], "epochs_planned": cfg.epochs,
        "best_epoch": state.get("best_epoch") or None,
        "best_val_loss": best_loss if math.isfinite(best_loss) else None,
        "best_val_metrics": state.get("best_metrics", {}),
        "last_metrics": state.get("last_metrics", {}),
        "task_weights": trainer.task_weights(),
        "val_collapse": state.get("val_collapse", {}),
        "onnx_parity": state.get("onnx_parity", {}),
        "train_images": len(data.train_images), "val_images": len(data.val_images),
        "dropped_unlabelled": data.dropped, "missing_labels": cfg.missing_labels,
        "unreadable_images": len(data.failures),
        **_throughput(state),
        "batch_size": cfg.batch_size, "backend": setup.backend, "device": describe_device(),
        "devices": setup.placement.devices, "distribution": setup.placement.description,
        "dtype_policy": setup.policy, "jit_compile": setup.jit and not cfg.run_eagerly,
        "run_eagerly": cfg.run_eagerly, "peak_rss_mib": peak_rss_mib(),
        "keras_version": keras.__version__,
    }


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process in MiB (None where unsupported)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if os.uname().sysname == "Darwin" else peak / 1024, 1)
