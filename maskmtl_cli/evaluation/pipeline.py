"""``maskmtl eval`` end to end: find the run and manifest, predict, score and write the outputs.

The metrics themselves live in ``maskmtl_cli.evaluation.metrics`` (pure functions); this
module does the I/O around them and reports progress through an optional ``log`` callback
instead of printing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.evaluation.config import EvalConfig

_LISTED_FAILURES = 10
#: Every file ``eval`` may write into its output folder (see ``reports.report``), besides
#: ``confusion_<task>.png`` per classification task.
OUTPUT_NAMES = frozenset({
    "metrics.json", "predictions.csv", "report.md", "confusion_gender.png",
    "confusion_race.png", "age_scatter.png", "age_bands.png", "fairness.png",
})


def is_output_name(name: str) -> bool:
    """Whether ``eval`` may write a file of this name into its output folder."""
    return name in OUTPUT_NAMES or (name.startswith("confusion_") and name.endswith(".png"))


@dataclass(frozen=True)
class EvalOutcome:
    """What one evaluation produced.

    Attributes:
        metrics: The content of ``metrics.json`` (``meta`` plus all metrics).
        out_dir: Folder the files were written to.
        files: Every file written.
    """

    metrics: dict[str, Any]
    out_dir: Path
    files: list[Path]


def check_single_run(runs: list[Path] | None) -> Path | None:
    """The one run to evaluate (None: the latest); InputError when several are named."""
    if not runs:
        return None
    if len(runs) > 1:
        raise InputError(f"`maskmtl eval` evaluates one run at a time (got {len(runs)}: "
                         f"{', '.join(map(str, runs))}). Run it once per run, or add --compare "
                         "to lay runs that were already evaluated side by side.")
    return runs[0]


def resolve_manifest(manifest: Path | None, train_config: dict | None) -> Path:
    """The manifest to evaluate on: ``--manifest``, else the run's own, else ``manifest.csv``."""
    if manifest is not None:
        return Path(manifest)
    if train_config and train_config.get("manifest"):
        path = Path(train_config["manifest"])
        if not path.is_file():
            raise DataError(f"The run was trained on manifest {path}, which no longer exists. "
                            "Pass the manifest to evaluate on with --manifest.")
        return path
    if Path("manifest.csv").is_file():
        return Path("manifest.csv")
    raise DataError("No manifest to evaluate on: the run names none and there is no manifest.csv "
                    "in the working folder. Pass one with --manifest, or create it with "
                    "`maskmtl split DATA_DIR -o manifest.csv`.")


def select_split(table, split: str, manifest: Path):
    """The rows of ``split`` (all rows for ``all``); DataError naming the splits present."""
    if split == "all":
        rows = table
    else:
        rows = table[table["split"] == split]
    if len(rows) == 0:
        counts = table["split"].replace("", "(none)").value_counts()
        present = ", ".join(f"{name} ({count} rows)" for name, count in counts.items()) or "none"
        raise DataError(f"Manifest {manifest} has no rows in split {split!r}; splits present: "
                        f"{present}. Choose one with --split, or use --split all for every row.")
    return rows


def default_out_dir(model_path: Path, is_run_folder: bool) -> Path:
    """``RUN/eval`` for a model inside a run folder, else ``<model stem>_eval`` beside the file."""
    return model_path.parent / "eval" if is_run_folder else \
        model_path.parent / f"{model_path.stem}_eval"


def check_inputs_are_spared(out_dir: Path, inputs: list) -> None:
    """Refuse an output folder where a written file would replace one of the inputs.

    Raises:
        InputError: Naming the input and asking for another ``--out``.
    """
    folder = Path(out_dir).resolve()
    for given in inputs:
        path = Path(given)
        if is_output_name(path.name) and path.resolve().parent == folder:
            raise InputError(f"The output folder {out_dir} would get a new {path.name}, "
                             f"replacing the input {given}. Choose another folder with --out.")


def _file_sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class EvalInputs:
    """What an evaluation reads: the model file, its run's training config, the manifest,
    the split's rows, and where the outputs go."""

    model_path: Path
    train_config: dict | None
    manifest: Path
    rows: Any
    out_dir: Path


@dataclass(frozen=True)
class Scores:
    """The predictions on the split and everything scored from them."""

    arrays: Any
    model_input: tuple[int, str]
    specs: tuple
    labels: dict
    predictions: dict
    result: Any
    segmentation: dict | None
    segmentation_skipped: str | None
    per_image_iou: Any
    detection: Any = None  # evaluation.photos.DetectionSummary with --detect


