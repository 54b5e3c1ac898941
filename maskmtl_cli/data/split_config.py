"""``SplitConfig``: the options of ``maskmtl split`` and their defaults (standard library only,
so that the CLI reads them for its help without importing numpy or pandas)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STRATEGIES = ("random", "parts")


@dataclass(frozen=True)
class SplitConfig:
    """Everything ``maskmtl split`` needs; saved nowhere but echoed in ``--json``."""

    data_dir: Path
    output: Path = Path("manifest.csv")
    labels_csv: Path | None = None
    strategy: str = "random"
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test
    parts_csv: Path | None = None
    seed: int = 0
    keep_duplicates: bool = False  # keep every copy of a non-conflicting group (same split)
    keep_conflicts: bool = False  # keep groups whose copies disagree on labels
    overwrite: bool = False
