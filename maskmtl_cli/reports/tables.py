"""Evaluation tables, built once as plain rows and rendered as rich tables or Markdown.

Every builder takes the metrics dictionary that ``maskmtl eval`` writes to ``metrics.json``, so
the terminal, ``report.md`` and ``--compare`` all show the same numbers from the same source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskmtl_cli.schema import COLLAPSE_WARNING_SHARE, headline_pairs, is_collapsed
from maskmtl_cli.tasks import UTKFACE_TASK_NAMES

#: The MaskMTL paper's Table 1, masked-face row (Mukherjee et al., PReMI 2021): gender and
#: ethnicity accuracy and age MAE in years, trained on UTKFace part I and tested on part II.
PAPER_TABLE1_MASKED = {"gender_accuracy": 0.8913, "race_accuracy": 0.7927, "age_mae": 12.15}

METRIC_NAMES = {
    "gender_accuracy": "Gender accuracy", "gender_macro_f1": "Gender macro F1",
    "race_accuracy": "Ethnicity accuracy", "race_macro_f1": "Ethnicity macro F1",
    "age_mae": "Age MAE (years)", "age_rmse": "Age RMSE (years)", "age_cs": "Age CS({t})",
}
GROUP_COLUMNS = {"gender_accuracy": "Gender acc.", "race_accuracy": "Ethnicity acc.",
                 "age_mae": "Age MAE", "age_rmse": "Age RMSE", "age_cs": "Age CS"}
TASK_TITLES = {"gender": "Gender", "race": "Ethnicity", "age": "Age",
               "segmentation": "Mask segmentation"}
#: Display names of the metric part of ``task_metric`` keys of other tasks.
_METRIC_WORDS = {"accuracy": "accuracy", "macro_f1": "macro F1", "mae": "MAE", "rmse": "RMSE",
                 "iou": "IoU (mean per image)"}


def task_title(task: str) -> str:
    """``Gender``, ``Ethnicity``, ``Age``; other tasks by their own name."""
    return TASK_TITLES.get(task, task)


def group_column(name: str) -> str:
    """Column title of a per-group metric (``expression_accuracy`` -> ``expression acc.``)."""
    if name in GROUP_COLUMNS:
        return GROUP_COLUMNS[name]
    for suffix, word in (("_accuracy", "acc."), ("_mae", "MAE"), ("_rmse", "RMSE")):
        if name.endswith(suffix):
            return f"{name[:-len(suffix)]} {word}"
    return name


def has_utkface_tasks(metrics: dict[str, Any]) -> bool:
    """Whether any of age, gender, race was scored (the paper's table then applies)."""
    return any(task in metrics.get("tasks", []) for task in UTKFACE_TASK_NAMES)


@dataclass(frozen=True)
class TableSpec:
    """A table as strings: rendered by ``to_rich`` for the terminal or ``to_markdown`` for files.

    Attributes:
        title: Caption.
        columns: Header cells; the first column is left-aligned, the others right-aligned.
        rows: Body rows, one string per column.
        note: A line printed under the table (empty for none).
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def fmt(value: float | None, digits: int = 4) -> str:
    """A number with fixed decimals, or an en dash for missing values."""
    return "–" if value is None else f"{value:.{digits}f}"


def metric_digits(name: str) -> int:
    """Years get 2 decimals, shares 4 (other regression errors 4 significant places' worth)."""
    return 2 if name.startswith("age_m") or name.startswith("age_r") else 4


def metric_label(name: str, metrics: dict[str, Any]) -> str:
    """Display name of a headline metric (CS with its threshold)."""
    threshold = (metrics.get("age") or {}).get("cs_threshold", 5)
    if name in METRIC_NAMES:
        return METRIC_NAMES[name].format(t=f"{threshold:g}")
    for metric, word in _METRIC_WORDS.items():
        if name.endswith(f"_{metric}"):
            return f"{task_title(name[:-len(metric) - 1])} {word}"
    return name


def _headline_rows(metrics: dict[str, Any]) -> list[tuple[str, str, dict]]:
    """(key, metric, source of the faces count and baseline) of each headline number."""
    rows = []
    regression = metrics.get("regression") or {}
    for task, metric in headline_pairs(metrics["classification"], metrics.get("age"),
                                       regression):
        source = (metrics["age"] if task == "age" else regression.get(task)
                  or metrics["classification"][task])
        rows.append((f"{task}_{metric}", metric, source))
    if metrics.get("segmentation"):
        rows.append(("segmentation_iou", "iou", metrics["segmentation"]))
    return rows


def headline_table(metrics: dict[str, Any]) -> TableSpec:
    """Headline numbers with their bootstrap intervals and the number of faces scored."""
    intervals = metrics.get("intervals", {})
    options = metrics.get("options", {})
    confidence = f"{100 * options.get('confidence', 0.95):g}% CI"
    rows = []
    for name, metric, source in _headline_rows(metrics):
        value = metrics["headline"].get(name)
        digits = metric_digits(name)
        interval = intervals.get(name)
        ci = (f"[{fmt(interval['low'], digits)}, {fmt(interval['high'], digits)}]"
              if interval else "–")
        baseline = (source.get("constant_baseline", {}).get(metric) if "constant_baseline"
                    in source else source.get("majority_accuracy") if metric == "accuracy"
                    else None)
        rows.append((metric_label(name, metrics), fmt(value, digits), ci,
                     fmt(baseline, digits), str(source["n"])))
    note = (f"Percentile bootstrap over faces, {options.get('bootstrap')} resamples, seed "
            f"{options.get('seed')}." if intervals else "No bootstrap intervals (--bootstrap 0).")
    note += (" Constant: the best constant guess on these faces (majority class; median or "
             "mean true age).")
    if metrics.get("headline_scope"):
        note += f" These metrics cover {metrics['headline_scope']}."
    skipped = metrics.get("skipped", {})
    if skipped:
        note += " Not scored: " + "; ".join(f"{task_title(t).lower()} ({why})"
                                           for t, why in skipped.items()) + "."
    return TableSpec("Headline metrics", ("Metric", "Value", confidence, "Constant", "Faces"),
                     tuple(rows), note)


def paper_table(metrics: dict[str, Any]) -> TableSpec:
    """This evaluation next to the MaskMTL paper's Table 1 masked row."""
    rows = []
    for name, paper_value in PAPER_TABLE1_MASKED.items():
        digits = metric_digits(name)
        ours = metrics["headline"].get(name)
        difference = "–" if ours is None else f"{ours - paper_value:+.{digits}f}"
        rows.append((metric_label(name, metrics), fmt(ours, digits), fmt(paper_value, digits),
                     difference))
    note = ("The paper trains on UTKFace part I and tests on part II with its own mask generator; "
            "a different split, mask generator or image size makes this a reference point, not a "
            "like-for-like comparison.")
    return TableSpec("Versus MaskMTL (PReMI 2021), Table 1, masked faces",
                     ("Metric", "This run", "Paper", "Difference"), tuple(rows), note)


def class_table(metrics: dict[str, Any], task: str) -> TableSpec:
    """Per-class precision, recall, F1 and support, then macro and weighted averages."""
    scores = metrics["classification"][task]
    rows = [(c["class"], fmt(c["precision"]), fmt(c["recall"]), fmt(c["f1"]), str(c["support"]))
            for c in scores["per_class"]]
    for average in ("macro", "weighted"):
        rows.append((f"{average} average", fmt(scores[f"{average}_precision"]),
                     fmt(scores[f"{average}_recall"]), fmt(scores[f"{average}_f1"]),
                     str(scores["n"])))
    return TableSpec(f"{task_title(task)}: accuracy {fmt(scores['accuracy'])} on "
                     f"{scores['n']} faces",
                     ("Class", "Precision", "Recall", "F1", "Support"), tuple(rows))


def confusion_table(metrics: dict[str, Any], task: str, normalized: bool = False) -> TableSpec:
    """Confusion matrix, rows = true class, columns = predicted class (counts or row shares)."""
    scores = metrics["classification"][task]
    matrix = scores["confusion_normalized" if normalized else "confusion"]
    cells = (lambda v: f"{v:.3f}") if normalized else str
    rows = tuple((name, *(cells(v) for v in row)) for name, row in zip(scores["classes"], matrix))
    kind = "row-normalised, recall on the diagonal" if normalized else "counts"
    return TableSpec(f"{task_title(task)} confusion matrix ({kind})",
                     ("true ↓ predicted →", *scores["classes"]), rows)


def age_band_table(metrics: dict[str, Any]) -> TableSpec:
    """Age MAE and mean signed error per band of true age."""
    age = metrics["age"]
    rows = tuple((band["band"], str(band["n"]), fmt(band["mae"], 2), fmt(band["bias"], 2))
                 for band in age["bands"])
    title = (f"Age: MAE {fmt(age['mae'], 2)}, RMSE {fmt(age['rmse'], 2)}, "
             f"CS({age['cs_threshold']:g}) {fmt(age['cs'])}, bias {fmt(age['bias'], 2)} years")
    return TableSpec(title, ("True age", "Faces", "MAE", "Bias (pred. - true)"), rows,
                     collapse_note(age.get("collapse")))


def regression_table(metrics: dict[str, Any]) -> TableSpec:
    """MAE, RMSE and bias of each regression task other than age, in its label's units."""
    rows = tuple((task, str(scores["n"]), fmt(scores["mae"]), fmt(scores["rmse"]),
                  fmt(scores["bias"]), fmt(scores.get("constant_baseline", {}).get("mae")))
                 for task, scores in (metrics.get("regression") or {}).items())
    return TableSpec("Regression tasks (in their labels' units)",
                     ("Task", "Faces", "MAE", "RMSE", "Bias (pred. - true)", "Constant MAE"),
                     rows, "Constant: the median true value on these faces.")


def segmentation_table(metrics: dict[str, Any]) -> TableSpec:
    """IoU (mean per image and pooled), Dice and pixel accuracy of the segmentation head."""
    scores = metrics["segmentation"]
    rows = (("IoU, mean per image", fmt(scores["iou"])),
            ("IoU, all pixels pooled", fmt(scores["pooled_iou"])),
            ("Dice, mean per image", fmt(scores["dice"])),
            ("Pixel accuracy", fmt(scores["pixel_accuracy"])))
    return TableSpec(f"Mask segmentation on {scores['n']} faces with a ground-truth mask",
                     ("Metric", "Value"), rows,
                     f"Predicted masks binarised at {scores['threshold']:g}; an image where "
                     "both masks are empty counts as IoU 1.")


def collapse_note(collapse: dict[str, Any] | None) -> str:
    """The share of faces that get the most common predicted age, with a warning above 2%."""
    if not collapse or collapse.get("value") is None:
        return "Every face gets its own predicted age (no value is shared)."
    note = (f"Most common predicted age: {collapse['value']:.2f} years, for "
            f"{collapse['share']:.1%} of the faces.")
    if is_collapsed(collapse):
        note += (f" WARNING: above {COLLAPSE_WARNING_SHARE:.0%}, the age head has collapsed "
                 "for these faces (it outputs a constant); retrain, e.g. with --age-loss ldl.")
    return note


def fairness_tables(metrics: dict[str, Any]) -> list[TableSpec]:
    """The per-group table and the worst-group summary of the fairness breakdown."""
    fairness = metrics.get("fairness")
    if not fairness:
        return []
    fixed = {"group", "n", *fairness["group_by"]}
    names = list(dict.fromkeys(name for group in fairness["groups"] for name in group
                               if name not in fixed))
    rows = tuple((group["group"], str(group["n"]),
                  *(fmt(group.get(name), metric_digits(name)) for name in names))
                 for group in fairness["groups"])
    unranked = fairness.get("unranked", [])
    note = (f"Groups with fewer than {fairness['min_group_size']} faces are not ranked: "
            + ", ".join(unranked) + "." if unranked else "")
    grouping = " x ".join(task_title(column).lower() for column in fairness["group_by"])
    groups = TableSpec(f"Per group ({grouping} of the true labels)",
                       ("Group", "Faces", *(group_column(name) for name in names)), rows, note)
    summary_rows = []
    for name, entry in fairness["summary"].items():
        digits = metric_digits(name)
        summary_rows.append((group_column(name), entry["worst"], fmt(entry["worst_value"], digits),
                             entry["best"], fmt(entry["best_value"], digits),
                             fmt(entry["gap"], digits)))
    summary = TableSpec("Worst group and gap to the best",
                        ("Metric", "Worst group", "Value", "Best group", "Value", "Gap"),
                        tuple(summary_rows))
    return [groups, summary]


def detection_table(metrics: dict[str, Any]) -> TableSpec:
    """What ``eval --detect`` found on the photos (the ``detection`` section)."""
    found = metrics["detection"]
    share = found["photos_with_face_share"]
    rows = (("Photos read", str(found["photos"])),
            ("Photos with a face", f"{found['photos_with_face']}"
             + (f" ({100 * share:.1f}%)" if share is not None else "")),
            ("Faces found", str(found["faces_found"])),
            ("Faces per photo", fmt(found["faces_per_photo"], 3)),
            ("Seconds per photo", fmt(found["seconds_per_photo"], 3)))
    missing = found["no_face"]
    note = (f"Detector {found['detector']}, faces of {found['min_face']} px and more, found and "
            "aligned as `maskmtl predict` does; the largest face of each photo is scored.")
    if missing:
        listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                             else "")
        note += f" No face found (left out): {listed}."
    return TableSpec("Face detection", ("", "Value"), rows, note)


def evaluation_tables(metrics: dict[str, Any]) -> list[TableSpec]:
    """Every table of an evaluation, in reading order."""
    tables = [detection_table(metrics)] if metrics.get("detection") else []
    tables.append(headline_table(metrics))
    if has_utkface_tasks(metrics):
        tables.append(paper_table(metrics))
    for task in metrics["classification"]:
        tables += [class_table(metrics, task), confusion_table(metrics, task),
                   confusion_table(metrics, task, normalized=True)]
    if metrics.get("age"):
        tables.append(age_band_table(metrics))
    if metrics.get("regression"):
        tables.append(regression_table(metrics))
    if metrics.get("segmentation"):
        tables.append(segmentation_table(metrics))
    return tables + fairness_tables(metrics)


def to_rich(spec: TableSpec):
    """A ``rich.table.Table`` for the terminal."""
    from rich.table import Table

    table = Table(title=spec.title, title_justify="left", caption=spec.note or None,
                  caption_justify="left")
    for index, column in enumerate(spec.columns):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for row in spec.rows:
        table.add_row(*row)
    return table


def to_markdown(spec: TableSpec, heading_level: int = 3) -> str:
    """A Markdown section: heading, pipe table and the note in italics."""
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", "<br>")

    lines = [f"{'#' * heading_level} {spec.title}", "",
             "| " + " | ".join(escape(c) for c in spec.columns) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(spec.columns) - 1)) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in spec.rows]
    if spec.note:
        lines += ["", f"*{spec.note}*"]
    return "\n".join(lines) + "\n"
