"""Score the average of several models' predictions (an ensemble) from `maskmtl eval` files.

Each argument is a ``predictions.csv`` written by ``maskmtl eval`` on the same split of the same
manifest (same rows in the same order). The ensemble averages P(female), the five ethnicity
probabilities and the predicted age, then prints gender accuracy, ethnicity accuracy and age
MAE over the labelled rows, next to each input's own figures.

Usage:

    python benchmarks/ensemble_predictions.py runs/a/eval/predictions.csv runs/b/eval/predictions.csv
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

RACE_COLUMNS = ["p_White", "p_Black", "p_Asian", "p_Indian", "p_Others"]


def score(table: pd.DataFrame, p_female: np.ndarray, p_race: np.ndarray,
          age: np.ndarray) -> dict[str, float]:
    """Gender accuracy, ethnicity accuracy and age MAE of the given predictions."""
    gender = table["gender_true"].notna().to_numpy()
    race = table["race_true"].notna().to_numpy()
    aged = table["age_true"].notna().to_numpy()
    return {
        "gender_accuracy": float(((p_female[gender] >= 0.5).astype(int)
                                  == table["gender_true"].to_numpy()[gender]).mean()),
        "race_accuracy": float((p_race[race].argmax(axis=1)
                                == table["race_true"].to_numpy()[race]).mean()),
        "age_mae": float(np.abs(age[aged] - table["age_true"].to_numpy()[aged]).mean()),
    }


def ensemble(tables: list[pd.DataFrame]) -> dict[str, float]:
    """Scores of the averaged predictions; ValueError if the files list different images."""
    first = tables[0]
    for other in tables[1:]:
        if len(other) != len(first) or not (other["path"].to_numpy() == first["path"].to_numpy()).all():
            raise ValueError("The prediction files list different images; evaluate every model "
                             "on the same manifest and split.")
    p_female = np.mean([t["p_female"].to_numpy() for t in tables], axis=0)
    p_race = np.mean([t[RACE_COLUMNS].to_numpy() for t in tables], axis=0)
    age = np.mean([t["age_pred"].to_numpy() for t in tables], axis=0)
    return score(first, p_female, p_race, age)


def main(paths: list[str]) -> int:
    if len(paths) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    tables = [pd.read_csv(path) for path in paths]
    print("| predictions | gender acc | ethnicity acc | age MAE |\n|---|---:|---:|---:|")
    rows = [(path, score(t, t["p_female"].to_numpy(), t[RACE_COLUMNS].to_numpy(),
                         t["age_pred"].to_numpy())) for path, t in zip(paths, tables)]
    rows.append((f"average of the {len(paths)}", ensemble(tables)))
    for name, result in rows:
        print(f"| {name} | {result['gender_accuracy']:.4f} | {result['race_accuracy']:.4f} | "
              f"{result['age_mae']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
