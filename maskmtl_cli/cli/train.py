"""`maskmtl train`: train a MaskMTL multi-task model into a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.schema import PRESET_SETTINGS
from maskmtl_cli.tasks import ATTACH_HELP
from maskmtl_cli.training.config import (
    AGE_LOSSES,
    AGE_REWEIGHTS,
    ARCHITECTURES,
    BACKENDS,
    DEFAULT_AGE_WEIGHT,
    DEFAULT_LOSS_WEIGHTS,
    DEFAULT_SOFT_L2,
    LR_SCHEDULES,
    MISSING_LABELS,
    PRESET_NAMES,
    RACE_BALANCES,
    TASKS,
    TrainConfig,
)

_D = TrainConfig()  # defaults, for the help text only


def _flag(on: bool, name: str) -> str:
    """How the help names a --NAME/--no-NAME default."""
    return name if on else f"no-{name}"


#: The command-line option of each ``TrainConfig`` field a preset may set, and its switch name.
_OPTION = {"arch": "--arch", "tasks": "--tasks", "image_size": "--image-size",
           "color_mode": "--color", "age_loss": "--age-loss"}
_SWITCH = {"nonlocal_block": "nonlocal", "segmentation": "segmentation"}


def _as_options(settings: dict) -> str:
    """``{"image_size": 48, "nonlocal_block": False}`` -> ``--image-size 48 --no-nonlocal``."""
    return " ".join(f"--{_flag(value, _SWITCH[key])}" if key in _SWITCH
                    else f"{_OPTION[key]} {value}" for key, value in settings.items())


def _preset_help() -> str:
    """What each preset with settings of its own sets, for --preset's help."""
    return " ".join(f"{name} sets {_as_options(settings)} unless given."
                    for name, settings in PRESET_SETTINGS.items())


def apply_preset(given: dict) -> tuple[dict, dict]:
    """The options of a run once its preset's settings fill those not given explicitly.

    Args:
        given: The options given on the command line, by ``TrainConfig`` field.

    Returns:
        ``(options, applied)``: the options to build the config from, and the preset settings
        that were applied (for the message on stderr).
    """
    settings = PRESET_SETTINGS.get(given.get("preset") or _D.preset, {})
    applied = {key: value for key, value in settings.items() if key not in given}
    return {**applied, **given}, applied


