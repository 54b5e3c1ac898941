"""``train``: one training run from a ``TrainConfig`` to a finished run folder."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from maskmtl_cli.errors import InputError, TrainingError
from maskmtl_cli.training import run_folder
from maskmtl_cli.training.backend import (
    describe_device,
    gpu_name,
    import_keras_quietly,
    resolve_jit,
    resolve_precision,
    select_backend,
)
from maskmtl_cli.training.config import TrainConfig
from maskmtl_cli.training.data import load_training_data, resolve_manifest
from maskmtl_cli.training.devices import place, worker_folders


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left behind."""

    run_dir: Path
    summary: dict


def resume_config(
    run_dir: str | Path, epochs: int | None = None, backend: str | None = None,
    devices: int | str | None = None,
) -> TrainConfig:
    """The saved config of a run to resume, with ``epochs`` raised, ``backend`` or ``devices``
    changed."""
    run_dir = run_folder.check_resumable(run_dir)
    cfg = TrainConfig.load(run_dir / run_folder.CONFIG_FILE)
    state = run_folder.read_state(run_dir)
    if epochs is not None:
        cfg = cfg.replace(epochs=epochs)
    if backend is not None:
        cfg = cfg.replace(backend=backend)
    if devices is not None:
        cfg = cfg.replace(devices=devices)
    if state.get("epochs_done", 0) >= cfg.epochs:
        raise InputError(
            f"Run '{run_dir}' already finished {state.get('epochs_done')} of {cfg.epochs} "
            f"epochs. Pass a larger --epochs to train it further."
        )
    return cfg


