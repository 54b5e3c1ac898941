"""``PredictConfig``: the options of ``maskmtl predict`` and their defaults (standard library
only, so that the CLI reads them for its help without importing numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.schema import DEFAULT_DETECTOR, DEFAULT_ENGINE

#: ``--faces``: every face of a photo, or the largest.
FACE_MODES = ("all", "largest")


@dataclass(frozen=True)
class PredictConfig:
    """Options of one `maskmtl predict` run (defaults are the CLI's)."""

    inputs: tuple[Path, ...]
    model: Path | None = None
    detector: str = DEFAULT_DETECTOR
    aligned: bool = False
    faces: str = "all"
    min_face: int = 20
    flip: bool = False
    strict: bool = False
    batch_size: int = 256
    annotate_dir: Path | None = None
    cam_dir: Path | None = None
    engine: str = DEFAULT_ENGINE
    masks_dir: Path | None = None  # predicted mask PNGs (a model with a segmentation head)
