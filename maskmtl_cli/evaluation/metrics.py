"""Evaluation metrics for any task's predictions, computed from plain arrays.

Everything here is pure: arrays in, JSON-ready dictionaries out, no files and no printing, so
the metrics can be checked in milliseconds against scikit-learn and by hand.

Conventions (the same as the manifest, ``maskmtl_cli.data.task_labels`` and
``maskmtl_cli.inference.predict_arrays``):

* labels: ``age`` float years (NaN unknown), ``gender`` int 0 male / 1 female (-1 unknown),
  ``race`` int 0..4 (-1 unknown); any other classification task int class ids (-1 unknown),
  any other regression task floats (NaN unknown);
* predictions: ``age`` (N,) years, ``gender`` (N,) probability of female, ``race`` and other
  classification tasks (N, K) class probabilities, other regression tasks (N,) values.

Which task is which comes from the model's task specs (``maskmtl_cli.tasks``); without them,
UTKFace's three are assumed. A task is scored only when the model predicts it and at least one
row has a known label for it; rows whose label is unknown are left out of that task's metrics
only. Classification tasks get accuracy, per-class precision/recall/F1 and confusion matrices;
age gets MAE, RMSE, bias, CS(t) and MAE per age band; other regression tasks MAE, RMSE and bias.
The mask-segmentation head is scored by ``segmentation_metrics`` (IoU, Dice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from maskmtl_cli.errors import DataError
from maskmtl_cli.evaluation.bootstrap import (
    bootstrap_intervals,
    resample_indices,  # noqa: F401  (re-exported)
)
from maskmtl_cli.evaluation.collapse import (  # noqa: F401  (re-exported)
    COLLAPSE_MIN_FACES,
    COLLAPSE_WARNING_SHARE,
    collapse_summary,
    is_collapsed,
)
from maskmtl_cli.evaluation.config import MetricOptions
from maskmtl_cli.evaluation.fairness import GROUP_METRICS, fairness_breakdown  # noqa: F401  (re-exported)
from maskmtl_cli.evaluation.scoring import (
    known_mask,
    n_classes,
    predicted_classes,
    safe_ratio,
)
from maskmtl_cli.schema import age_band_labels, headline_pairs
from maskmtl_cli.tasks import (
    CLASSIFICATION,
    REGRESSION,
    UTKFACE_TASK_NAMES,
    UTKFACE_TASKS,
    TaskSpec,
    class_names,
)


@dataclass(frozen=True)
class EvalResult:
    """All metrics of one evaluation, as JSON-ready dictionaries.

    Attributes:
        n: Number of faces evaluated.
        tasks: Tasks that were scored.
        skipped: Task name -> why it was not scored.
        classification: Each classification task -> accuracy, per-class scores, averages,
            confusion.
        age: Age metrics, or None when age was not scored.
        regression: Each other regression task -> MAE, RMSE, bias.
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
    regression: dict[str, dict[str, Any]] = field(default_factory=dict)

    def headline(self) -> dict[str, float | None]:
        """The headline numbers as ``task_metric`` -> value (only scored tasks)."""
        return _headline(self.classification, self.age, self.regression)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (unknown values are ``None``)."""
        options = {name: getattr(self.options, name) for name in self.options.__dataclass_fields__}
        options["age_band_edges"] = list(self.options.age_band_edges)
        return {"n": self.n, "tasks": list(self.tasks), "skipped": self.skipped,
                "headline": self.headline(), "intervals": self.intervals,
                "classification": self.classification, "age": self.age,
                "regression": self.regression, "fairness": self.fairness, "options": options}


def _headline(classification: dict, age: dict | None,
              regression: dict | None = None) -> dict[str, float | None]:
    sources = {**classification, **(regression or {}), "age": age}
    return {f"{task}_{metric}": sources[task][metric]
            for task, metric in headline_pairs(classification, age, regression)}


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


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows without any faces stay 0), i.e. per-class recall."""
    return safe_ratio(matrix, matrix.sum(axis=1, keepdims=True))


