"""Fairness breakdown: every scored metric per group of faces, the worst group and the gap.

Groups are formed from one or more columns of the evaluated rows (``eval --group-by``; by
default UTKFace's gender x ethnicity where those labels exist): each distinct combination of
their values is one group, and rows with an unknown value in any column are in no group. Pure
functions over arrays, like ``maskmtl_cli.evaluation.metrics``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from maskmtl_cli.evaluation.config import MetricOptions
from maskmtl_cli.evaluation.scoring import known_mask, predicted_classes
from maskmtl_cli.tasks import GENDER_NAMES, RACE_NAMES, class_names

#: Metrics of UTKFace's tasks in the breakdown, and whether higher is better.
GROUP_METRICS = {"gender_accuracy": True, "race_accuracy": True, "age_mae": False,
                 "age_rmse": False, "age_cs": True}


def _clean(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def group_metric_names(tasks, regression=("age",)) -> dict[str, bool]:
    """Per-group metric names of ``tasks`` and whether higher is better."""
    names = {}
    for task in tasks:
        if task == "age":
            names.update({"age_mae": False, "age_rmse": False, "age_cs": True})
        elif task in regression:
            names.update({f"{task}_mae": False, f"{task}_rmse": False})
        else:
            names[f"{task}_accuracy"] = True
    return names


def _group_metrics(labels, predictions, tasks, rows, options, regression) -> dict:
    """The per-group metrics for the faces selected by ``rows``."""
    values: dict[str, float | None] = {}
    for task in tasks:
        known = rows & known_mask(labels, task, task in regression)
        count = int(known.sum())
        if task in regression:
            error = (np.asarray(predictions[task], float) - np.asarray(labels[task], float))[known]
            values[f"{task}_mae"] = _clean(np.abs(error).mean()) if count else None
            values[f"{task}_rmse"] = _clean(np.sqrt((error ** 2).mean())) if count else None
            if task == "age":
                values["age_cs"] = (_clean((np.abs(error) <= options.cs_threshold).mean())
                                    if count else None)
        else:
            hits = predicted_classes(predictions, task, options.gender_threshold)[known] == \
                np.asarray(labels[task]).astype(np.int64)[known]
            values[f"{task}_accuracy"] = _clean(hits.mean()) if count else None
    return values


def class_groups(values: np.ndarray, names) -> np.ndarray:
    """Group names of class ids: ``names[k]`` ("" for unknown, ``class k`` beyond the names)."""
    values = np.asarray(values).astype(np.int64)
    return np.array(["" if v < 0 else names[v] if v < len(names) else f"class {v}"
                     for v in values], dtype=object)


def default_groups(labels: Mapping[str, np.ndarray], class_names) -> dict[str, np.ndarray]:
    """Gender and ethnicity group names from their labels (empty where unknown or absent).

    Args:
        labels: Label arrays (``gender``/``race`` class ids, -1 unknown).
        class_names: ``class_names(task, count)`` giving display names of a task's classes.
    """
    return {task: class_groups(labels[task], class_names(task, count))
            for task, count in (("gender", len(GENDER_NAMES)), ("race", len(RACE_NAMES)))
            if task in labels and known_mask(labels, task).any()}


def _sort_key(key: tuple, columns: list[str], order: Mapping[str, list]) -> tuple:
    """Groups in the order of their columns' classes where known, else by name."""
    parts = []
    for column, value in zip(columns, key):
        known = list(order.get(column, ()))
        parts.append((known.index(value) if value in known else len(known), value))
    return tuple(parts)


def fairness_breakdown(labels: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray],
                       tasks: tuple[str, ...], options: MetricOptions,
                       groups: Mapping[str, np.ndarray] | None = None,
                       regression: tuple[str, ...] = ("age",),
                       order: Mapping[str, list] | None = None) -> dict[str, Any] | None:
    """Every scored metric per group, worst group and gap.

    Args:
        labels: Label arrays of the scored tasks.
        predictions: The model's outputs.
        tasks: The scored tasks.
        options: Metric options (``min_group_size``: smaller groups are listed, not ranked).
        groups: Column -> group value of each row ("" or None unknown); None groups by the
            gender and race labels (``default_groups``). Within a group whose column is a task,
            the true class is fixed, so the group's accuracy equals that class's recall.
        regression: The regression tasks among ``tasks``.
        order: Column -> its values in display order (class order; others by name).

    Returns:
        ``None`` when there is nothing to group by.
    """
    if groups is None:
        groups = default_groups(labels, class_names)
        order = {"gender": list(GENDER_NAMES), "race": list(RACE_NAMES)}
    groups = {column: np.asarray(values, dtype=object) for column, values in groups.items()}
    if not groups:
        return None
    columns = list(groups)
    keys = np.stack([np.array(["" if v is None or v != v else str(v) for v in groups[c]],
                              dtype=object) for c in columns], axis=1)
    complete = (keys != "").all(axis=1)
    entries = []
    found = {tuple(row) for row in keys[complete]}
    for key in sorted(found, key=lambda key: _sort_key(key, columns, order or {})):
        rows = complete & (keys == np.array(key, dtype=object)).all(axis=1)
        entry = {"group": " / ".join(key), **dict(zip(columns, key)), "n": int(rows.sum())}
        entry.update(_group_metrics(labels, predictions, tasks, rows, options, regression))
        entries.append(entry)
    if not entries:
        return None
    ranked = [entry for entry in entries if entry["n"] >= options.min_group_size]
    summary = {}
    for metric, higher_is_better in group_metric_names(tasks, regression).items():
        scored = [entry for entry in ranked if entry.get(metric) is not None]
        if not scored:
            continue
        ordered = sorted(scored, key=lambda entry: entry[metric], reverse=higher_is_better)
        best, worst = ordered[0], ordered[-1]
        summary[metric] = {"best": best["group"], "best_value": best[metric],
                           "worst": worst["group"], "worst_value": worst[metric],
                           "gap": abs(best[metric] - worst[metric]),
                           "higher_is_better": higher_is_better}
    return {"group_by": columns, "min_group_size": options.min_group_size,
            "groups": entries, "summary": summary,
            "unranked": [entry["group"] for entry in entries
                         if entry["n"] < options.min_group_size]}
