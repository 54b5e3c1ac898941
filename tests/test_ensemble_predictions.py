"""benchmarks/ensemble_predictions.py: scoring averaged predictions from `maskmtl eval`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ensemble_predictions.py"
spec = importlib.util.spec_from_file_location("ensemble_predictions", SCRIPT)
ensemble_predictions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ensemble_predictions)


def table(p_female, p_white, age_pred, paths=("a.jpg", "b.jpg")) -> pd.DataFrame:
    rows = []
    for path, female, white, age in zip(paths, p_female, p_white, age_pred):
        rest = (1 - white) / 4
        rows.append({"path": path, "age_true": 30.0, "age_pred": age, "gender_true": 1,
                     "p_female": female, "race_true": 0, "p_White": white, "p_Black": rest,
                     "p_Asian": rest, "p_Indian": rest, "p_Others": rest})
    return pd.DataFrame(rows)


def test_the_average_can_be_right_where_each_model_is_half_wrong():
    # Each model gets one face wrong, confidently right on the other: the average gets both.
    first = table(p_female=[0.9, 0.4], p_white=[0.9, 0.1], age_pred=[20.0, 40.0])
    second = table(p_female=[0.4, 0.9], p_white=[0.1, 0.9], age_pred=[40.0, 20.0])
    assert ensemble_predictions.score(first, first["p_female"].to_numpy(),
                                      first[ensemble_predictions.RACE_COLUMNS].to_numpy(),
                                      first["age_pred"].to_numpy())["gender_accuracy"] == 0.5
    result = ensemble_predictions.ensemble([first, second])
    assert result == {"gender_accuracy": 1.0, "race_accuracy": 1.0, "age_mae": 0.0}


def test_files_of_different_images_are_refused():
    with pytest.raises(ValueError, match="different images"):
        ensemble_predictions.ensemble([table([0.9, 0.9], [0.9, 0.9], [30, 30]),
                                       table([0.9, 0.9], [0.9, 0.9], [30, 30],
                                             paths=("a.jpg", "c.jpg"))])