def evaluate_run(config: EvalConfig, log: Callable[[str], None] | None = None) -> EvalOutcome:
    """Evaluate a trained model on a manifest split and write ``metrics.json`` and friends.

    Args:
        config: What to evaluate and how.
        log: Receives one human-readable line per step (the CLI prints them on stderr).

    Returns:
        The metrics and the files written (``metrics.json`` and ``predictions.csv`` always;
        ``report.md`` and PNG figures with ``config.report``).

    Raises:
        ModelError: No run found, or the model is missing or unusable.
        DataError: The manifest is missing, has no rows in the split, lacks labels for every
            task of the model, has labels outside the model's classes, or no image loads.
    """
    from maskmtl_cli import inference

    log = log or (lambda message: None)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    inputs = _prepare(config, log)
    model = inference.load_model(inputs.model_path, config.engine)
    labelled = _check_scorable(model, inputs, config.split)
    timing["load_model"] = time.perf_counter() - started
    scores = _predict_and_score(model, labelled, inputs, config, log, timing)
    timing["total"] = time.perf_counter() - started
    metrics = _metrics(config, inputs, scores, timing)
    files = _write_outputs(config, inputs.out_dir, metrics, scores, log)
    return EvalOutcome(metrics=metrics, out_dir=inputs.out_dir, files=files)


def _check_scorable(model, inputs: EvalInputs, split: str) -> list:
    """The model's tasks that the split has labels for; DataError when there is nothing to
    score (no labelled task and no segmentation head)."""
    from maskmtl_cli import inference
    from maskmtl_cli.evaluation import data as eval_data

    specs = inference.task_specs(model)
    labelled = eval_data.labelled_tasks(inputs.rows, specs)
    if not labelled and not inference.has_segmentation(model):
        raise DataError(f"Nothing to score: the model predicts "
                        f"{', '.join(spec.name for spec in specs)} but split {split} of "
                        f"{inputs.manifest} has no labels for them.")
    return labelled


def _predict_and_score(model, labelled, inputs: EvalInputs, config: EvalConfig, log,
                       timing: dict) -> Scores:
    """Load the split's images, predict them and score every task that has labels."""
    from maskmtl_cli import inference
    from maskmtl_cli.evaluation import data as eval_data
    from maskmtl_cli.evaluation.metrics import evaluate_predictions

    size, color_mode = inference.input_spec(model)
    specs = inference.task_specs(model)
    detection = None
    if config.detect:
        arrays, detection = _detect_faces(inputs.rows, size, color_mode, config, log, timing)
    else:
        arrays = _load_images(inputs.rows, size, color_mode, config, log, timing)
    mark = time.perf_counter()
    log(f"Predicting {len(arrays)} faces" + (" (with flip averaging)" if config.flip else ""))
    predictions = inference.predict_arrays(model, arrays.images, config.batch_size, config.flip,
                                           segmentation=True)
    masks = predictions.pop("segmentation", None)
    timing["predict"] = time.perf_counter() - mark

    mark = time.perf_counter()
    labels = eval_data.task_labels(arrays.rows, specs)
    groups, order = eval_data.fairness_groups(arrays.rows, config.group_by, specs,
                                              inputs.manifest)
    segmentation, why_not, per_image_iou = eval_data.score_segmentation(
        arrays.rows, masks, size, config.metrics, config.cache_dir)
    result = evaluate_predictions(labels, predictions, config.metrics, specs, groups, order) \
        if labelled else None
    timing["metrics"] = time.perf_counter() - mark
    return Scores(arrays, (size, color_mode), specs, labels, predictions, result, segmentation,
                  why_not, per_image_iou, detection)


def _prepare(config: EvalConfig, log) -> EvalInputs:
    """The run's model file, its training config, the manifest, its rows and the out folder."""
    from maskmtl_cli import inference
    from maskmtl_cli.data.manifest import read_manifest

    run = config.run
    if run is None:
        run = inference.latest_run(config.runs_root)
        log(f"No run given: evaluating the most recent one, {run} (pass RUN to choose another).")
    model_path = inference.resolve_model_path(run)
    train_config = inference.run_config(model_path)
    manifest = resolve_manifest(config.manifest, train_config)
    rows = select_split(read_manifest(manifest), config.split, manifest)
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir(
        model_path, train_config is not None)
    check_inputs_are_spared(out_dir, [manifest, model_path, *rows["path"]])
    log(f"Manifest {manifest}: {len(rows)} rows in split {config.split}.")
    log(f"Loading model {model_path} (engine {config.engine})")
    return EvalInputs(model_path, train_config, manifest, rows, out_dir)


