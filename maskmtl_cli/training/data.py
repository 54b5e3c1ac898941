"""Training and validation arrays from a manifest: uint8 images in memory, label checks.

Images stay uint8 (a quarter of float32's memory, and of the bytes sent to a GPU); the model
casts them. Labels come back as the targets ``MultiTaskTrainer`` expects: ``age`` float32 years,
``gender`` float32 0/1, ``race`` int32 class ids, other classification tasks int32 class ids and
other regression tasks float32 values, with NaN / -1 where a label is missing; with the
segmentation head also ``segmentation`` (float32 1/0: the image has a ground-truth mask) and
the masks themselves (uint8 0/255).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.tasks import MASK_COLUMN, REGRESSION, SEGMENTATION, TaskSpec

_MISSING = {"age": "no age", "gender": "no gender", "race": "no race (ethnicity) label"}
#: Used when age is not trained: the head is absent, so these only fill the config.
_DEFAULT_AGE_MEAN, _DEFAULT_AGE_STD = 33.0, 20.0
#: Below these counts a run works but its numbers mean little; the user is told so.
SMALL_TRAIN, SMALL_VAL = 200, 50


@dataclass(frozen=True)
class TrainingData:
    """Arrays of the train and val splits plus what was left out."""

    train_images: np.ndarray
    train_targets: dict[str, np.ndarray]
    val_images: np.ndarray
    val_targets: dict[str, np.ndarray]
    age_mean: float
    age_std: float
    age_log_mean: float = 3.3
    age_log_std: float = 0.8
    race_prior: tuple[float, ...] = (0.2,) * 5  # class shares of the training labels
    tasks: tuple[TaskSpec, ...] = ()  # the trained tasks, classes read from the labels
    regression_stats: dict[str, tuple[float, float]] = field(default_factory=dict)
    train_masks: np.ndarray | None = None  # uint8 (N, size, size, 1) 0/255, segmentation only
    val_masks: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)  # split -> rows without a label
    failures: list[tuple[str, str]] = field(default_factory=list)  # unreadable images
    warnings: list[str] = field(default_factory=list)  # for people: data too small to trust
    # Each training photo's masked versions and bare photo (``TrainConfig.face_mix``)
    train_versions: object = None


def age_balance_weights(ages: np.ndarray, bins: int = 117, sigma: float = 2.0,
                        largest: float = 10.0) -> tuple[float, ...]:
    """Age-loss weight per whole year: the inverse square root of the smoothed label density.

    The ages' histogram over ``0..bins-1`` is smoothed with a Gaussian kernel (``sigma``
    years), each year gets ``density ** -0.5`` (at most ``largest`` times the smallest weight),
    and the weights are scaled so that the training samples' mean weight is 1.
    """
    ages = np.clip(np.round(np.asarray(ages, float)), 0, bins - 1).astype(int)
    histogram = np.bincount(ages, minlength=bins).astype(float)
    offsets = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    density = np.convolve(histogram, kernel / kernel.sum(), mode="same")
    weights = 1.0 / np.sqrt(np.maximum(density, density[density > 0].min()))
    weights = np.minimum(weights, largest * weights.min())
    weights /= weights[ages].mean()
    return tuple(float(value) for value in weights)


def resolve_manifest(manifest: str | Path) -> Path:
    """Absolute path of an existing manifest; InputError saying how to make one otherwise."""
    path = Path(manifest).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir() and (path / "manifest.csv").is_file():
        return (path / "manifest.csv").resolve()
    where = f"'{path}'" if str(manifest) != "manifest.csv" else (
        f"'manifest.csv' in the working folder ({Path.cwd()})"
    )
    raise InputError(
        f"No manifest found at {where}. Create one with `maskmtl split DATA_DIR -o "
        "manifest.csv` first, or pass an existing manifest: `maskmtl train path/to/manifest.csv`."
    )


def load_training_data(cfg) -> TrainingData:
    """Load the train and val splits of ``cfg.manifest`` at the model's size and colour mode.

    Args:
        cfg: A ``TrainConfig`` whose ``manifest`` is resolved.

    Returns:
        The arrays, the tasks with their classes, label statistics of the training split and
        what was dropped.

    Raises:
        DataError: No train or val rows, no readable images, a task without a column or
            without labels, labels missing for a trained task (``cfg.missing_labels``
            "require"), or no ground-truth masks for ``cfg.segmentation``.
    """
    from maskmtl_cli.data.dataset import load_masks, load_split
    from maskmtl_cli.data.manifest import read_manifest
    from maskmtl_cli.data.task_labels import (
        check_task_columns,
        known,
        resolve_classes,
        task_targets,
    )

    table = read_manifest(cfg.manifest)
    splits = _check_splits(table, cfg.manifest)
    check_task_columns(table, cfg.tasks, cfg.manifest)
    specs = resolve_classes(table, cfg.tasks)
    # Load every row (test too): the data layer caches whole manifests, so `eval` then reuses
    # the same cache file.
    cache_dir = cfg.cache_dir if cfg.cache_dir is not None else "default"
    arrays = load_split(table, None, cfg.image_size, cfg.color_mode, cache_dir=cache_dir)
    failed = {path for path, _ in arrays.failures}
    split_of_path = dict(zip(table["path"], splits))
    split_of_row = splits[~table["path"].isin(failed).to_numpy()]
    if len(split_of_row) != len(arrays):  # Duplicate paths with mixed outcomes; cannot happen
        raise DataError(f"Manifest '{cfg.manifest}' lists some image paths twice; re-run "
                        "`maskmtl split`.")
    labels = {spec.name: task_targets(arrays.rows, spec) for spec in specs}
    has = {spec.name: known(labels[spec.name], spec) for spec in specs}
    masks = None
    if cfg.segmentation:
        masks, has[SEGMENTATION] = load_masks(_mask_paths(arrays.rows, cfg.manifest),
                                              cfg.image_size, cache_dir)
        labels[SEGMENTATION] = has[SEGMENTATION].astype("float32")
    keep = _rows_to_keep(cfg, has, split_of_row)
    parts, dropped = _split_parts(cfg, arrays.images, _typed_targets(labels, specs), masks,
                                  (splits, split_of_row), keep)
    _check_trainable(specs, parts["train"][1], cfg)
    data = TrainingData(
        train_images=parts["train"][0], train_targets=parts["train"][1],
        val_images=parts["val"][0], val_targets=parts["val"][1],
        **_label_statistics(parts["train"][1], specs),
        tasks=specs, train_masks=parts["train"][2], val_masks=parts["val"][2],
        dropped={split: count for split, count in dropped.items() if count},
        failures=[item for item in arrays.failures
                  if split_of_path.get(item[0]) in ("train", "val")],
        warnings=small_data_warnings(len(parts["train"][0]), len(parts["val"][0])),
    )
    if not cfg.face_mix or cfg.segmentation:
        return data
    from maskmtl_cli.io import default_cache_dir
    from maskmtl_cli.training.face_mix import with_face_versions

    rows = {split: arrays.rows[(split_of_row == split) & keep] for split in ("train", "val")}
    return with_face_versions(cfg, data, rows, default_cache_dir() if cache_dir == "default"
                              else cache_dir)


def _split_parts(cfg, images, targets: dict, masks, splits: tuple, keep: np.ndarray):
    """(images, targets, masks) of the train and val splits, and the rows left out of each.

    Raises:
        DataError: A split has no readable (or no labelled) image left.
    """
    all_splits, split_of_row = splits
    parts, dropped = {}, {}
    for split in ("train", "val"):
        in_split = split_of_row == split
        rows = in_split & keep
        dropped[split] = int((in_split & ~keep).sum())
        if not rows.any():
            reason = "readable" if not (in_split & ~keep).any() else "labelled"
            unreadable = int((all_splits == split).sum()) - int(in_split.sum())
            raise DataError(
                f"No {reason} images left in the {split} split of '{cfg.manifest}' "
                f"({unreadable} could not be read, {dropped[split]} lack labels). "
                "Check the image paths in the manifest, or re-run `maskmtl split`."
            )
        parts[split] = (images[rows], {name: values[rows] for name, values in targets.items()},
                        None if masks is None else masks[rows])
    return parts, dropped


def _check_splits(table, manifest) -> np.ndarray:
    """The split column; DataError when train or val rows are missing."""
    splits = table["split"].to_numpy()
    present = sorted({s for s in splits if s})
    for split, meaning in (("train", "training"), ("val", "validation")):
        if not (splits == split).any():
            raise DataError(
                f"Manifest '{manifest}' has no {meaning} rows (split '{split}'; splits "
                f"present: {', '.join(present) or 'none'}). Re-run `maskmtl split` to make "
                "train/val/test splits, or set the split column."
            )
    return splits


def _mask_paths(rows, manifest) -> list[str]:
    """Each row's ground-truth mask file; DataError when the manifest names none."""
    if MASK_COLUMN not in rows.columns or not rows[MASK_COLUMN].astype(bool).any():
        raise DataError(
            f"--segmentation needs ground-truth masks, and manifest '{manifest}' has no "
            f"'{MASK_COLUMN}' column. Mask the photos with `maskmtl mask --save-masks`, then "
            "split the output folder: `maskmtl split` records each image's mask.")
    return [path if isinstance(path, str) else "" for path in rows[MASK_COLUMN]]


