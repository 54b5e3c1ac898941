"""Evaluation metrics for age, gender and ethnicity predictions, computed from plain arrays.

Everything here is pure: arrays in, JSON-ready dictionaries out, no files and no printing, so
the metrics can be checked in milliseconds against scikit-learn and by hand.

Conventions (the same as the manifest and ``maskmtl_cli.inference.predict_arrays``):

* labels: ``age`` float years (NaN unknown), ``gender`` int 0 male / 1 female (-1 unknown),
  ``race`` int 0..4 (-1 unknown);
* predictions: ``age`` (N,) years, ``gender`` (N,) probability of female, ``race`` (N, K)
  class probabilities.

A task is scored only when the model predicts it and at least one row has a known label for it;
rows whose label is unknown are left out of that task's metrics only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from maskmtl_cli.bootstrap import bootstrap_intervals
from maskmtl_cli.bootstrap import resample_indices  # noqa: F401  (re-exported)
from maskmtl_cli.errors import DataError
from maskmtl_cli.eval_config import MetricOptions
from maskmtl_cli.scoring import (
    known_mask,
    macro_mean,
    n_classes,
    predicted_classes,
    safe_ratio,
    scores_from_confusion,
)

CLASS_TASKS = ("gender", "race")
#: Headline numbers that get bootstrap intervals, as (task, metric) pairs.
HEADLINE = (("gender", "accuracy"), ("gender", "macro_f1"), ("race", "accuracy"),
            ("race", "macro_f1"), ("age", "mae"), ("age", "rmse"), ("age", "cs"))
#: Above this share of faces with one and the same prediction (and at least
#: ``COLLAPSE_MIN_FACES`` faces), a head counts as collapsed.
COLLAPSE_WARNING_SHARE = 0.02
COLLAPSE_MIN_FACES = 5
#: Per-group metrics of the fairness breakdown, and whether higher is better.
GROUP_METRICS = {"gender_accuracy": True, "race_accuracy": True, "age_mae": False,
                 "age_rmse": False, "age_cs": True}


@dataclass(frozen=True)
class EvalResult:
    """All metrics of one evaluation, as JSON-ready dictionaries.

    Attributes:
        n: Number of faces evaluated.
        tasks: Tasks that were scored.
        skipped: Task name -> why it was not scored.
        classification: ``gender`` / ``race`` -> accuracy, per-class scores, averages, confusion.
        age: Age metrics, or None when age was not scored.
        fairness: Per-group breakdown with worst group and gap, or None without group labels.
        intervals: Headline metric -> estimate and bootstrap interval.
        options: The options used.
    """

    n: int
    tasks: tuple[str, ...]
    skipped: dict[str, str]
    classification: dict[str, dict[str, Any]]
    age: dict[str, Any] | None
    fairness: dict[str, Any] | None
    intervals: dict[str, dict[str, Any]]
    options: MetricOptions = field(default_factory=MetricOptions)

    def headline(self) -> dict[str, float | None]:
        """The headline numbers as ``task_metric`` -> value (only scored tasks)."""
        return _headline(self.classification, self.age)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (unknown values are ``None``)."""
        options = {name: getattr(self.options, name) for name in self.options.__dataclass_fields__}
        options["age_band_edges"] = list(self.options.age_band_edges)
        return {"n": self.n, "tasks": list(self.tasks), "skipped": self.skipped,
                "headline": self.headline(), "intervals": self.intervals,
                "classification": self.classification, "age": self.age,
                "fairness": self.fairness, "options": options}


def _headline(classification: dict, age: dict | None) -> dict[str, float | None]:
    sources = {**classification, "age": age}
    return {f"{task}_{metric}": sources[task][metric]
            for task, metric in HEADLINE if sources.get(task) is not None}


def _clean(value: float) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    value = float(value)
    return value if np.isfinite(value) else None


def error_summary(error: np.ndarray, cs_threshold: float) -> dict[str, float | None]:
    """MAE, RMSE, mean signed error (bias) and CS(t) of age errors (predicted - true), in years."""
    if len(error) == 0:
        return {"mae": None, "rmse": None, "bias": None, "cs": None}
    absolute = np.abs(error)
    return {"mae": _clean(absolute.mean()), "rmse": _clean(np.sqrt((error ** 2).mean())),
            "bias": _clean(error.mean()), "cs": _clean((absolute <= cs_threshold).mean())}


