"""``PredictConfig``: the options of ``maskmtl predict`` and their defaults (standard library
only, so that the CLI reads them for its help without importing numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.schema import DEFAULT_DETECTOR, DEFAULT_ENGINE

#: ``--faces``: every face of a photo, or the largest.
FACE_MODES = ("all", "largest")
#: ``--video-min-face``: in 640x480 frames RetinaFace then searches the frame at 1.2 times its
#: size (13.7 ms a frame on the test clip) instead of 2.4 times with photos' 20 (68.2 ms), and
#: found the same faces there (docs/predict.md#videos).
VIDEO_MIN_FACE = 40


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
    # videos (docs/predict.md#videos)
    every: int = 1  # predict on every Nth frame
    video_min_face: int = VIDEO_MIN_FACE  # --min-face for video frames
    camera: int | None = None  # a camera by index instead of (or besides) files
    tracks_path: Path | None = None  # the per-track summary (.json, or .csv)
