"""``train``: one training run from a ``TrainConfig`` to a finished run folder."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from maskmtl_cli.backend import (
    gpu_name,
    import_keras_quietly,
    resolve_jit,
    resolve_precision,
    select_backend,
)
from maskmtl_cli.errors import InputError, TrainingError
from maskmtl_cli.io import write_json
from maskmtl_cli.training import run_folder
from maskmtl_cli.training.config import TrainConfig
from maskmtl_cli.training.data import load_training_data, resolve_manifest
from maskmtl_cli.training.devices import place, worker_folders
from maskmtl_cli.training.state import RunState, new_state
from maskmtl_cli.training.summary import RunSetup, resolved_specs, run_summary
from maskmtl_cli.training.trainer import new_trainer, resume_trainer


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
    setup, resume = _prepare(cfg, resume, log)
    trainer, state, setup = _open_run(setup, resume)
    recorder = _fit(setup, trainer, state, show_progress, log)
    return _finish(setup, trainer, state, recorder, log)


def _prepare(cfg: TrainConfig, resume, log: Callable[[str], None]) -> tuple[RunSetup, Path | None]:
    """Backend, devices and data of a run, checked before any folder is created."""
    backend = select_backend(cfg.backend)
    keras = import_keras_quietly()
    check_network_options(cfg)
    placement = place(cfg.devices, backend, cfg.batch_size)
    project, resume = worker_folders(placement, cfg.project, resume)
    if resume is None:
        cfg = cfg.replace(manifest=str(resolve_manifest(cfg.manifest)), backend=backend,
                          project=project)
    data = load_training_data(cfg)
    cfg = cfg.replace(tasks=data.tasks)  # with the classes read from the labels
    for warning in _data_warnings(cfg, data):
        log(warning)
    on_gpu = gpu_name() is not None
    policy = resolve_precision(cfg.mixed_precision, on_gpu)
    keras.config.set_dtype_policy(policy)
    setup = RunSetup(cfg=cfg, run_dir=Path(resume) if resume is not None else Path(),
                     backend=backend, policy=policy, jit=resolve_jit(cfg.jit_compile, on_gpu),
                     placement=placement, data=data)
    return setup, resume


def _data_warnings(cfg: TrainConfig, data) -> list[str]:
    """What people should know about the training data: loader notes, unreadable images,
    images left out for missing labels."""
    warnings = list(data.warnings)
    if data.failures:
        path, reason = data.failures[0]
        warnings.append(f"{len(data.failures)} train/val images could not be read and are "
                        f"skipped (first: {path}: {reason}).")
    for split, count in data.dropped.items():
        what = "every" if cfg.missing_labels == "drop" else "any"
        warnings.append(f"--missing-labels {cfg.missing_labels}: {count} {split} images "
                        f"without {what} {'/'.join(cfg.task_names)} label left out.")
    return warnings


def _steps_per_epoch(setup: RunSetup) -> int:
    return math.ceil(len(setup.data.train_images) / setup.cfg.batch_size)


def _open_run(setup: RunSetup, resume: Path | None) -> tuple[object, RunState, RunSetup]:
    """The trainer and state of the run: reloaded from its folder, or new in a new folder."""
    import keras

    from maskmtl_cli.model_schema import write_task_file

    cfg, steps = setup.cfg, _steps_per_epoch(setup)
    if resume is not None:
        state: RunState = run_folder.read_state(setup.run_dir)
        keras.utils.set_random_seed(cfg.seed + state["epochs_done"])
        with setup.placement.scope():
            trainer = resume_trainer(setup.run_dir, cfg, steps, setup.jit)
    else:
        keras.utils.set_random_seed(cfg.seed)
        with setup.placement.scope():
            trainer = new_trainer(cfg, setup.data, steps, setup.jit)
        setup = dataclasses.replace(setup, run_dir=run_folder.new_run_dir(cfg.project, cfg.name))
        state = new_state(setup.data.age_mean, setup.data.age_std)
    cfg.save(setup.run_dir / run_folder.CONFIG_FILE)  # resumed: records a raised --epochs
    write_task_file(setup.run_dir, resolved_specs(cfg), cfg.segmentation)
    state["stopped_early"] = False
    return trainer, state, setup


def _callbacks(setup: RunSetup, state: RunState, initial_epoch: int, show_progress: bool):
    """The run recorder, the plateau schedule and the progress display of ``fit``."""
    import keras

    from maskmtl_cli.models.export import inference_network
    from maskmtl_cli.training.callbacks import ProgressDisplay, RunRecorder

    cfg, run_dir = setup.cfg, setup.run_dir
    recorder = RunRecorder(
        run_dir, state,
        save_best=lambda model: run_folder.save_keras_atomic(
            inference_network(model.network), run_dir / run_folder.BEST_FILE),
        train_size=len(setup.data.train_images), batch_size=cfg.batch_size,
        early_stopping=cfg.early_stopping,
    )
    callbacks = [recorder]
    if cfg.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=3, min_lr=cfg.lr / 100))
    display = None
    if show_progress:
        display = ProgressDisplay(cfg.epochs, initial_epoch, _steps_per_epoch(setup), recorder)
        callbacks.append(display)
    return recorder, display, callbacks


def _fit(setup: RunSetup, trainer, state: RunState, show_progress: bool,
         log: Callable[[str], None]):
    """Train from the state's epoch to ``cfg.epochs``; the state is saved however it ends."""
    cfg, data, placement, run_dir = setup.cfg, setup.data, setup.placement, setup.run_dir
    initial_epoch = state["epochs_done"]
    recorder, display, callbacks = _callbacks(setup, state, initial_epoch, show_progress)
    started = time.perf_counter()
    try:
        val_batch = placement.batch(max(cfg.batch_size, 256))
        with placement.scope():
            trainer.fit(
                **_training_inputs(setup, initial_epoch), epochs=cfg.epochs,
                initial_epoch=initial_epoch,
                validation_data=placement.even(_fit_inputs(data.val_images, data.val_masks),
                                               data.val_targets, val_batch),
                validation_batch_size=val_batch, verbose=0, callbacks=callbacks,
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
            write_json(run_dir / run_folder.STATE_FILE, state)
    return recorder


def _finish(setup: RunSetup, trainer, state: RunState, recorder,
            log: Callable[[str], None]) -> TrainResult:
    """Export the best model, write the summary and curves; TrainingError after a NaN loss."""
    from maskmtl_cli.training.report import plot_curves

    cfg, run_dir = setup.cfg, setup.run_dir
    if state.get("best_epoch"):
        state["onnx_parity"] = _export_best(run_dir)
        state["val_collapse"] = _collapse_warnings(run_dir, setup.data, cfg.batch_size, log)
    summary = run_summary(setup, state, trainer, recorder.nan_epoch)
    write_json(run_dir / run_folder.SUMMARY_FILE, summary)
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


def _training_inputs(setup: RunSetup, initial_epoch: int) -> dict:
    """``fit``'s training arguments: batches composed anew each epoch (``face_mix``), or the
    fixed arrays, shuffled."""
    cfg, data, placement = setup.cfg, setup.data, setup.placement
    if data.train_versions is not None:
        from maskmtl_cli.training.face_mix import make_dataset

        return {"x": make_dataset(data.train_versions, data.train_targets, cfg.batch_size,
                                  cfg.face_mix, cfg.photometric, cfg.seed, initial_epoch,
                                  pad=placement.missing)}
    images, targets = placement.even(_fit_inputs(data.train_images, data.train_masks),
                                     data.train_targets, cfg.batch_size)
    return {"x": images, "y": targets, "batch_size": cfg.batch_size, "shuffle": True}


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
    from maskmtl_cli.evaluation.metrics import collapse_summary, is_collapsed
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