def _rows_to_keep(cfg, has: dict[str, np.ndarray], split_of_row: np.ndarray) -> np.ndarray:
    """Rows that train, by ``cfg.missing_labels``; DataError for "require" with gaps.

    "mask" keeps every row with at least one label (a missing one is masked out of its task's
    loss); "drop" keeps only rows with every label.
    """
    names = [*cfg.task_names, *([SEGMENTATION] if cfg.segmentation else [])]
    complete = np.logical_and.reduce([has[name] for name in names])
    if cfg.missing_labels == "mask":
        return np.logical_or.reduce([has[name] for name in names])
    if cfg.missing_labels == "require" and not complete.all():
        task = next(name for name in names if not has[name].all())
        counts = {s: int((~has[task] & (split_of_row == s)).sum()) for s in ("train", "val")}
        what = _MISSING.get(task, "no mask" if task == SEGMENTATION else f"no '{task}' label")
        if counts["train"] + counts["val"]:
            raise DataError(
                f"{counts['train']} train and {counts['val']} val images have {what}, which "
                f"--tasks {','.join(cfg.task_names)} needs. Pass --missing-labels mask to leave "
                "them out of that task's loss only, or --missing-labels drop to train without "
                "them.")
        return complete | ~np.isin(split_of_row, ("train", "val"))
    return complete


