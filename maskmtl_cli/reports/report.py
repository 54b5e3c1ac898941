"""Evaluation outputs on disk: ``metrics.json``, ``predictions.csv``, ``report.md`` and figures.

``report.md`` embeds the PNG figures by relative path, so the eval folder can be moved or
attached to a paper's supplement as a whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from maskmtl_cli.io import json_ready, write_text_atomic
from maskmtl_cli.reports import plots, tables


def write_metrics_json(metrics: dict[str, Any], path: Path) -> Path:
    """Write the metrics dictionary as indented JSON."""
    text = json.dumps(json_ready(metrics), indent=2, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def write_predictions_csv(paths: list[str], labels: Mapping[str, np.ndarray],
                          predictions: Mapping[str, np.ndarray], specs, path: Path,
                          segmentation_iou: np.ndarray | None = None) -> Path:
    """One row per face: path, true labels (empty when unknown), predictions and probabilities.

    Columns: ``path``, then per task the model predicts, in its order: ``age_true``,
    ``age_pred``; ``gender_true``, ``gender_pred``, ``p_female``; ``race_true``, ``race_pred``,
    ``p_<class>``; for other classification tasks ``<task>_true``, ``<task>_pred`` (class
    indices) and ``p_<task>_<class>``; for other regression tasks ``<task>_true`` and
    ``<task>_pred``; then ``segmentation_iou`` when the segmentation head was scored. Class
    columns hold indices into the task's classes (0 male / 1 female; race in UTKFace's order).
    """
    import pandas as pd

    table = pd.DataFrame({"path": paths})
    for spec in specs:
        task = spec.name
        if task not in predictions:
            continue
        values = labels.get(task)
        probabilities = np.asarray(predictions[task], float)
        if spec.kind == "regression":
            table[f"{task}_true"] = pd.Series(np.full(len(paths), np.nan) if values is None
                                              else np.asarray(values, float))
            table[f"{task}_pred"] = np.round(probabilities, 3 if task == "age" else 5)
            continue
        known = np.full(len(paths), -1) if values is None else np.asarray(values).astype("int64")
        table[f"{task}_true"] = pd.Series(known, dtype="Int64").mask(known < 0)
        if probabilities.ndim == 1:  # gender's P(female)
            table[f"{task}_pred"] = (probabilities >= 0.5).astype(int)
            table["p_female" if task == "gender" else f"p_{task}"] = np.round(probabilities, 5)
            continue
        table[f"{task}_pred"] = probabilities.argmax(axis=1)
        prefix = "p_" if task == "race" else f"p_{task}_"
        for index, name in enumerate(spec.classes[:probabilities.shape[1]]):
            table[f"{prefix}{name}"] = np.round(probabilities[:, index], 5)
    if segmentation_iou is not None:
        table["segmentation_iou"] = np.round(segmentation_iou, 5)
    return write_text_atomic(path, table.to_csv(index=False))


def write_figures(metrics: dict[str, Any], true_age: np.ndarray | None,
                  predicted_age: np.ndarray | None, out_dir: Path) -> dict[str, Path]:
    """Every figure the metrics allow, keyed by what it shows."""
    figures = {}
    for task, scores in metrics["classification"].items():
        figures[f"confusion_{task}"] = plots.plot_confusion(scores, task,
                                                            out_dir / f"confusion_{task}.png")
    if metrics.get("age") and true_age is not None:
        figures["age_scatter"] = plots.plot_age_scatter(true_age, predicted_age, metrics["age"],
                                                        out_dir / "age_scatter.png")
        figures["age_bands"] = plots.plot_age_bands(metrics["age"], out_dir / "age_bands.png")
    if metrics.get("fairness"):
        fairness = plots.plot_fairness(metrics["fairness"], out_dir / "fairness.png")
        if fairness is not None:
            figures["fairness"] = fairness
    return figures


def _figure(figures: dict[str, Path], key: str, caption: str) -> str:
    return f"![{caption}]({figures[key].name})\n" if key in figures else ""


def report_markdown(metrics: dict[str, Any], figures: dict[str, Path]) -> str:
    """The text of ``report.md``: context, headline, paper comparison, per task, fairness."""
    meta = metrics["meta"]
    md = tables.to_markdown
    failures = meta.get("failures", [])
    sections = [
        f"# Evaluation of `{meta['model']}`\n",
        f"- Manifest: `{meta['manifest']}` (sha1 `{meta['manifest_sha1'][:12]}`), split "
        f"**{meta['split']}**: {metrics['n']} faces evaluated"
        + (f", {len(failures)} images failed to load (listed in metrics.json)" if failures else "")
        + ".",
        f"- Model input: {meta['input_size']}x{meta['input_size']} {meta['color_mode']}; tasks "
        f"{', '.join(meta['model_tasks'])}; horizontal-flip averaging "
        f"{'on' if meta['flip'] else 'off'}.",
        f"- maskmtl {meta['maskmtl_version']}, {meta['created']}. Per-face predictions: "
        "`predictions.csv`.\n",
        md(tables.detection_table(metrics), 2) if metrics.get("detection") else "",
        "## Headline\n", md(tables.headline_table(metrics)),
        md(tables.paper_table(metrics)) if tables.has_utkface_tasks(metrics) else "",
    ]
    for task in metrics["classification"]:
        sections += [f"## {tables.task_title(task)}\n", md(tables.class_table(metrics, task)),
                     md(tables.confusion_table(metrics, task)),
                     md(tables.confusion_table(metrics, task, normalized=True)),
                     _figure(figures, f"confusion_{task}", f"{task} confusion matrices")]
    if metrics.get("age"):
        sections += ["## Age\n", md(tables.age_band_table(metrics)),
                     _figure(figures, "age_scatter", "predicted vs true age"),
                     _figure(figures, "age_bands", "age MAE per band")]
    if metrics.get("regression"):
        sections += ["## Other regression tasks\n", md(tables.regression_table(metrics))]
    if metrics.get("segmentation"):
        sections += ["## Mask segmentation\n", md(tables.segmentation_table(metrics))]
    fairness = tables.fairness_tables(metrics)
    if fairness:
        sections += ["## Fairness\n",
                     "Each metric per group of the true labels. Within a group the true class "
                     "is fixed, so a group's accuracy is the recall of that class.\n",
                     *(md(spec) for spec in fairness),
                     _figure(figures, "fairness", "metrics per group")]
    return "\n".join(section for section in sections if section)


def write_report(metrics: dict[str, Any], true_age: np.ndarray | None,
                 predicted_age: np.ndarray | None, out_dir: Path) -> list[Path]:
    """Write the figures and ``report.md``; return the paths written."""
    figures = write_figures(metrics, true_age, predicted_age, out_dir)
    report = write_text_atomic(out_dir / "report.md", report_markdown(metrics, figures))
    return [*figures.values(), report]
