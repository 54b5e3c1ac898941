"""What ``maskmtl eval`` scores, read from manifest rows: labels per task, fairness groups, and
the segmentation head's ground-truth masks.

The model's task specs (``inference.task_specs``) say which column each task reads and how its
labels map to the model's outputs (``data.task_labels``); ``--group-by`` names any columns of
the manifest to group the fairness breakdown by.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskmtl_cli.errors import DataError
from maskmtl_cli.tasks import CLASSIFICATION, GENDER_NAMES, MASK_COLUMN, RACE_NAMES


def labelled_tasks(rows, specs) -> list[str]:
    """Tasks of the model with at least one label in ``rows``."""
    return [spec.name for spec in specs
            if spec.name in rows.columns and rows[spec.name].notna().any()]


def task_labels(rows, specs) -> dict[str, np.ndarray]:
    """Label arrays of the model's tasks that the manifest has a column for."""
    from maskmtl_cli.data.task_labels import task_targets

    return {spec.name: task_targets(rows, spec) for spec in specs if spec.name in rows.columns}


def fairness_groups(rows, columns: tuple[str, ...], specs, manifest
                    ) -> tuple[dict[str, np.ndarray] | None, dict[str, list]]:
    """Group value of each row per ``--group-by`` column, and each column's display order.

    A column that is a classification task of the model is named by its classes, gender and
    race by UTKFace's names, any other column by its values as written. Empty ``columns``
    gives (None, {}): the default grouping (gender x ethnicity).

    Raises:
        DataError: A column the manifest does not have.
    """
    from maskmtl_cli.data.task_labels import class_key, label_columns, task_targets
    from maskmtl_cli.evaluation.fairness import class_groups

    if not columns:
        return None, {}
    by_name = {spec.name: spec for spec in specs}
    groups, order = {}, {}
    for column in columns:
        if column not in rows.columns:
            raise DataError(f"--group-by {column}: manifest {manifest} has no such column "
                            f"(label columns: {', '.join(label_columns(rows))}).")
        spec = by_name.get(column)
        if spec is not None and spec.kind == CLASSIFICATION:
            groups[column], order[column] = class_groups(task_targets(rows, spec), spec.classes), \
                list(spec.classes)
        elif column in ("gender", "race"):
            names = GENDER_NAMES if column == "gender" else RACE_NAMES
            ids = rows[column].astype("float64").fillna(-1).to_numpy().astype(np.int64)
            groups[column], order[column] = class_groups(ids, names), list(names)
        else:
            values = [class_key(value) or "" for value in rows[column].tolist()]
            groups[column] = np.array(values, dtype=object)
    return groups, order


def score_segmentation(rows, predicted: np.ndarray | None, size: int, options,
                       cache_dir) -> tuple[dict[str, Any] | None, str | None, np.ndarray | None]:
    """The segmentation head's IoU and Dice on the rows that have a ground-truth mask.

    Args:
        rows: The evaluated rows (in the order of ``predicted``).
        predicted: (N, size, size) mask probabilities, or None when the model has no head.
        size: The model's input size (the masks are loaded at it).
        options: ``MetricOptions`` (bootstrap resamples, seed, confidence).
        cache_dir: Image cache folder.

    Returns:
        (metrics or None, why it was not scored or None, per-image IoU with NaN where a row
        has no mask, or None).
    """
    from maskmtl_cli.data.dataset import load_masks
    from maskmtl_cli.evaluation.metrics import segmentation_metrics

    if predicted is None:
        return None, None, None
    if MASK_COLUMN not in rows.columns or not rows[MASK_COLUMN].astype(bool).any():
        return None, "no ground-truth masks in the evaluated rows (manifest column 'mask')", None
    paths = [path if isinstance(path, str) else "" for path in rows[MASK_COLUMN]]
    masks, have = load_masks(paths, size, cache_dir)
    if not have.any():
        return None, "none of the ground-truth masks could be read", None
    metrics = segmentation_metrics(masks[have, :, :, 0], predicted[have])
    per_image = np.full(len(rows), np.nan)
    per_image[have] = metrics.pop("per_image_iou")
    metrics["interval"] = _mean_interval(per_image[have], options)
    return metrics, None, per_image


def _mean_interval(values: np.ndarray, options) -> dict[str, float] | None:
    """Percentile bootstrap interval of a mean (``options``' resamples, seed, confidence)."""
    from maskmtl_cli.evaluation.bootstrap import resample_indices

    if options.bootstrap <= 0 or not len(values):
        return None
    means = np.concatenate([values[indices].mean(axis=1) for indices in
                            resample_indices(len(values), options.bootstrap, options.seed)])
    tail = 100 * (1 - options.confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"low": float(low), "high": float(high)}
