"""Learning-curve plot of a run folder's ``history.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

#: (column, panel title) of each panel, drawn when the column exists.
_PANELS = (
    ("loss", "total loss"),
    ("age_mae", "age MAE (years)"),
    ("gender_acc", "gender accuracy"),
    ("race_acc", "ethnicity accuracy"),
)


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of ``history.csv`` as floats (empty cells become NaN)."""
    with Path(path).open(newline="", encoding="utf-8") as stream:
        return [
            {key: math.nan if value in ("", None) else float(value) for key, value in row.items()}
            for row in csv.DictReader(stream)
        ]


def plot_curves(history_path: Path, output: Path, best_epoch: int | None = None) -> Path | None:
    """Plot train and validation curves per metric to a PNG.

    Args:
        history_path: The run's ``history.csv``.
        output: PNG to write.
        best_epoch: Epoch to mark with a vertical line.

    Returns:
        ``output``, or None when the history is empty.
    """
    rows = read_history(history_path) if Path(history_path).is_file() else []
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(key, title) for key, title in _PANELS if key in rows[0]]
    known = {key for key, _ in _PANELS}
    panels += [(key, key.replace("_", " ")) for key in rows[0]
               if key.endswith(("_acc", "_mae", "_iou")) and key not in known
               and not key.startswith("val_")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    epochs = [row["epoch"] for row in rows]
    for axis, (key, title) in zip(axes[0], panels):
        axis.plot(epochs, [row[key] for row in rows], marker=".", label="train")
        if f"val_{key}" in rows[0]:
            axis.plot(epochs, [row[f"val_{key}"] for row in rows], marker=".", label="val")
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return Path(output)
