"""Percentile bootstrap confidence intervals of the headline evaluation metrics.

Faces are resampled with replacement and the headline statistics are recomputed for each
resample, vectorised over chunks of resamples (see ``bootstrap_intervals``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from maskmtl_cli.eval_config import MetricOptions
from maskmtl_cli.scoring import (
    known_mask,
    macro_mean,
    n_classes,
    predicted_classes,
    safe_ratio,
    scores_from_confusion,
)


def resample_indices(n: int, n_resamples: int, seed: int, chunk: int = 100):
    """Yield bootstrap index arrays of shape (b, n), b <= chunk, from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_resamples - start), n))


def _resampled_statistics(labels, predictions, tasks, options, indices,
                          regression=("age",)) -> dict[str, np.ndarray]:
    """Headline statistics for each resample in ``indices`` (b, n), vectorised per chunk."""
    stats: dict[str, np.ndarray] = {}
    for task in tasks:
        known = known_mask(labels, task, task in regression).astype(float)[indices]
        count = known.sum(axis=1)
        if task in regression:
            error = np.nan_to_num(np.asarray(predictions[task], float)
                                  - np.asarray(labels[task], float))[indices]
            stats[f"{task}_mae"] = safe_ratio((np.abs(error) * known).sum(axis=1), count)
            stats[f"{task}_rmse"] = np.sqrt(safe_ratio((error ** 2 * known).sum(axis=1), count))
            if task == "age":
                stats["age_cs"] = safe_ratio(
                    ((np.abs(error) <= options.cs_threshold) * known).sum(axis=1), count)
        else:
            k = n_classes(task, predictions)
            true = np.clip(np.asarray(labels[task]).astype(np.int64), 0, None)[indices]
            pred = predicted_classes(predictions, task, options.gender_threshold)[indices]
            offsets = np.arange(len(indices))[:, None] * k * k  # one K x K block per resample
            matrices = np.bincount((offsets + true * k + pred).ravel(), weights=known.ravel(),
                                   minlength=len(indices) * k * k).reshape(len(indices), k, k)
            scores = scores_from_confusion(matrices)
            stats[f"{task}_accuracy"] = safe_ratio(np.trace(matrices, axis1=1, axis2=2), count)
            stats[f"{task}_macro_f1"] = macro_mean(scores["f1"], scores["present"])
        for name in [f"{task}_{metric}" for metric in ("mae", "rmse", "cs", "accuracy",
                                                       "macro_f1")]:
            if name in stats:
                stats[name] = np.where(count > 0, stats[name], np.nan)
    return stats


def bootstrap_intervals(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray],
                        tasks: tuple[str, ...], options: MetricOptions,
                        regression: tuple[str, ...] = ("age",)) -> dict[str, dict]:
    """Percentile bootstrap intervals of the headline metrics.

    Faces are resampled with replacement (the same resamples for every task, so paired
    differences between tasks stay meaningful). Resamples in which a task has no known label are
    ignored for that task. Deterministic for a given ``options.seed``. ``regression`` names the
    regression tasks (MAE and RMSE; age also CS); the others are classification tasks.

    Returns:
        ``task_metric`` -> ``{"low", "high"}``; empty when ``options.bootstrap`` is 0.
    """
    n = len(next(iter(labels.values())))
    if options.bootstrap <= 0 or n == 0:
        return {}
    samples: dict[str, list[np.ndarray]] = {}
    for indices in resample_indices(n, options.bootstrap, options.seed):
        for name, values in _resampled_statistics(labels, predictions, tasks, options,
                                                  indices, regression).items():
            samples.setdefault(name, []).append(values)
    tail = 100 * (1 - options.confidence) / 2
    intervals = {}
    for name, parts in samples.items():
        values = np.concatenate(parts)
        values = values[~np.isnan(values)]
        if len(values):
            low, high = np.percentile(values, [tail, 100 - tail])
            intervals[name] = {"low": float(low), "high": float(high)}
    return intervals

