"""Collapsed heads: when one predicted value covers too many faces.

A healthy head gives nearly every face its own value; a collapsed one (dead units, so only a
bias is left) gives many faces exactly the same. ``train`` warns about it on the validation
split and ``eval`` reports it (docs/RESULTS.md on the age collapse).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskmtl_cli.schema import (  # noqa: F401  (re-exported)
    COLLAPSE_MIN_FACES,
    COLLAPSE_WARNING_SHARE,
    is_collapsed,
)


def collapse_summary(task: str, values: np.ndarray, regression: bool | None = None
                     ) -> dict[str, Any]:
    """The most common prediction of a task and the share of faces that get it.

    A healthy head gives nearly every face its own value; a collapsed one (dead units, so only
    a bias is left) gives many faces exactly the same. Ages are compared to 0.01 years and
    probability vectors to 1e-4; confident class predictions (top probability above 0.999)
    legitimately coincide and are not counted. ``regression`` (default: ``task == "age"``)
    compares values like ages.

    Returns:
        ``{"value": ..., "share": ..., "n": ...}`` (value None when nothing is shared).
    """
    values = np.asarray(values, float)
    regression = task == "age" if regression is None else regression
    if len(values) == 0:
        return {"value": None, "share": 0.0, "n": 0}
    if regression:
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
    value = unique[best].tolist() if not regression else float(unique[best][0])
    if not regression and keys.shape[1] == 2 and values.reshape(len(values), -1).shape[1] == 1:
        value = value[0]  # a sigmoid output (gender): its own probability
    return {"value": value if counts[best] > 1 else None,
            "share": share if counts[best] > 1 else 0.0, "n": len(values)}
