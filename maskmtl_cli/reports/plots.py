"""Evaluation figures drawn with matplotlib's Agg backend (no display needed).

Each function takes metrics dictionaries (or the raw age arrays for the scatter plot), writes one
PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TASK_TITLES = {"gender": "Gender", "race": "Ethnicity"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def _annotated_matrix(axis, matrix: np.ndarray, classes: list[str], title: str, fmt: str,
                      vmax: float | None) -> None:
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax)
    axis.figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    axis.set(title=title, xlabel="Predicted", ylabel="True", xticks=range(len(classes)),
             yticks=range(len(classes)), xticklabels=classes, yticklabels=classes)
    axis.tick_params(axis="x", labelrotation=45)
    threshold = (vmax if vmax is not None else max(matrix.max(), 1)) / 2
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(column, row, format(value, fmt), ha="center", va="center", fontsize=8,
                  color="white" if value > threshold else "black")


def plot_confusion(scores: dict[str, Any], task: str, path: Path) -> Path:
    """Counts and row-normalised confusion matrices of one task, side by side."""
    plt = _pyplot()
    classes = scores["classes"]
    figure, axes = plt.subplots(1, 2, figsize=(4.2 + 1.6 * len(classes), 2.4 + 0.6 * len(classes)))
    _annotated_matrix(axes[0], np.asarray(scores["confusion"]), classes, "Counts", "d", None)
    _annotated_matrix(axes[1], np.asarray(scores["confusion_normalized"]), classes,
                      "Row-normalised (recall)", ".2f", 1.0)
    figure.suptitle(f"{TASK_TITLES.get(task, task)}: accuracy {scores['accuracy']:.4f}, "
                    f"{scores['n']} faces")
    return _save(figure, path)


def plot_age_scatter(true_age: np.ndarray, predicted_age: np.ndarray, age: dict[str, Any],
                     path: Path) -> Path:
    """Predicted against true age with the identity line and the CS(t) tolerance band."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    top = float(max(np.max(true_age, initial=1), np.max(predicted_age, initial=1))) * 1.05
    bottom = float(min(np.min(true_age, initial=0), np.min(predicted_age, initial=0)))
    bottom -= 0.05 * (top - bottom) if bottom < 0 else 0
    threshold = age["cs_threshold"]
    line = np.array([bottom, top])
    axis.fill_between(line, line - threshold, line + threshold, color="tab:green", alpha=0.15,
                      label=f"within {threshold:g} years (CS = {age['cs']:.3f})")
    axis.plot(line, line, color="tab:green", linewidth=1, label="predicted = true")
    axis.scatter(true_age, predicted_age, s=4, alpha=0.25 if len(true_age) > 2000 else 0.6,
                 color="tab:blue", rasterized=True, linewidths=0)
    axis.set(xlim=(bottom, top), ylim=(bottom, top), xlabel="True age (years)",
             ylabel="Predicted age (years)",
             title=f"Age: MAE {age['mae']:.2f}, RMSE {age['rmse']:.2f} years, {age['n']} faces")
    axis.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def plot_age_bands(age: dict[str, Any], path: Path) -> Path:
    """MAE per band of true age, bars labelled with their face counts."""
    plt = _pyplot()
    bands = age["bands"]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    values = [band["mae"] if band["mae"] is not None else 0.0 for band in bands]
    bars = axis.bar([band["band"] for band in bands], values, color="tab:orange")
    for bar, band in zip(bars, bands):
        axis.annotate(f"n={band['n']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=7)
    axis.axhline(age["mae"], color="black", linewidth=1, linestyle="--",
                 label=f"overall MAE {age['mae']:.2f}")
    axis.set(xlabel="True age band (years)", ylabel="MAE (years)", title="Age MAE per age band")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_fairness(fairness: dict[str, Any], path: Path) -> Path | None:
    """Heat maps of each group metric over the two grouping columns (gender x ethnicity by
    default: rows the first column, columns the second).

    Returns:
        The path, or None when the groups are not two-dimensional.
    """
    if len(fairness["group_by"]) != 2:
        return None
    from maskmtl_cli.reports.tables import group_column, task_title

    groups = fairness["groups"]
    first, second = fairness["group_by"]
    genders = list(dict.fromkeys(group[first] for group in groups))
    races = list(dict.fromkeys(group[second] for group in groups))
    fixed = {"group", "n", first, second}
    names = [name for name in dict.fromkeys(key for group in groups for key in group)
             if name not in fixed and not name.endswith("_rmse")]
    plt = _pyplot()
    columns = min(2, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 2.9 * rows), squeeze=False)
    for axis in axes.ravel()[len(names):]:
        axis.set_visible(False)
    for axis, name in zip(axes.ravel(), names):
        grid = np.full((len(genders), len(races)), np.nan)
        for group in groups:
            if group.get(name) is not None:
                grid[genders.index(group[first]), races.index(group[second])] = group[name]
        higher_is_better = fairness["summary"].get(name, {}).get(
            "higher_is_better", not name.endswith(("_mae", "_rmse")))
        image = axis.imshow(grid, cmap="RdYlGn" if higher_is_better else "RdYlGn_r")
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
        axis.set(title=group_column(name), xticks=range(len(races)), xticklabels=races,
                 yticks=range(len(genders)), yticklabels=genders)
        axis.tick_params(axis="x", labelrotation=45)
        for (row, column), value in np.ndenumerate(grid):
            if not np.isnan(value):
                axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8)
    figure.suptitle(f"Per group ({task_title(first).lower()} x {task_title(second).lower()} "
                    "of the true labels)")
    return _save(figure, path)