def _class_scores(y_true: np.ndarray, y_pred: np.ndarray, count: int) -> dict[str, Any]:
    """scikit-learn's confusion matrix and precision/recall/F1: per class, macro (over the
    classes in ``y_true`` or ``y_pred``) and weighted by support; zero divisions give 0."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(count))
    if len(y_true) == 0:  # scikit-learn refuses empty inputs; every score is then 0
        zeros = np.zeros(count)
        return {"matrix": np.zeros((count, count), np.int64), "per_class": (zeros,) * 3,
                "support": zeros.astype(np.int64), "macro": (0.0,) * 3, "weighted": (0.0,) * 3}
    *per_class, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    macro = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                               average="weighted", zero_division=0)
    return {"matrix": confusion_matrix(y_true, y_pred, labels=labels), "per_class": per_class,
            "support": support, "macro": macro[:3], "weighted": weighted[:3]}


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
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    scores = _class_scores(y_true, y_pred, len(classes))
    matrix, support = scores["matrix"], scores["support"]
    precision, recall, f1 = scores["per_class"]
    total = int(support.sum())
    result: dict[str, Any] = {
        "n": total, "classes": list(classes),
        "accuracy": _clean(safe_ratio(np.trace(matrix), total)),
        "majority_accuracy": _clean(safe_ratio(support.max(initial=0), total)),
        "per_class": [
            {"class": name, "precision": float(precision[k]), "recall": float(recall[k]),
             "f1": float(f1[k]), "support": int(support[k])}
            for k, name in enumerate(classes)
        ],
    }
    for index, metric in enumerate(("precision", "recall", "f1")):
        result[f"macro_{metric}"] = float(scores["macro"][index])
        result[f"weighted_{metric}"] = float(scores["weighted"][index])
    result["confusion"] = matrix.tolist()
    result["confusion_normalized"] = row_normalize(matrix).round(6).tolist()
    return result


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
    for index, name in enumerate(age_band_labels(band_edges)):
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


def regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE and mean signed error of a regression task other than age (its units)."""
    true = np.asarray(true, float)
    error = np.asarray(predicted, float) - true
    summary = error_summary(error, 0.0)
    baseline = {}
    if len(true):
        baseline = {"mae": error_summary(np.median(true) - true, 0.0)["mae"],
                    "rmse": error_summary(np.mean(true) - true, 0.0)["rmse"]}
    return {"n": len(true), "mae": summary["mae"], "rmse": summary["rmse"],
            "bias": summary["bias"], "constant_baseline": baseline,
            "collapse": collapse_summary("", predicted, regression=True)}


def segmentation_metrics(true_masks: np.ndarray, predicted: np.ndarray,
                         threshold: float = 0.5) -> dict[str, Any]:
    """IoU and Dice of predicted masks against ground-truth masks.

    Args:
        true_masks: (N, H, W) ground truth, covered where >= 128 (uint8 0/255) or >= 0.5.
        predicted: (N, H, W) probabilities that a pixel is covered.
        threshold: Probability at or above which a predicted pixel is covered.

    Returns:
        ``iou``: mean over images of |P n Y| / |P u Y| (1 where both are empty); ``pooled_iou``:
        the same over all pixels of all images; ``dice``: mean per-image 2|P n Y| / (|P|+|Y|);
        ``pixel_accuracy``; ``n``; ``threshold``.
    """
    true = np.asarray(true_masks)
    true = true >= (128 if true.dtype == np.uint8 else 0.5)
    pred = np.asarray(predicted) >= threshold
    n = len(true)
    true, pred = true.reshape(n, -1), pred.reshape(n, -1)
    intersection = (true & pred).sum(axis=1).astype(float)
    union = (true | pred).sum(axis=1).astype(float)
    sizes = true.sum(axis=1) + pred.sum(axis=1)
    per_image = np.where(union > 0, safe_ratio(intersection, union), 1.0)
    dice = np.where(sizes > 0, safe_ratio(2 * intersection, sizes), 1.0)
    return {"n": n, "threshold": threshold, "iou": _clean(per_image.mean()) if n else None,
            "pooled_iou": _clean(safe_ratio(intersection.sum(), union.sum())) if n else None,
            "dice": _clean(dice.mean()) if n else None,
            "pixel_accuracy": _clean((true == pred).mean()) if n else None,
            "per_image_iou": per_image}


def default_specs(predictions: Mapping[str, np.ndarray]) -> tuple[TaskSpec, ...]:
    """UTKFace's specs for the UTKFace tasks among ``predictions`` (race at the output width)."""
    specs = []
    for spec in UTKFACE_TASKS:
        if spec.name in predictions:
            if spec.name == "race":
                width = np.asarray(predictions["race"]).shape[-1]
                spec = TaskSpec("race", CLASSIFICATION, class_names("race", width))
            specs.append(spec)
    return tuple(specs)


def _check_inputs(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray],
                  specs) -> int:
    """The common number of rows; DataError on mismatched lengths or impossible labels."""
    lengths = {f"labels[{task}]": len(values) for task, values in labels.items()}
    lengths.update({f"predictions[{task}]": len(values) for task, values in predictions.items()})
    if len(set(lengths.values())) > 1:
        raise DataError(f"Labels and predictions differ in length: {lengths}.")
    for spec in specs:
        task = spec.name
        if task not in labels or task not in predictions:
            continue
        if spec.kind == REGRESSION:
            values = np.asarray(labels[task], float)
            if task == "age" and (values[~np.isnan(values)] < 0).any():
                raise DataError("Negative age labels found in the manifest; ages are in years "
                                "(>= 0).")
            continue
        values = np.asarray(labels[task]).astype(np.int64)
        count = n_classes(task, predictions)
        bad = (values < -1) | (values >= count)
        if bad.any():
            names = ", ".join(f"{k} ({name})" for k, name in enumerate(spec.classes[:count]))
            raise DataError(
                f"{int(bad.sum())} {task} label(s) lie outside the model's classes "
                f"(found {sorted(set(values[bad].tolist()))}; the model predicts {names}; "
                f"-1 or empty means unknown). Fix those rows of the manifest.")
    return next(iter(lengths.values()), 0)


