"""Training and validation arrays from a manifest: uint8 images in memory, label checks.

Images stay uint8 (a quarter of float32's memory, and of the bytes sent to a GPU); the model
casts them. Labels come back as the targets ``MultiTaskTrainer`` expects: ``age`` float32 years,
``gender`` float32 0/1, ``race`` int32 class ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import DataError, InputError

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
    dropped: dict[str, int] = field(default_factory=dict)  # split -> rows without a label
    failures: list[tuple[str, str]] = field(default_factory=list)  # unreadable images
    warnings: list[str] = field(default_factory=list)  # for people: data too small to trust


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
        The arrays, age statistics of the training labels and what was dropped.

    Raises:
        DataError: No train or val rows, no readable images, or labels missing for a trained
            task (unless ``cfg.drop_missing``).
    """
    from maskmtl_cli.data.dataset import load_split
    from maskmtl_cli.data.manifest import read_manifest

    table = read_manifest(cfg.manifest)
    splits = table["split"].to_numpy()
    present = sorted({s for s in splits if s})
    for split, meaning in (("train", "training"), ("val", "validation")):
        if not (splits == split).any():
            raise DataError(
                f"Manifest '{cfg.manifest}' has no {meaning} rows (split '{split}'; splits "
                f"present: {', '.join(present) or 'none'}). Re-run `maskmtl split` to make "
                "train/val/test splits, or set the split column."
            )
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
    labels = {
        "age": arrays.age.astype("float32"),
        "gender": arrays.gender.astype("int16"),
        "race": arrays.race.astype("int16"),
    }
    missing = {
        task: (np.isnan(labels[task]) if task == "age" else labels[task] < 0) for task in cfg.tasks
    }
    any_missing = np.zeros(len(arrays), dtype=bool)
    for task in cfg.tasks:
        any_missing |= missing[task]
    if any_missing.any() and not cfg.drop_missing:
        task = next(t for t in cfg.tasks if missing[t].any())
        counts = {s: int((missing[task] & (split_of_row == s)).sum()) for s in ("train", "val")}
        others = [t for t in cfg.tasks if t != task]
        fix = f" or leave the task out with --tasks {','.join(others)}" if others else ""
        raise DataError(
            f"{counts['train']} train and {counts['val']} val images have {_MISSING[task]}, "
            f"which --tasks {','.join(cfg.tasks)} needs. Pass --drop-missing to train without "
            f"them{fix}."
        )
    parts = {}
    dropped = {}
    for split in ("train", "val"):
        in_split = split_of_row == split
        keep = in_split & ~any_missing
        dropped[split] = int((in_split & any_missing).sum())
        if not keep.any():
            reason = "readable" if not (in_split & any_missing).any() else "fully labelled"
            unreadable = int((splits == split).sum()) - int(in_split.sum())
            raise DataError(
                f"No {reason} images left in the {split} split of '{cfg.manifest}' "
                f"({unreadable} could not be read, {dropped[split]} lack labels). "
                "Check the image paths in the manifest, or re-run `maskmtl split`."
            )
        targets = {}
        if "age" in cfg.tasks:
            targets["age"] = labels["age"][keep].astype("float32")
        if "gender" in cfg.tasks:
            targets["gender"] = labels["gender"][keep].astype("float32")
        if "race" in cfg.tasks:
            targets["race"] = labels["race"][keep].astype("int32")
        parts[split] = (arrays.images[keep], targets)
    age_mean, age_std = _DEFAULT_AGE_MEAN, _DEFAULT_AGE_STD
    log_mean, log_std = float(np.log1p(age_mean)), 0.8
    if "age" in cfg.tasks:
        ages = parts["train"][1]["age"]
        age_mean, age_std = float(ages.mean()), max(float(ages.std()), 1.0)
        log_ages = np.log1p(np.maximum(ages, 0.0))
        log_mean, log_std = float(log_ages.mean()), max(float(log_ages.std()), 0.05)
    race_prior = (0.2,) * 5
    if "race" in cfg.tasks:
        # Every class gets at least one count, so its log prior stays finite.
        counts = np.bincount(parts["train"][1]["race"], minlength=5)[:5] + 1.0
        race_prior = tuple(float(share) for share in counts / counts.sum())
    return TrainingData(
        train_images=parts["train"][0],
        train_targets=parts["train"][1],
        val_images=parts["val"][0],
        val_targets=parts["val"][1],
        age_mean=age_mean,
        age_std=age_std,
        age_log_mean=log_mean,
        age_log_std=log_std,
        race_prior=race_prior,
        dropped={split: count for split, count in dropped.items() if count},
        failures=[item for item in arrays.failures
                  if split_of_path.get(item[0]) in ("train", "val")],
        warnings=small_data_warnings(len(parts["train"][0]), len(parts["val"][0])),
    )


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