def train(
    cfg: TrainConfig,
    resume: str | Path | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a MaskMTL model and write its run folder.

    Args:
        cfg: The run's settings (for a resumed run: from ``resume_config``).
        resume: Run folder to continue from its ``last.keras``; None starts a new run.
        show_progress: Draw the progress bar and per-epoch lines on stderr.
        log: Receives warnings for people (images that failed to load, dropped labels).

    Returns:
        The run folder and its summary (also written as ``summary.json``).

    Raises:
        InputError, DataError: Unusable options or data (before any folder is created).
        TrainingError: The loss became NaN (the run folder keeps the last good epoch).
    """
    log = log or (lambda message: None)
    backend = select_backend(cfg.backend)
    keras = import_keras_quietly()
    from maskmtl_cli.models import count_parameters
    from maskmtl_cli.training.callbacks import ProgressDisplay, RunRecorder

    check_network_options(cfg)
    placement = place(cfg.devices, backend, cfg.batch_size)
    project, resume = worker_folders(placement, cfg.project, resume)
    if resume is None:
        cfg = cfg.replace(manifest=str(resolve_manifest(cfg.manifest)), backend=backend,
                          project=project)
    data = load_training_data(cfg)
    cfg = cfg.replace(tasks=data.tasks)  # with the classes read from the labels
    for warning in data.warnings:
        log(warning)
    if data.failures:
        path, reason = data.failures[0]
        log(f"{len(data.failures)} train/val images could not be read and are skipped "
            f"(first: {path}: {reason}).")
    for split, count in data.dropped.items():
        what = "every" if cfg.missing_labels == "drop" else "any"
        log(f"--missing-labels {cfg.missing_labels}: {count} {split} images without {what} "
            f"{'/'.join(cfg.task_names)} label left out.")
    on_gpu = gpu_name() is not None
    policy = resolve_precision(cfg.mixed_precision, on_gpu)
    jit = resolve_jit(cfg.jit_compile, on_gpu)
    keras.config.set_dtype_policy(policy)
    train_size = len(data.train_images)
    steps_per_epoch = math.ceil(train_size / cfg.batch_size)

    if resume is not None:
        run_dir = Path(resume)
        state = run_folder.read_state(run_dir)
        keras.utils.set_random_seed(cfg.seed + state["epochs_done"])
        with placement.scope():
            trainer = _resume_trainer(run_dir, cfg, steps_per_epoch, jit)
    else:
        keras.utils.set_random_seed(cfg.seed)
        with placement.scope():
            trainer = _new_trainer(cfg, data, steps_per_epoch, jit)
        run_dir = run_folder.new_run_dir(cfg.project, cfg.name)
        state = {
            "epochs_done": 0,
            "best_val_loss": math.inf,
            "best_epoch": 0,
            "best_metrics": {},
            "timed_images": 0,
            "timed_seconds": 0.0,
            "timed_cpu_seconds": 0.0,
            "wall_seconds": 0.0,
            "age_mean": data.age_mean,
            "age_std": data.age_std,
        }
    cfg.save(run_dir / run_folder.CONFIG_FILE)  # for a resumed run: records a raised --epochs
    from maskmtl_cli.model_schema import write_task_file

    write_task_file(run_dir, _resolved_specs(cfg), cfg.segmentation)
    initial_epoch = state["epochs_done"]
    state["stopped_early"] = False
    from maskmtl_cli.models.export import inference_network

    recorder = RunRecorder(
        run_dir,
        state,
        save_best=lambda model: run_folder.save_keras_atomic(
            inference_network(model.network), run_dir / run_folder.BEST_FILE
        ),
        train_size=train_size,
        batch_size=cfg.batch_size,
        early_stopping=cfg.early_stopping,
    )
    callbacks = [recorder]
    if cfg.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=3, min_lr=cfg.lr / 100
            )
        )
    display = None
    if show_progress:
        display = ProgressDisplay(cfg.epochs, initial_epoch, steps_per_epoch, recorder)
        callbacks.append(display)
    started = time.perf_counter()
    try:
        val_batch = placement.batch(max(cfg.batch_size, 256))
        with placement.scope():
            trainer.fit(
                *placement.even(_fit_inputs(data.train_images, data.train_masks),
                                data.train_targets, cfg.batch_size),
                batch_size=cfg.batch_size,
                epochs=cfg.epochs,
                initial_epoch=initial_epoch,
                validation_data=placement.even(_fit_inputs(data.val_images, data.val_masks),
                                               data.val_targets, val_batch),
                validation_batch_size=val_batch,
                shuffle=True,
                verbose=0,
                callbacks=callbacks,
            )
    except KeyboardInterrupt:
        if state["epochs_done"]:
            log(f"Stopped after epoch {state['epochs_done']}; continue with "
                f"`maskmtl train --resume {run_dir}`.")
        raise
    finally:
        if display is not None:
            display.close()
        state["wall_seconds"] = state.get("wall_seconds", 0.0) + time.perf_counter() - started
        if (run_dir / run_folder.STATE_FILE).is_file() or state["epochs_done"]:
            run_folder.write_json(run_dir / run_folder.STATE_FILE, state)
    if state.get("best_epoch"):
        state["onnx_parity"] = _export_best(run_dir)
        state["val_collapse"] = _collapse_warnings(run_dir, data, cfg.batch_size, log)
    summary = _summary(cfg, run_dir, state, trainer, data, backend, policy, jit,
                       count_parameters(trainer.network), recorder.nan_epoch, placement)
    run_folder.write_json(run_dir / run_folder.SUMMARY_FILE, summary)
    from maskmtl_cli.training.report import plot_curves

    plot_curves(run_dir / run_folder.HISTORY_FILE, run_dir / run_folder.CURVES_FILE,
                state.get("best_epoch"))
    if recorder.nan_epoch is not None:
        kept = (f"{run_folder.BEST_FILE} holds epoch {state['best_epoch']}"
                if state.get("best_epoch") else "no model was saved")
        raise TrainingError(
            f"The loss became NaN in epoch {recorder.nan_epoch}; training stopped ({kept}, in "
            f"{run_dir}). Lower --lr (now {cfg.lr:g}), check the labels in the manifest, or "
            "try --fixed-weights and smaller --loss-weights."
        )
    return TrainResult(run_dir=run_dir, summary=summary)


def check_network_options(cfg: TrainConfig) -> None:
    """InputError for tasks, attach points or an image size the network cannot take."""
    from maskmtl_cli.models.segmentation import check_segmentation_size
    from maskmtl_cli.tasks import check_task_graph, pooling_depth

    check_task_graph(cfg.tasks, cfg.arch)
    smallest = 2 ** max(pooling_depth(spec, cfg.tasks, cfg.arch) for spec in cfg.tasks)
    if cfg.image_size < smallest:
        raise InputError(
            f"Image size {cfg.image_size} is too small for --arch {cfg.arch} with tasks "
            f"{','.join(cfg.task_names)}: its 2x2 poolings need at least {smallest}x{smallest} "
            f"pixels. Use --image-size {smallest} or more (48 is the default)."
        )
    if cfg.segmentation:
        check_segmentation_size(cfg.image_size)


def _resolved_specs(cfg: TrainConfig):
    """The trained tasks with the loss weights actually used (for ``tasks.json``)."""
    from dataclasses import replace

    return tuple(replace(spec, weight=cfg.loss_weights[spec.name]) for spec in cfg.tasks)


def _fit_inputs(images, masks):
    """Images, with the ground-truth mask as one more channel for the segmentation head."""
    import numpy as np

    return images if masks is None else np.concatenate([images, masks], axis=-1)


def _export_best(run_dir: Path) -> dict[str, float]:
    """Write ``best.onnx`` from ``best.keras``; the largest ONNX-Keras difference per output."""
    from maskmtl_cli.models.export import export_keras_file

    return export_keras_file(run_dir / run_folder.BEST_FILE, run_dir / run_folder.BEST_ONNX_FILE)


def _collapse_warnings(run_dir: Path, data, batch_size: int,
                       log: Callable[[str], None]) -> dict[str, dict]:
    """Warn when one predicted value covers too many validation faces (a collapsed head).

    Returns the most common value and its share per task, for ``summary.json``.
    """
    from maskmtl_cli.evaluation import collapse_summary, is_collapsed
    from maskmtl_cli.inference import load_model, predict_arrays

    model = load_model(run_dir, "onnx")
    predictions = predict_arrays(model, data.val_images, batch_size=max(256, batch_size))
    kinds = {spec.name: spec.kind for spec in data.tasks}
    found = {}
    for task, values in predictions.items():
        summary = collapse_summary(task, values, kinds.get(task) == "regression")
        found[task] = summary
        if is_collapsed(summary):
            fix = "--age-loss ldl or a larger age weight in --loss-weights" if task == "age" \
                else f"a smaller --lr or another {task} weight in --loss-weights"
            log(f"The {task} head collapsed: {summary['share']:.1%} of the validation faces get "
                f"the same prediction ({summary['value']}). Try {fix}.")
    return found


def _learning_rate(cfg: TrainConfig, steps_per_epoch: int):
    """A float, or a cosine decay to 0 over all training steps."""
    import keras

    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            cfg.lr, decay_steps=max(1, cfg.epochs * steps_per_epoch)
        )
    return cfg.lr


def _new_trainer(cfg: TrainConfig, data, steps_per_epoch: int, jit: bool):
    """Build the network and its compiled ``MultiTaskTrainer``."""
    import keras

    from maskmtl_cli.models import MultiTaskTrainer, build_network

    log_space = cfg.age_loss == "log-l1"
    network = build_network(
        arch=cfg.arch,
        tasks=cfg.tasks,
        preset=cfg.preset,
        image_size=cfg.image_size,
        color_mode=cfg.color_mode,
        nonlocal_block=cfg.nonlocal_block,
        age_loss=cfg.age_loss,
        age_mean=data.age_log_mean if log_space else data.age_mean,
        age_std=data.age_log_std if log_space else data.age_std,
        segmentation=cfg.segmentation,
        regression_stats=data.regression_stats,
    )
    race_log_prior = None
    if cfg.race_balance == "logit-adjust" and "race" in cfg.task_names:
        race_log_prior = [cfg.race_tau * math.log(share) for share in data.race_prior]
    age_bin_weights = None
    if cfg.age_reweight == "sqrt-inv" and "age" in cfg.task_names:
        from maskmtl_cli.training.data import age_balance_weights

        age_bin_weights = age_balance_weights(data.train_targets["age"])
    trainer = MultiTaskTrainer(
        network,
        [spec.to_dict() for spec in cfg.tasks],
        loss_weights=cfg.task_loss_weights(),
        uncertainty_weighting=cfg.uncertainty_weighting,
        soft_l2=cfg.soft_l2_strength,
        age_loss=cfg.age_loss,
        age_sigma=cfg.age_sigma,
        race_log_prior=race_log_prior,
        age_bin_weights=age_bin_weights,
        augment=cfg.augment,
        seed=cfg.seed,
        regression_scales={name: std for name, (_, std) in data.regression_stats.items()},
        segmentation=cfg.segmentation,
        name="trainer",
    )
    learning_rate = _learning_rate(cfg, steps_per_epoch)
    optimizer = (keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay)
                 if cfg.weight_decay > 0 else keras.optimizers.Adam(learning_rate))
    trainer.compile(
        optimizer=optimizer,
        jit_compile=jit and not cfg.run_eagerly,
        steps_per_execution=cfg.steps_per_execution,
        run_eagerly=cfg.run_eagerly,
    )
    return trainer


def _resume_trainer(run_dir: Path, cfg: TrainConfig, steps_per_epoch: int, jit: bool):
    """Reload ``last.keras`` (network, loss weights, optimizer state) to continue a run."""
    import keras

    import maskmtl_cli.models  # noqa: F401  (registers the custom classes)
    from maskmtl_cli.errors import ModelError

    path = run_dir / run_folder.LAST_FILE
    try:
        trainer = keras.saving.load_model(path)
    except Exception as error:  # Corrupt or foreign files raise many types.
        raise ModelError(f"Cannot resume from '{path}': {error}. Start a new run.") from None
    trainer.run_eagerly = cfg.run_eagerly
    trainer.jit_compile = jit and not cfg.run_eagerly
    if cfg.lr_schedule == "cosine":  # --epochs may have been raised: stretch the decay.
        trainer.optimizer.learning_rate = _learning_rate(cfg, steps_per_epoch)
    return trainer


def _summary(cfg, run_dir, state, trainer, data, backend, policy, jit, parameters, nan_epoch,
             placement):
    """The JSON-ready summary of a run (see docs/train.md for the fields)."""
    timed = state.get("timed_seconds", 0.0)
    return {
        "run_dir": str(run_dir),
        "status": "nan" if nan_epoch else ("stopped_early" if state.get("stopped_early") else
                                            "finished" if state["epochs_done"] >= cfg.epochs
                                            else "interrupted"),
        "arch": cfg.arch,
        "nonlocal": cfg.nonlocal_block,
        "preset": cfg.preset,
        "tasks": list(cfg.task_names),
        "task_specs": [spec.to_dict() for spec in _resolved_specs(cfg)],
        "segmentation": cfg.segmentation,
        "parameters": parameters["total"],
        "trainable_parameters": parameters["trainable"],
        "epochs_run": state["epochs_done"],
        "epochs_planned": cfg.epochs,
        "best_epoch": state.get("best_epoch") or None,
        "best_val_loss": state["best_val_loss"] if math.isfinite(state["best_val_loss"]) else None,
        "best_val_metrics": state.get("best_metrics", {}),
        "last_metrics": state.get("last_metrics", {}),
        "task_weights": trainer.task_weights(),
        "val_collapse": state.get("val_collapse", {}),
        "onnx_parity": state.get("onnx_parity", {}),
        "train_images": len(data.train_images),
        "val_images": len(data.val_images),
        "dropped_unlabelled": data.dropped,
        "missing_labels": cfg.missing_labels,
        "unreadable_images": len(data.failures),
        "wall_seconds": round(state.get("wall_seconds", 0.0), 2),
        "images_per_second": round(state["timed_images"] / timed, 1) if timed > 0 else None,
        "images_per_cpu_second": (round(state["timed_images"] / cpu, 1)
                                  if (cpu := state.get("timed_cpu_seconds", 0.0)) > 0 else None),
        "batch_size": cfg.batch_size,
        "backend": backend,
        "device": describe_device(),
        "devices": placement.devices,
        "distribution": placement.description,
        "dtype_policy": policy,
        "jit_compile": jit and not cfg.run_eagerly,
        "run_eagerly": cfg.run_eagerly,
        "peak_rss_mib": _peak_rss_mib(),
        "keras_version": __import__("keras").__version__,
    }


def _peak_rss_mib() -> float | None:
    """Peak resident memory of this process in MiB (None where unsupported)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if os.uname().sysname == "Darwin" else peak / 1024, 1)