def is_collapsed(summary: dict[str, Any]) -> bool:
    """Whether a ``collapse_summary`` shows a collapsed head."""
    shared = summary["share"] * summary["n"]
    return summary["share"] > COLLAPSE_WARNING_SHARE and shared >= COLLAPSE_MIN_FACES


def collapse_summary(task: str, values: np.ndarray) -> dict[str, Any]:
    """The most common prediction of a task and the share of faces that get it.

    A healthy head gives nearly every face its own value; a collapsed one (dead units, so only
    a bias is left) gives many faces exactly the same. Ages are compared to 0.01 years and
    probability vectors to 1e-4; confident class predictions (top probability above 0.999)
    legitimately coincide and are not counted.

    Returns:
        ``{"value": ..., "share": ..., "n": ...}`` (value None when nothing is shared).
    """
    values = np.asarray(values, float)
    if len(values) == 0:
        return {"value": None, "share": 0.0, "n": 0}
    if task == "age":
        keys = np.round(values.reshape(len(values), -1), 2)
    else:
        keys = np.round(values.reshape(len(values), -1), 4)
        if keys.shape[1] == 1:
            keys = np.concatenate([keys, 1.0 - keys], axis=1)
        keys = keys[keys.max(axis=1) <= 0.999]
    if len(keys) == 0:
        return {"value": None, "share": 0.0, "n": len(values)}
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    best = int(np.argmax(counts))
    share = float(counts[best]) / len(values)
    value = unique[best].tolist() if task != "age" else float(unique[best][0])
    if task == "gender":
        value = value[0]
    return {"value": value if counts[best] > 1 else None,
            "share": share if counts[best] > 1 else 0.0, "n": len(values)}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class): rows are true classes, columns predictions."""
    codes = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows without any faces stay 0), i.e. per-class recall."""
    return safe_ratio(matrix, matrix.sum(axis=1, keepdims=True))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro and weighted averages, confusion matrices.

    Args:
        y_true: True class indices (only known labels).
        y_pred: Predicted class indices, same length.
        classes: One name per class; its length sets the number of classes.

    Returns:
        A JSON-ready dictionary. Macro averages are taken over the classes that occur in
        ``y_true`` or ``y_pred``; weighted averages weight each class by its support.
        ``majority_accuracy`` is the share of the most frequent true class: what always
        predicting that class would score.
    """
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    scores = scores_from_confusion(matrix)
    support = scores["support"]
    total = int(support.sum())
    result: dict[str, Any] = {
        "n": total, "classes": list(classes),
        "accuracy": _clean(safe_ratio(np.trace(matrix), total)),
        "majority_accuracy": _clean(safe_ratio(support.max(initial=0), total)),
        "per_class": [
            {"class": name, "precision": float(scores["precision"][k]),
             "recall": float(scores["recall"][k]), "f1": float(scores["f1"][k]),
             "support": int(support[k])}
            for k, name in enumerate(classes)
        ],
    }
    for metric in ("precision", "recall", "f1"):
        result[f"macro_{metric}"] = float(macro_mean(scores[metric], scores["present"]))
        result[f"weighted_{metric}"] = float(safe_ratio((scores[metric] * support).sum(), total))
    result["confusion"] = matrix.tolist()
    result["confusion_normalized"] = row_normalize(matrix).round(6).tolist()
    return result


def band_labels(edges: tuple[float, ...]) -> list[str]:
    """Names of the age bands, e.g. ``0-9``, ``10-19``, ..., ``80+`` for decade edges."""
    names = [f"{low:g}-{high - 1:g}" for low, high in zip(edges[:-1], edges[1:])]
    return names + [f"{edges[-1]:g}+"]


def age_metrics(true_age: np.ndarray, predicted_age: np.ndarray, *, cs_threshold: float = 5.0,
                band_edges: tuple[float, ...] = MetricOptions.age_band_edges) -> dict[str, Any]:
    """Age errors in years: MAE, RMSE, mean signed error, CS(t), and MAE per band of true age.

    ``constant_baseline`` holds what the best constant guess would score on these very faces
    (the median true age for MAE and CS, the mean for RMSE): a floor any model must beat.

    Args:
        true_age: True ages (only known labels).
        predicted_age: Predicted ages, same length.
        cs_threshold: CS(t) counts faces whose absolute error is at most this many years.
        band_edges: Lower band edges in years, increasing; the last band is open-ended.
    """
    true_age = np.asarray(true_age, float)
    error = np.asarray(predicted_age, float) - true_age
    band_index = np.searchsorted(np.asarray(band_edges, float), true_age, side="right") - 1
    bands = []
    for index, name in enumerate(band_labels(band_edges)):
        in_band = band_index == index
        summary = error_summary(error[in_band], cs_threshold)
        bands.append({"band": name, "n": int(in_band.sum()), "mae": summary["mae"],
                      "bias": summary["bias"]})
    baseline = {}
    if len(true_age):
        median = error_summary(np.median(true_age) - true_age, cs_threshold)
        mean = error_summary(np.mean(true_age) - true_age, cs_threshold)
        baseline = {"mae": median["mae"], "cs": median["cs"], "rmse": mean["rmse"]}
    return {"n": len(true_age), **error_summary(error, cs_threshold),
            "cs_threshold": cs_threshold, "bands": bands, "constant_baseline": baseline,
            "collapse": collapse_summary("age", predicted_age)}


def class_names(task: str, count: int) -> tuple[str, ...]:
    """Display names of a task's classes (``class k`` when ``count`` differs from the names)."""
    from maskmtl_cli.data.labels import GENDER_NAMES, RACE_NAMES

    names = GENDER_NAMES if task == "gender" else RACE_NAMES
    return tuple(names) if len(names) == count else tuple(f"class {k}" for k in range(count))