def _scored_tasks(labels, predictions, specs) -> tuple[list[TaskSpec], dict[str, str]]:
    """The tasks that can be scored, and why the others (and absent UTKFace tasks) cannot."""
    scored, skipped = [], {}
    names = [spec.name for spec in specs]
    for name in UTKFACE_TASK_NAMES:
        if name not in names:
            skipped[name] = "the model does not predict it"
    for spec in specs:
        if spec.name not in predictions:
            skipped[spec.name] = "the model does not predict it"
        elif spec.name not in labels or not known_mask(labels, spec.name,
                                                       spec.kind == REGRESSION).any():
            skipped[spec.name] = "no known labels in the evaluated rows"
        else:
            scored.append(spec)
    return scored, skipped


def _task_metrics(labels, predictions, scored, options) -> tuple[dict, dict | None, dict]:
    """(classification tasks' metrics, age's, other regression tasks')."""
    classification, age, regression = {}, None, {}
    for spec in scored:
        known = known_mask(labels, spec.name, spec.kind == REGRESSION)
        if spec.name == "age":
            age = age_metrics(np.asarray(labels["age"], float)[known], predictions["age"][known],
                              cs_threshold=options.cs_threshold,
                              band_edges=options.age_band_edges)
        elif spec.kind == REGRESSION:
            regression[spec.name] = regression_metrics(
                np.asarray(labels[spec.name], float)[known], predictions[spec.name][known])
        else:
            classification[spec.name] = classification_metrics(
                np.asarray(labels[spec.name]).astype(np.int64)[known],
                predicted_classes(predictions, spec.name, options.gender_threshold)[known],
                spec.classes[:n_classes(spec.name, predictions)])
    return classification, age, regression


def evaluate_predictions(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray],
                         options: MetricOptions = MetricOptions(), specs=None,
                         groups: Mapping[str, np.ndarray] | None = None,
                         group_order: Mapping[str, list] | None = None) -> EvalResult:
    """Score predictions against labels: all metric families, fairness and bootstrap intervals.

    Args:
        labels: Label arrays per task (unknown as NaN / -1); any may be absent.
        predictions: The model's outputs as returned by ``predict_arrays``; any may be absent.
        options: How to compute the metrics.
        specs: The model's task specs; None assumes UTKFace's tasks among ``predictions``.
        groups: Column -> group value per row for the fairness breakdown; None groups by the
            gender and race labels.
        group_order: Column -> its values in display order.

    Returns:
        The metrics. Tasks without predictions or without any known label are listed in
        ``skipped`` with the reason.

    Raises:
        DataError: Lengths differ, labels lie outside the model's classes, or nothing can be
            scored.
    """
    specs = tuple(specs) if specs is not None else default_specs(predictions)
    predictions = {name: values for name, values in predictions.items()
                   if name in {spec.name for spec in specs}}
    n = _check_inputs(labels, predictions, specs)
    predictions = {spec.name: (np.asarray(predictions[spec.name], float).reshape(n, -1)
                               if spec.output_width > 1
                               else np.asarray(predictions[spec.name], float).reshape(-1))
                   for spec in specs if spec.name in predictions}
    scored, skipped = _scored_tasks(labels, predictions, specs)
    if not scored:
        raise DataError(
            f"Nothing to score: the model predicts {sorted(predictions) or 'nothing'} but the "
            f"labels cover {[t for t in labels if t in predictions] or 'no task'} with no "
            "known value. Use a manifest with labels for at least one of the model's tasks.")
    classification, age, regression = _task_metrics(labels, predictions, scored, options)
    tasks = tuple(spec.name for spec in scored)
    regressions = tuple(spec.name for spec in scored if spec.kind == REGRESSION)
    intervals = bootstrap_intervals(labels, predictions, tasks, options, regressions)
    intervals = {name: {"estimate": value, **intervals[name]}
                 for name, value in _headline(classification, age, regression).items()
                 if name in intervals}
    return EvalResult(
        n=n, tasks=tasks, skipped=skipped, classification=classification, age=age,
        fairness=fairness_breakdown(labels, predictions, tasks, options, groups, regressions,
                                    group_order),
        intervals=intervals, options=options, regression=regression)
