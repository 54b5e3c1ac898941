"""Building blocks shared by the evaluation metrics and their bootstrap intervals.

Which rows have a known label, the predicted classes, and precision/recall/F1 from confusion
matrices. They live apart from ``evaluation.metrics`` so that ``evaluation.bootstrap`` can
use them without importing the module that imports it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def safe_ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    """Element-wise division that gives 0 where the denominator is 0 (scikit-learn's default)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def scores_from_confusion(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from confusion matrices.

    Works on one (K, K) matrix or a stack (B, K, K). Zero divisions give 0, as scikit-learn does.
    """
    true_positive = np.diagonal(matrix, axis1=-2, axis2=-1).astype(float)
    support = matrix.sum(axis=-1)
    predicted = matrix.sum(axis=-2)
    precision, recall = safe_ratio(true_positive, predicted), safe_ratio(true_positive, support)
    f1 = safe_ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support,
            "present": (support + predicted) > 0}


def macro_mean(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Mean over the classes that occur in the labels or the predictions (scikit-learn's rule)."""
    return safe_ratio((values * present).sum(axis=-1), present.sum(axis=-1))


def predicted_classes(predictions: Mapping[str, np.ndarray], task: str,
                      gender_threshold: float = 0.5) -> np.ndarray:
    """Predicted class indices: a one-column output (gender's P(female)) thresholded, a
    probability matrix (N, K) by arg-max."""
    values = np.asarray(predictions[task])
    if values.ndim == 1 or values.shape[-1] == 1:
        return (values.reshape(-1) >= gender_threshold).astype(np.int64)
    return values.argmax(axis=1).astype(np.int64)


def known_mask(labels: Mapping[str, np.ndarray], task: str,
               regression: bool | None = None) -> np.ndarray:
    """Rows whose label for ``task`` is known: a regression label not NaN, a class id not
    negative. ``regression`` defaults to ``task == "age"``."""
    values = np.asarray(labels[task])
    if regression is None:
        regression = task == "age"
    return ~np.isnan(values.astype(float)) if regression else values.astype(np.int64) >= 0


def n_classes(task: str, predictions: Mapping[str, np.ndarray]) -> int:
    """Classes of a task: 2 for a one-column (sigmoid) output, else the output's width."""
    values = np.asarray(predictions[task])
    return 2 if values.ndim == 1 or values.shape[-1] == 1 else values.shape[1]