def _typed_targets(labels: dict, specs) -> dict[str, np.ndarray]:
    """Targets as ``MultiTaskTrainer`` takes them (gender float32, classes int32)."""
    typed = {}
    for spec in specs:
        values = labels[spec.name]
        typed[spec.name] = values.astype("float32" if spec.kind == REGRESSION
                                         or spec.name == "gender" else "int32")
    if SEGMENTATION in labels:
        typed[SEGMENTATION] = labels[SEGMENTATION]
    return typed


def _check_trainable(specs, targets: dict, cfg) -> None:
    """DataError for a task without a single training label."""
    from maskmtl_cli.data.task_labels import known

    for spec in specs:
        if not known(targets[spec.name], spec).any():
            raise DataError(f"Task '{spec.name}' has no label in the train split of "
                            f"'{cfg.manifest}'; label some training images or leave it out of "
                            "--tasks.")
    if cfg.segmentation and not targets[SEGMENTATION].any():
        raise DataError(f"No training image of '{cfg.manifest}' has a readable ground-truth "
                        "mask; check the 'mask' column.")


def _label_statistics(targets: dict, specs) -> dict:
    """Age mean/std (years and log), the ethnicity prior, other regressions' mean/std."""
    from maskmtl_cli.data.task_labels import known

    stats = {"age_mean": _DEFAULT_AGE_MEAN, "age_std": _DEFAULT_AGE_STD,
             "age_log_mean": float(np.log1p(_DEFAULT_AGE_MEAN)), "age_log_std": 0.8,
             "race_prior": (0.2,) * 5, "regression_stats": {}}
    for spec in specs:
        values = targets[spec.name][known(targets[spec.name], spec)]
        if spec.name == "age":
            stats["age_mean"] = float(values.mean())
            stats["age_std"] = max(float(values.std()), 1.0)
            log_ages = np.log1p(np.maximum(values, 0.0))
            stats["age_log_mean"] = float(log_ages.mean())
            stats["age_log_std"] = max(float(log_ages.std()), 0.05)
        elif spec.name == "race":
            # Every class gets at least one count, so its log prior stays finite.
            counts = np.bincount(values, minlength=5)[:5] + 1.0
            stats["race_prior"] = tuple(float(share) for share in counts / counts.sum())
        elif spec.kind == REGRESSION:
            std = float(values.std())
            stats["regression_stats"][spec.name] = (float(values.mean()),
                                                    std if std > 0 else 1.0)
    return stats


def small_data_warnings(train: int, val: int) -> list[str]:
    """What to tell the user when the train or val split is too small to trust."""
    warnings = []
    if train < SMALL_TRAIN:
        warnings.append(f"Only {train} training image{'s' if train != 1 else ''}: far too few "
                        "to learn from; the model can at best memorise them.")
    if val < SMALL_VAL:
        warnings.append(f"Only {val} validation image{'s' if val != 1 else ''}: validation "
                        "metrics (and the best epoch picked by them) are mostly chance. Use more "
                        "images or a larger val share (`maskmtl split --ratios`).")
    return warnings
