"""Frozen configuration of ``maskmtl eval``: the one place where its defaults live.

The resolved configuration is written into ``metrics.json`` beside the results, so every number
can be traced back to the exact options that produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maskmtl_cli.schema import DEFAULT_DETECTOR, EVAL_AGE_BAND_EDGES


@dataclass(frozen=True)
class MetricOptions:
    """How the metrics are computed.

    Attributes:
        bootstrap: Bootstrap resamples for the confidence intervals (0 turns them off).
        seed: Seed of the bootstrap's random generator; the same seed gives the same intervals.
        confidence: Coverage of the intervals (0.95 for 95%).
        cs_threshold: Cumulative score CS(t): share of faces whose age error is at most t years.
        age_band_edges: Lower edges of the age bands in years; the last band is open-ended.
        min_group_size: Fairness groups with fewer faces are listed but not ranked.
        gender_threshold: Probability of female at or above which the prediction is female.
    """

    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    cs_threshold: float = 5.0
    age_band_edges: tuple[float, ...] = EVAL_AGE_BAND_EDGES
    min_group_size: int = 20
    gender_threshold: float = 0.5


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation of a trained model.

    Attributes:
        run: Run folder or ``.keras`` file; None takes the most recent run under ``runs_root``.
        manifest: Manifest CSV; None uses the run's own (``config.json``) or ``manifest.csv``.
        split: Split to evaluate (``test``, ``val``, ``train`` or ``all``).
        out_dir: Output folder; None writes into ``RUN/eval``.
        report: Also write ``report.md`` and the PNG figures.
        batch_size: Images per prediction batch.
        flip: Average each prediction with that of the horizontally flipped image.
        engine: "onnx" (ONNX Runtime) or "keras".
        runs_root: Where runs are looked for when ``run`` is None.
        cache_dir: Image cache folder (``"default"``: the data layer's default; None: no cache).
        metrics: How the metrics are computed.
        group_by: Manifest columns whose value combinations form the fairness groups; empty
            means gender x ethnicity where those labels exist.
        detect: The manifest's images are photos: find and align their faces as `predict`
            does and score the largest face of each (``detection`` in metrics.json).
        detector: Face detector for ``detect`` (as ``maskmtl predict --detector``).
        min_face: Smallest face ``detect`` searches for, in pixels.
    """

    run: Path | None = None
    manifest: Path | None = None
    split: str = "test"
    out_dir: Path | None = None
    report: bool = False
    batch_size: int = 256
    flip: bool = False
    engine: str = "onnx"
    runs_root: Path = Path("runs")
    cache_dir: Path | str | None = "default"
    metrics: MetricOptions = field(default_factory=MetricOptions)
    group_by: tuple[str, ...] = ()
    detect: bool = False
    detector: str = DEFAULT_DETECTOR
    min_face: int = 20

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings)."""
        values = asdict(self)
        values["group_by"] = list(self.group_by)
        for key in ("run", "manifest", "out_dir", "runs_root", "cache_dir"):
            values[key] = None if values[key] is None else str(values[key])
        values["metrics"]["age_band_edges"] = list(self.metrics.age_band_edges)
        return values


@dataclass(frozen=True)
class CompareConfig:
    """A side-by-side comparison of runs that were evaluated before.

    Attributes:
        runs: Run folders, their ``eval`` folders or ``metrics.json`` files; empty compares every
            run under ``runs_root`` that has ``eval/metrics.json``.
        runs_root: Where runs are looked for when ``runs`` is empty.
        out_dir: When set, ``compare.md`` and ``compare.json`` are written there.
    """

    runs: tuple[Path, ...] = ()
    runs_root: Path = Path("runs")
    out_dir: Path | None = None


def parse_group_by(text: str | None) -> tuple[str, ...]:
    """``"gender,template"`` -> ("gender", "template"); None or "" -> () (the default)."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())