def _class_name(task: str, value: int) -> str:
    """The name of one class index (``class 7`` when it lies beyond the known names)."""
    names = class_names(task, 2 if task == "gender" else 5)
    return names[value] if value < len(names) else f"class {value}"


def _check_inputs(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray]) -> int:
    """The common number of rows; DataError on mismatched lengths or impossible labels."""
    lengths = {f"labels[{task}]": len(values) for task, values in labels.items()}
    lengths.update({f"predictions[{task}]": len(values) for task, values in predictions.items()})
    if len(set(lengths.values())) > 1:
        raise DataError(f"Labels and predictions differ in length: {lengths}.")
    for task in ("gender", "race"):
        if task not in labels or task not in predictions:
            continue
        values = np.asarray(labels[task]).astype(np.int64)
        count = n_classes(task, predictions)
        bad = (values < -1) | (values >= count)
        if bad.any():
            names = ", ".join(f"{k} ({name})" for k, name in enumerate(class_names(task, count)))
            raise DataError(
                f"{int(bad.sum())} {task} label(s) lie outside the model's classes "
                f"(found {sorted(set(values[bad].tolist()))}; the model predicts {names}; "
                f"-1 or empty means unknown). Fix those rows of the manifest.")
    if "age" in labels:
        ages = np.asarray(labels["age"], float)
        if (ages[~np.isnan(ages)] < 0).any():
            raise DataError("Negative age labels found in the manifest; ages are in years (>= 0).")
    return next(iter(lengths.values()), 0)


def _group_metrics(labels, predictions, tasks, rows, options) -> dict[str, float | None]:
    """The per-group metrics of GROUP_METRICS for the faces selected by ``rows``."""
    values: dict[str, float | None] = {}
    for task in tasks:
        known = rows & known_mask(labels, task)
        count = int(known.sum())
        if task == "age":
            error = np.asarray(predictions["age"], float) - np.asarray(labels["age"], float)
            summary = error_summary(error[known], options.cs_threshold)
            values.update({f"age_{name}": summary[name] for name in ("mae", "rmse", "cs")})
        else:
            hits = predicted_classes(predictions, task, options.gender_threshold)[known] == \
                np.asarray(labels[task]).astype(np.int64)[known]
            values[f"{task}_accuracy"] = _clean(hits.mean()) if count else None
    return values