@app.command("train")
@guarded
def train_command(
    manifest: Annotated[Optional[Path], typer.Argument(
        help=f"Manifest CSV from `maskmtl split` (or its folder). \\[default: {_D.manifest}]",
        show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option(
        help=f"{' | '.join(ARCHITECTURES)}: hierarchical branches (the paper), hard sharing, "
             f"or one encoder per task tied by --soft-l2. \\[default: {_D.arch}]")] = None,
    nonlocal_block: Annotated[Optional[bool], typer.Option(
        "--nonlocal/--no-nonlocal",
        help="Add a non-local attention block after the encoder. "
             f"\\[default: {_flag(_D.nonlocal_block, 'nonlocal')}]",
        show_default=False)] = None,
    tasks: Annotated[Optional[str], typer.Option(
        help=f"Comma-separated tasks: any of {','.join(TASKS)} and label columns of the "
             "manifest (classification; NAME:regression for a number). \\[default: "
             f"{','.join(TASKS)}]")] = None,
    task_spec: Annotated[Optional[Path], typer.Option(
        help=f"YAML or JSON file: per task kind, classes, attach ({ATTACH_HELP}) and weight; "
             "--tasks then picks from it (docs/tasks.md).", show_default=False)] = None,
    segmentation: Annotated[Optional[bool], typer.Option(
        "--segmentation/--no-segmentation",
        help="Add the mask-segmentation head (Dice + BCE), trained on the manifest's mask "
             "column (`maskmtl mask --save-masks`, then `split`). \\[default: "
             f"{_flag(_D.segmentation, 'segmentation')}]", show_default=False)] = None,
    preset: Annotated[Optional[str], typer.Option(
        help=f"Layer widths: {' | '.join(PRESET_NAMES)} (notebook = the released 13.2M "
             f"model). {_preset_help()} \\[default: {_D.preset}]")] = None,
    image_size: Annotated[Optional[int], typer.Option(
        help=f"Input size in pixels. \\[default: {_D.image_size}]")] = None,
    color: Annotated[Optional[str], typer.Option(
        help=f"gray | rgb. \\[default: {_D.color_mode}]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help=f"Training batch size. \\[default: {_D.batch_size}]")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help=f"Epochs in total (with --resume: raise it to train further). "
             f"\\[default: {_D.epochs}]")] = None,
    lr: Annotated[Optional[float], typer.Option(
        help=f"Adam learning rate. \\[default: {_D.lr:g}]")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(
        help=f"{' | '.join(LR_SCHEDULES)}. \\[default: {_D.lr_schedule}]")] = None,
    early_stopping: Annotated[Optional[int], typer.Option(
        help="Stop after N epochs without a better validation loss (0: off). "
             f"\\[default: {_D.early_stopping}]")] = None,
    augment: Annotated[Optional[bool], typer.Option(
        "--augment/--no-augment",
        help="Random flip, shift and brightness while training. "
             f"\\[default: {_flag(_D.augment, 'augment')}]",
        show_default=False)] = None,
    face_mix: Annotated[Optional[str], typer.Option(
        help="Shares of each training batch: a masked version of the photo (drawn anew each "
             "epoch from `mask --variants`), the bare photo under a random lower-face "
             "occluder, the bare photo (found through the mask run the manifest was split "
             "from); `none`: the manifest's images as they are. "
             f"\\[default: {','.join(f'{k}={v:g}' for k, v in _D.face_mix.items())}]")
    ] = None,
    photometric: Annotated[Optional[float], typer.Option(
        help="Strength of the photometric jitter of training faces (colour, contrast, gray, "
             f"sepia, blur, noise, JPEG quality); 0: off. \\[default: {_D.photometric:g}]")
    ] = None,
    align_rotation: Annotated[Optional[float], typer.Option(
        help=f"Largest random rotation of training faces in degrees (alignment jitter). "
             f"\\[default: {_D.align_rotation:g}]")] = None,
    align_scale: Annotated[Optional[float], typer.Option(
        help=f"Largest random zoom of training faces, a fraction (alignment jitter). "
             f"\\[default: {_D.align_scale:g}]")] = None,
    mask_task: Annotated[Optional[bool], typer.Option(
        "--mask-task/--no-mask-task",
        help="Also learn the `masked` output (does the face wear a mask) from the face mix. "
             f"\\[default: {_flag(_D.mask_task, 'mask-task')}]", show_default=False)] = None,
    age_loss: Annotated[Optional[str], typer.Option(
        help=f"{' | '.join(AGE_LOSSES)}: L1 in years, L1 on log-age, or label-distribution "
             f"learning over 0-116 years. \\[default: {_D.age_loss}]")] = None,
    age_sigma: Annotated[Optional[float], typer.Option(
        help=f"Width in years of the ldl target distribution. \\[default: {_D.age_sigma:g}]")
    ] = None,
    race_balance: Annotated[Optional[str], typer.Option(
        help=f"{' | '.join(RACE_BALANCES)}: logit-adjust trains the ethnicity head against the "
             f"class prior so rare classes are predicted. \\[default: {_D.race_balance}]")
    ] = None,
    race_tau: Annotated[Optional[float], typer.Option(
        help=f"Strength of --race-balance logit-adjust: 1 the full log prior, smaller milder. "
             f"\\[default: {_D.race_tau:g}]")] = None,
    age_reweight: Annotated[Optional[str], typer.Option(
        help=f"{' | '.join(AGE_REWEIGHTS)}: sqrt-inv weighs rare ages (children, the old) more "
             f"in the age loss. \\[default: {_D.age_reweight}]")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(
        help=f"AdamW weight decay (0: plain Adam). \\[default: {_D.weight_decay:g}]")] = None,
    loss_weights: Annotated[Optional[str], typer.Option(
        help="Fixed task weights, e.g. age=0.1,gender=1,race=1 (age L1 is in years). "
             f"\\[default: age={DEFAULT_AGE_WEIGHT[_D.age_loss]:g} with --age-loss "
             f"{_D.age_loss}, {DEFAULT_AGE_WEIGHT['l1']:g} with l1; "
             f"{','.join(f'{task}={DEFAULT_LOSS_WEIGHTS[task]:g}' for task in TASKS[1:])}]")
    ] = None,
    uncertainty_weighting: Annotated[Optional[bool], typer.Option(
        "--uncertainty-weighting/--fixed-weights",
        help="Learn the task weights (Kendall et al. 2018). \\[default: "
             f"{'uncertainty-weighting' if _D.uncertainty_weighting else 'fixed-weights'}]",
        show_default=False)] = None,
    soft_l2: Annotated[Optional[float], typer.Option(
        help="L2 penalty strength between per-task encoders (--arch soft). "
             f"\\[default: {DEFAULT_SOFT_L2:g}]")] = None,
    missing_labels: Annotated[Optional[str], typer.Option(
        help=f"{' | '.join(MISSING_LABELS)}: images without a label for a task are left out "
             "of that task's loss, left out of training, or refused. \\[default: "
             f"{_D.missing_labels}]")] = None,
    drop_missing: Annotated[Optional[bool], typer.Option(
        "--drop-missing/--require-labels", hidden=True,
        help="Same as --missing-labels drop / require.", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(
        help=f"Seed of weights, shuffling, dropout, augmentation. \\[default: {_D.seed}]")] = None,
    backend: Annotated[Optional[str], typer.Option(
        help=f"Keras backend: {' | '.join(BACKENDS)}. \\[default: $KERAS_BACKEND or tensorflow]")
    ] = None,
    mixed_precision: Annotated[Optional[bool], typer.Option(
        "--mixed-precision/--no-mixed-precision",
        help="bfloat16 compute. \\[default: on with a GPU]", show_default=False)] = None,
    jit: Annotated[Optional[bool], typer.Option(
        "--jit/--no-jit",
        help="XLA / jit compilation. \\[default: on with JAX or a GPU]",
        show_default=False)] = None,
    steps_per_execution: Annotated[Optional[int], typer.Option(
        help="Training steps per compiled call; raise on GPUs. "
             f"\\[default: {_D.steps_per_execution}]")] = None,
    devices: Annotated[Optional[str], typer.Option(
        help="Devices to train on in parallel: N or auto (every GPU). --batch-size is the "
             "global batch, split evenly; --lr is not rescaled. TensorFlow: "
             "MirroredStrategy (one host); JAX: keras.distribution.DataParallel "
             "(several hosts: KERAS_DISTRIBUTION_*). See docs/scale.md. "
             f"\\[default: {_D.devices}]", show_default=False)] = None,
    eager: Annotated[Optional[bool], typer.Option(
        "--eager", help="Run eagerly, without graph compilation: starts at once, each step is "
                        "slower (debugging, smoke runs on tiny data).", show_default=False)
    ] = None,
    name: Annotated[Optional[str], typer.Option(
        help="Run folder name. \\[default: train, train2, ...]")] = None,
    project: Annotated[Optional[Path], typer.Option(
        help=f"Folder of run folders. \\[default: {_D.project}]")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        help="Continue an interrupted run folder (its saved options apply).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        help="Image cache folder. \\[default: ~/.cache/maskmtl or $MASKMTL_CACHE_DIR]")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Draw the progress bar on stderr.")] = True,
) -> None:
    """Train a multi-task model (age, gender, ethnicity, or any labels) into a run folder.

    Reads the train and val rows of a manifest written by `maskmtl split`, and writes
    runs/train (then runs/train2, ...) with config.json, tasks.json, best.keras (best
    validation loss), best.onnx, last.keras, history.csv, curves.png and summary.json. `eval`
    and `predict` use the newest run by default.

    Example: maskmtl train manifest.csv --tasks age,gender,expression --nonlocal --epochs 40
    """
    from maskmtl_cli.console import err_console
    from maskmtl_cli.extras import EXPORT_PACKAGES, require_extra

    require_extra("train", "`maskmtl train`", EXPORT_PACKAGES)
    from maskmtl_cli.tasks import resolve_tasks
    from maskmtl_cli.training.loop import resume_config, train

    if drop_missing is not None and missing_labels is None:
        missing_labels = "drop" if drop_missing else "require"

    options = {
        "manifest": str(manifest) if manifest else None, "arch": arch,
        "nonlocal_block": nonlocal_block, "preset": preset, "segmentation": segmentation,
        "tasks": resolve_tasks(tasks, task_spec) if tasks or task_spec else None,
        "image_size": image_size, "color_mode": color, "batch_size": batch_size,
        "epochs": epochs, "lr": lr, "lr_schedule": lr_schedule, "early_stopping": early_stopping,
        "augment": augment, "face_mix": face_mix, "photometric": photometric,
        "align_rotation": align_rotation, "align_scale": align_scale, "mask_task": mask_task,
        "age_loss": age_loss, "age_sigma": age_sigma,
        "race_balance": race_balance, "race_tau": race_tau, "age_reweight": age_reweight,
        "weight_decay": weight_decay, "loss_weights": loss_weights,
        "uncertainty_weighting": uncertainty_weighting, "soft_l2": soft_l2,
        "missing_labels": missing_labels, "seed": seed, "backend": backend,
        "mixed_precision": mixed_precision, "jit_compile": jit,
        "steps_per_execution": steps_per_execution, "devices": devices,
        "run_eagerly": eager, "name": name,
        "project": str(project) if project else None,
        "cache_dir": str(cache_dir) if cache_dir else None,
    }
    given = {key: value for key, value in options.items() if value is not None}
    if resume is not None:
        ignored = sorted(set(given) - {"epochs", "backend", "devices"})
        if ignored:
            err_console.print(f"[yellow]--resume uses the run's saved options; ignoring: "
                              f"{', '.join(ignored)}.[/]", highlight=False)
        config = resume_config(resume, epochs=epochs, backend=backend, devices=devices)
    else:
        given, applied = apply_preset(given)
        if applied:
            err_console.print(f"Preset {given['preset']} sets {_as_options(applied)} (pass an "
                              "option to override it).", highlight=False, markup=False,
                              soft_wrap=True)
        config = TrainConfig(**given)
    result = train(config, resume=resume, show_progress=progress,
                   log=lambda message: err_console.print(f"[yellow]{message}[/]", highlight=False))
    _render(result.summary, json_output)


def _render(summary: dict, json_output: bool) -> None:
    """Print the run summary: JSON, or a short table for people (stdout)."""
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.table import Table

    from maskmtl_cli.console import out_console

    table = Table(title=f"maskmtl train: {summary['run_dir']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("status", f"{summary['status']} after {summary['epochs_run']} of "
                            f"{summary['epochs_planned']} epochs")
    table.add_row("model", f"{summary['arch']}{' + non-local' if summary['nonlocal'] else ''}, "
                           f"preset {summary['preset']}, {summary['parameters']:,} parameters")
    best = summary["best_val_metrics"]
    metrics = []
    if "val_age_mae" in best:
        metrics.append(f"age MAE {best['val_age_mae']:.2f} years")
    if "val_gender_acc" in best:
        metrics.append(f"gender accuracy {best['val_gender_acc']:.1%}")
    if "val_race_acc" in best:
        metrics.append(f"ethnicity accuracy {best['val_race_acc']:.1%}")
    from maskmtl_cli.training.callbacks import other_task_metrics

    metrics += other_task_metrics(best)
    table.add_row(f"best (epoch {summary['best_epoch']})", ", ".join(metrics) or "-")
    speed = summary["images_per_second"]
    table.add_row("speed", f"{speed:,.0f} images/s, {summary['wall_seconds']:.0f} s in total"
                  if speed else f"{summary['wall_seconds']:.0f} s in total")
    table.add_row("device",
                  f"{summary['device']} ({summary['backend']}, {summary['dtype_policy']})")
    table.add_row("model file", str(Path(summary["run_dir"]) / "best.keras"))
    out_console.print(table)
