"""benchmarks/seed_summary.py: mean and spread of evaluated runs over training seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_summary.py"


def write_run(root: Path, name: str, gender: float, race: float, age: float) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    headline = {"gender_accuracy": gender, "race_accuracy": race, "age_mae": age}
    (run / "eval" / "metrics.json").write_text(json.dumps({"headline": headline}))
    return run


def test_runs_are_grouped_by_row_with_mean_and_sample_spread(tmp_path):
    runs = [write_run(tmp_path, "hier-nl", 0.88, 0.60, 9.0),
            write_run(tmp_path, "hier-nl-s1", 0.90, 0.62, 9.2),
            write_run(tmp_path, "hier-nl-s2", 0.89, 0.64, 9.4),
            write_run(tmp_path, "hard", 0.87, 0.50, 9.5)]
    unevaluated = tmp_path / "soft"
    unevaluated.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT), *map(str, runs), str(unevaluated)],
                          capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    assert lines[2] == "| hier-nl | 3 | 0.8900 ± 0.0100 | 0.6200 ± 0.0200 | 9.20 ± 0.20 |"
    assert lines[3] == "| hard | 1 | 0.8700 | 0.5000 | 9.50 |"
    assert "skipping" in done.stderr and "soft" in done.stderr