def fairness_breakdown(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray],
                       tasks: tuple[str, ...], options: MetricOptions) -> dict[str, Any] | None:
    """Every scored metric per gender x ethnicity group of the true labels, worst group and gap.

    Groups are formed from whichever of gender and race labels exist (both when possible).
    Within a group the true class is fixed, so a group's accuracy equals that class's recall.
    Groups smaller than ``options.min_group_size`` are listed but not ranked.

    Returns:
        ``None`` when there are no gender or race labels to group by.
    """
    group_by = [task for task in CLASS_TASKS if task in labels and known_mask(labels, task).any()]
    if not group_by:
        return None
    keys = np.stack([np.asarray(labels[task]).astype(np.int64) for task in group_by], axis=1)
    keys = keys[(keys >= 0).all(axis=1)]
    groups = []
    for key in np.unique(keys, axis=0):
        rows = np.ones(len(np.asarray(labels[group_by[0]])), bool)
        names = {}
        for task, value in zip(group_by, key):
            rows &= np.asarray(labels[task]).astype(np.int64) == value
            names[task] = _class_name(task, int(value))
        group = {"group": " / ".join(names.values()), **names, "n": int(rows.sum())}
        group.update(_group_metrics(labels, predictions, tasks, rows, options))
        groups.append(group)
    ranked = [group for group in groups if group["n"] >= options.min_group_size]
    summary = {}
    for metric, higher_is_better in GROUP_METRICS.items():
        scored = [group for group in ranked if group.get(metric) is not None]
        if not scored:
            continue
        ordered = sorted(scored, key=lambda group: group[metric], reverse=higher_is_better)
        best, worst = ordered[0], ordered[-1]
        summary[metric] = {"best": best["group"], "best_value": best[metric],
                           "worst": worst["group"], "worst_value": worst[metric],
                           "gap": abs(best[metric] - worst[metric]),
                           "higher_is_better": higher_is_better}
    return {"group_by": group_by, "min_group_size": options.min_group_size,
            "groups": groups, "summary": summary,
            "unranked": [group["group"] for group in groups if group["n"] < options.min_group_size]}


def evaluate_predictions(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray],
                         options: MetricOptions = MetricOptions()) -> EvalResult:
    """Score predictions against labels: all metric families, fairness and bootstrap intervals.

    Args:
        labels: ``age`` / ``gender`` / ``race`` arrays (unknown as NaN / -1); any may be absent.
        predictions: The model's outputs as returned by ``predict_arrays``; any may be absent.
        options: How to compute the metrics.

    Returns:
        The metrics. Tasks without predictions or without any known label are listed in
        ``skipped`` with the reason.

    Raises:
        DataError: Lengths differ, labels lie outside the model's classes, or nothing can be
            scored.
    """
    n = _check_inputs(labels, predictions)
    predictions = {task: (np.asarray(values, float).reshape(n, -1) if task == "race"
                          else np.asarray(values, float).reshape(-1))
                   for task, values in predictions.items()}
    tasks, skipped = [], {}
    for task in ("age", "gender", "race"):
        if task not in predictions:
            skipped[task] = "the model does not predict it"
        elif task not in labels or not known_mask(labels, task).any():
            skipped[task] = "no known labels in the evaluated rows"
        else:
            tasks.append(task)
    if not tasks:
        raise DataError(
            f"Nothing to score: the model predicts {sorted(predictions) or 'nothing'} but the "
            f"labels cover {[t for t in labels if known_mask(labels, t).any()] or 'no task'}. "
            "Use a manifest with labels for at least one of the model's tasks.")
    classification, age = {}, None
    for task in tasks:
        known = known_mask(labels, task)
        if task == "age":
            age = age_metrics(np.asarray(labels["age"], float)[known], predictions["age"][known],
                              cs_threshold=options.cs_threshold,
                              band_edges=options.age_band_edges)
        else:
            classification[task] = classification_metrics(
                np.asarray(labels[task]).astype(np.int64)[known],
                predicted_classes(predictions, task, options.gender_threshold)[known],
                class_names(task, n_classes(task, predictions)))
    intervals = bootstrap_intervals(labels, predictions, tuple(tasks), options)
    intervals = {name: {"estimate": value, **intervals[name]}
                 for name, value in _headline(classification, age).items() if name in intervals}
    return EvalResult(
        n=n, tasks=tuple(tasks), skipped=skipped, classification=classification, age=age,
        fairness=fairness_breakdown(labels, predictions, tuple(tasks), options),
        intervals=intervals, options=options)
