"""``maskmtl eval --compare``: several evaluated runs side by side, from their ``metrics.json``.

Nothing is re-predicted: each run's saved metrics are read back, so a comparison (for example a
rebuild of the paper's ablation table) costs milliseconds and always shows the numbers that were
written at evaluation time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.evaluation.config import CompareConfig
from maskmtl_cli.reports.tables import PAPER_TABLE1_MASKED, TableSpec, fmt, metric_digits

#: Headline metrics shown in the comparison, in column order.
COMPARED = ("gender_accuracy", "race_accuracy", "age_mae", "gender_macro_f1", "race_macro_f1",
            "age_cs")
COLUMN_NAMES = {"gender_accuracy": "Gender acc.", "race_accuracy": "Ethnicity acc.",
                "age_mae": "Age MAE", "gender_macro_f1": "Gender F1", "race_macro_f1": "Ethn. F1",
                "age_cs": "Age CS"}
#: Training-config keys that describe a model, shown in the "Model" column when present.
#: Keys of a run's config.json that describe the model, and how the table labels them
#: (training saves the non-local switch as ``nonlocal_block``).
MODEL_KEYS = {"arch": "arch", "preset": "preset", "nonlocal_block": "nonlocal", "tasks": "tasks",
              "image_size": "image_size", "color_mode": "color_mode"}


def find_metrics(path: Path) -> Path:
    """The ``metrics.json`` a path names: the file itself, ``PATH/eval/`` or ``PATH/``."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / "eval" / "metrics.json",
                                                path / "metrics.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"No metrics.json for {path} (looked at "
                     f"{', '.join(str(c) for c in candidates)}). Evaluate it first with "
                     f"`maskmtl eval {path}`, or pass its eval folder or metrics.json.")


def discover_metrics(root: Path) -> list[Path]:
    """Every ``RUN/eval/metrics.json`` under ``root``, oldest run first."""
    found = sorted(Path(root).glob("*/eval/metrics.json"),
                   key=lambda path: (path.stat().st_mtime, str(path)))
    if not found:
        raise InputError(f"No evaluated runs under {root}/ (no */eval/metrics.json). Evaluate runs "
                         "with `maskmtl eval RUN` first, or name them: "
                         "`maskmtl eval --compare runs/a runs/b`.")
    return found


def _describe_model(train_config: dict[str, Any] | None) -> str:
    if not train_config:
        return "–"
    parts = []
    for key, label in MODEL_KEYS.items():
        value = train_config.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(label if value else f"no-{label}")
        elif isinstance(value, (list, tuple)):
            parts.append("+".join(map(str, value)))
        else:
            parts.append(str(value))
    return " ".join(parts) or "–"


def _read_entry(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        meta = metrics.get("meta", {})
        headline, count = metrics["headline"], metrics["n"]
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise DataError(f"Cannot read {path} as maskmtl eval metrics ({error}). Re-run "
                        "`maskmtl eval` on that run to rewrite it.") from None
    return {"name": meta.get("run_name") or path.parent.parent.name, "metrics_file": str(path),
            "model": _describe_model(meta.get("train_config")), "split": meta.get("split"),
            "manifest": meta.get("manifest"), "manifest_sha1": meta.get("manifest_sha1"),
            "flip": meta.get("flip"), "n": count, "headline": headline,
            "intervals": metrics.get("intervals", {})}


def compare_runs(config: CompareConfig) -> dict[str, Any]:
    """Collect the saved metrics of several runs; write ``compare.md``/``.json`` with ``out_dir``.

    Returns:
        ``runs`` (one entry per run), the paper's row and ``warnings`` (for example runs that were
        evaluated on different manifests or splits, which makes their numbers incomparable).

    Raises:
        InputError: A run has no ``metrics.json``, or none is found under ``runs_root``.
        DataError: A ``metrics.json`` is not one written by ``maskmtl eval``.
    """
    files = [find_metrics(path) for path in config.runs] or discover_metrics(config.runs_root)
    entries = [_read_entry(path) for path in files]
    warnings = []
    if len({(entry["manifest_sha1"], entry["split"]) for entry in entries}) > 1:
        warnings.append("The runs were evaluated on different manifests or splits, so their "
                        "numbers are not directly comparable (see the Split column and "
                        "each metrics.json).")
    comparison = {"runs": entries, "paper_table1_masked": PAPER_TABLE1_MASKED,
                  "warnings": warnings}
    if config.out_dir is not None:
        from maskmtl_cli.io import json_ready, write_text_atomic
        from maskmtl_cli.reports.tables import to_markdown

        out_dir = Path(config.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        comparison["files"] = [str(out_dir / "compare.json"), str(out_dir / "compare.md")]
        write_text_atomic(out_dir / "compare.json",
                          json.dumps(json_ready(comparison), indent=2) + "\n")
        write_text_atomic(out_dir / "compare.md", to_markdown(comparison_table(comparison), 2))
    return comparison


def _cell(entry: dict[str, Any], name: str, separator: str = " ") -> str:
    value = entry["headline"].get(name)
    digits = metric_digits(name)
    interval = entry["intervals"].get(name)
    if value is None or interval is None:
        return fmt(value, digits)
    return (f"{fmt(value, digits)}{separator}({fmt(interval['low'], digits)}-"
            f"{fmt(interval['high'], digits)})")


def comparison_table(comparison: dict[str, Any], compact: bool = False) -> TableSpec:
    """One row per run plus the paper's Table 1 masked row; cells show value (95% CI).

    Args:
        comparison: What ``compare_runs`` returned.
        compact: For narrow terminals: only accuracy and MAE columns, with the model, split and
            face count stacked under the run name and each interval under its value.
    """
    shown = COMPARED[:3] if compact else COMPARED
    names = [name for name in shown
             if any(name in entry["headline"] for entry in comparison["runs"])]
    paper = PAPER_TABLE1_MASKED
    paper_cells = [fmt(paper[name], metric_digits(name)) if name in paper else "–"
                   for name in names]
    if compact:
        rows = [("\n".join((entry["name"], entry["model"],
                            f"{entry['split'] or '–'}, {entry['n']} faces")),
                 *(_cell(entry, name, "\n") for name in names)) for entry in comparison["runs"]]
        rows.append(("MaskMTL paper\nTable 1, masked\nUTKFace part II", *paper_cells))
        columns = ("Run", *(COLUMN_NAMES[name] for name in names))
    else:
        rows = [(entry["name"], entry["model"], entry["split"] or "–", str(entry["n"]),
                 *(_cell(entry, name) for name in names)) for entry in comparison["runs"]]
        rows.append(("MaskMTL paper, Table 1 (masked)", "as published", "UTKFace part II", "–",
                     *paper_cells))
        columns = ("Run", "Model", "Split", "Faces", *(COLUMN_NAMES[name] for name in names))
    note = " ".join(["Cells: value (bootstrap CI) as saved by `maskmtl eval`.",
                     *comparison["warnings"]])
    return TableSpec("Runs compared", columns, tuple(rows), note)
