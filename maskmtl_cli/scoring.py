"""Building blocks shared by the evaluation metrics and their bootstrap intervals.

Which rows have a known label, the predicted classes, and precision/recall/F1 from confusion
matrices. They live apart from ``maskmtl_cli.evaluation`` so that ``maskmtl_cli.bootstrap`` can
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
    """Predicted class indices for ``gender`` (thresholded P(female)) or ``race`` (arg-max)."""
    if task == "gender":
        return (np.asarray(predictions["gender"]).reshape(-1) >= gender_threshold).astype(np.int64)
    return np.asarray(predictions["race"]).argmax(axis=1).astype(np.int64)


def known_mask(labels: Mapping[str, np.ndarray], task: str) -> np.ndarray:
    """Rows whose label for ``task`` is known (age not NaN, classes not negative)."""
    values = np.asarray(labels[task])
    return ~np.isnan(values.astype(float)) if task == "age" else values.astype(np.int64) >= 0


def n_classes(task: str, predictions: Mapping[str, np.ndarray]) -> int:
    """Classes of a task: 2 for gender, the width of the race output for race."""
    return 2 if task == "gender" else np.asarray(predictions["race"]).shape[1]

