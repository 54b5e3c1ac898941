"""Percentile bootstrap confidence intervals of the headline evaluation metrics.

Faces are resampled with replacement and the headline statistics are recomputed for each
resample, vectorised over chunks of resamples (see ``bootstrap_intervals``).
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
from scipy.stats import DegenerateDataWarning

from maskmtl_cli.evaluation.config import MetricOptions
from maskmtl_cli.evaluation.scoring import (
    known_mask,
    macro_mean,
    n_classes,
    predicted_classes,
    safe_ratio,
    scores_from_confusion,
)

#: Resamples whose statistics are computed at once.
CHUNK = 100


def resample_indices(n: int, n_resamples: int, seed: int, chunk: int = CHUNK):
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
    """Percentile bootstrap intervals of the headline metrics (``scipy.stats.bootstrap``).

    Faces are resampled with replacement (the same resamples for every task, so paired
    differences between tasks stay meaningful). Resamples in which a task has no known label are
    ignored for that task. Deterministic for a given ``options.seed``. ``regression`` names the
    regression tasks (MAE and RMSE; age also CS); the others are classification tasks.

    SciPy draws the resamples (``default_rng(seed).integers`` in chunks of ``CHUNK``, the
    draws ``resample_indices`` gives) and takes the percentiles; the statistics of a chunk of
    resamples are computed at once from index arrays, one confusion matrix per resample.

    Returns:
        ``task_metric`` -> ``{"low", "high"}``; empty when ``options.bootstrap`` is 0.
    """
    from scipy.stats import bootstrap

    n = len(next(iter(labels.values())))
    if options.bootstrap <= 0 or n == 0:
        return {}
    names: list[str] = []

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        stats = _resampled_statistics(labels, predictions, tasks, options,
                                      np.atleast_2d(indices), regression)
        names[:] = stats
        return np.stack([stats[name] for name in names]).reshape(len(names), *indices.shape[:-1])

    with warnings.catch_warnings():  # a statistic that is NaN in some resamples: see below
        warnings.simplefilter("ignore", category=DegenerateDataWarning)
        result = bootstrap((np.arange(n),), statistic, n_resamples=options.bootstrap,
                           batch=CHUNK, vectorized=True, method="percentile",
                           confidence_level=options.confidence,
                           rng=np.random.default_rng(options.seed))
    low, high = result.confidence_interval
    intervals = {}
    for row, name in enumerate(names):
        values = result.bootstrap_distribution[row]
        if np.isnan(values).any():  # a task without known labels in some resamples: skip those
            values = values[~np.isnan(values)]
            if not len(values):
                continue
            tail = 100 * (1 - options.confidence) / 2
            low[row], high[row] = np.percentile(values, [tail, 100 - tail])
        intervals[name] = {"low": float(low[row]), "high": float(high[row])}
    return intervals