def _load_images(rows, size: int, color_mode: str, config: EvalConfig, log, timing: dict):
    """The split's images at the model's input; DataError when none loads."""
    from maskmtl_cli.data.dataset import load_split

    mark = time.perf_counter()
    log(f"Loading {len(rows)} images at {size}x{size} {color_mode}")
    arrays = load_split(rows, None, size, color_mode, cache_dir=config.cache_dir)
    timing["load_images"] = time.perf_counter() - mark
    if arrays.failures:
        listed = "; ".join(f"{path} ({why})" for path, why in arrays.failures[:_LISTED_FAILURES])
        more = len(arrays.failures) - _LISTED_FAILURES
        log(f"{len(arrays.failures)} images failed to load and are left out: {listed}"
            + (f"; and {more} more (all listed in metrics.json)" if more > 0 else ""))
    if len(arrays) == 0:
        raise DataError(f"None of the {len(rows)} images of split {config.split} could be "
                        f"loaded (first: {arrays.failures[0][0]}: {arrays.failures[0][1]}). "
                        "Check the paths in the manifest.")
    return arrays


def _detect_faces(rows, size: int, color_mode: str, config: EvalConfig, log, timing: dict):
    """``--detect``: the largest face of each photo, found and aligned as `predict` does."""
    from maskmtl_cli.evaluation.photos import load_detected

    mark = time.perf_counter()
    arrays, summary = load_detected(rows, size, color_mode, config.detector, config.min_face,
                                    log)
    timing["detect"] = time.perf_counter() - mark
    if arrays.failures:
        listed = "; ".join(f"{path} ({why})" for path, why in arrays.failures[:_LISTED_FAILURES])
        log(f"{len(arrays.failures)} photos could not be read and are left out: {listed}")
    if len(arrays) == 0:
        raise DataError(f"No face was found in any of the {summary.photos} readable photos of "
                        f"split {config.split} ({len(arrays.failures)} unreadable). Check that "
                        "the manifest lists photos, try a smaller --min-face, or drop --detect "
                        "if the images are aligned face crops.")
    return arrays, summary


def _metrics(config: EvalConfig, inputs: EvalInputs, scores: Scores, timing: dict) -> dict:
    """The content of ``metrics.json``: ``meta``, every metric, and the segmentation scores."""
    from maskmtl_cli import __version__

    model_path, train_config = inputs.model_path, inputs.train_config
    arrays, specs, model_input = scores.arrays, scores.specs, scores.model_input
    meta = {
        "maskmtl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": str(model_path.parent) if train_config is not None else None,
        "run_name": model_path.parent.name if train_config is not None else model_path.stem,
        "model": str(model_path), "model_auto_selected": config.run is None,
        "manifest": str(Path(inputs.manifest).resolve()),
        "manifest_sha1": _file_sha1(inputs.manifest),
        "split": config.split, "rows_in_split": len(inputs.rows),
        "failures": [{"path": path, "reason": why} for path, why in arrays.failures],
        "input_size": model_input[0], "color_mode": model_input[1],
        "model_tasks": [spec.name for spec in specs],
        "task_specs": [spec.to_dict() for spec in specs],
        "flip": config.flip, "engine": config.engine,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
        "train_config": train_config, "config": config.to_dict(),
    }
    if scores.result is not None:
        metrics = {"meta": meta, **scores.result.to_dict()}
    else:  # a segmentation-only evaluation: no task has labels here
        metrics = {"meta": meta, "n": len(arrays), "tasks": [], "skipped": {}, "headline": {},
                   "intervals": {}, "classification": {}, "age": None, "regression": {},
                   "fairness": None, "options": config.to_dict()["metrics"]}
    if scores.detection is not None:
        metrics["detection"] = scores.detection.to_dict()
        metrics["headline_scope"] = (
            f"the largest face of the {len(arrays)} photos with a face "
            f"({len(scores.detection.no_face)} of {scores.detection.photos} without one are "
            "left out)")
    segmentation, why_not = scores.segmentation, scores.segmentation_skipped
    metrics["segmentation"] = segmentation
    if segmentation is not None:
        metrics["headline"]["segmentation_iou"] = segmentation["iou"]
        if segmentation.get("interval"):
            metrics["intervals"]["segmentation_iou"] = {"estimate": segmentation["iou"],
                                                        **segmentation["interval"]}
    elif why_not:
        metrics["skipped"]["segmentation"] = why_not
    return metrics


def _write_outputs(config: EvalConfig, out_dir: Path, metrics: dict, scores: Scores,
                   log) -> list[Path]:
    """``metrics.json``, ``predictions.csv`` and, with ``--report``, the report and figures."""
    import numpy as np

    from maskmtl_cli.reports.report import write_metrics_json, write_predictions_csv, write_report

    arrays, labels, predictions = scores.arrays, scores.labels, scores.predictions
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [write_metrics_json(metrics, out_dir / "metrics.json"),
             write_predictions_csv(arrays.paths, labels, predictions, scores.specs,
                                   out_dir / "predictions.csv", scores.per_image_iou)]
    if config.report:
        log("Writing report.md and figures")
        ages = labels.get("age", np.full(len(arrays), np.nan))
        known = ~np.isnan(ages)
        age_pred = predictions["age"][known] if "age" in predictions else None
        files += write_report(metrics, ages[known], age_pred, out_dir)
    return files
