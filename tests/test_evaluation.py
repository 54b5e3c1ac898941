"""Metrics of ``maskmtl_cli.evaluation.metrics`` against scikit-learn and hand computation."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from sklearn import metrics as skm

from maskmtl_cli.errors import DataError
from maskmtl_cli.evaluation.config import MetricOptions
from maskmtl_cli.evaluation.metrics import (
    age_metrics,
    bootstrap_intervals,
    classification_metrics,
    evaluate_predictions,
    fairness_breakdown,
    resample_indices,
)

RACES = ("White", "Black", "Asian", "Indian", "Others")
NO_BOOTSTRAP = MetricOptions(bootstrap=0, min_group_size=1)


def random_case(n: int = 400, seed: int = 3):
    """Labels with some unknowns and noisy predictions; class 'Others' never occurs at all."""
    rng = np.random.default_rng(seed)
    race = rng.integers(0, 4, n).astype(np.int8)
    gender = rng.integers(0, 2, n).astype(np.int8)
    age = rng.integers(1, 95, n).astype(np.float32)
    gender[:7], race[7:12], age[12:20] = -1, -1, np.nan
    scores = rng.random((n, 5))
    scores[np.arange(n), np.clip(race, 0, None)] += 0.7
    scores[:, 4] = 0.0
    predictions = {
        "age": np.nan_to_num(age, nan=40.0) + rng.normal(0, 9, n),
        "gender": np.clip(np.clip(gender, 0, 1) + rng.normal(0, 0.45, n), 0, 1),
        "race": scores / scores.sum(axis=1, keepdims=True),
    }
    return {"age": age, "gender": gender, "race": race}, predictions


def test_classification_matches_sklearn():
    labels, predictions = random_case()
    known = labels["race"] >= 0
    y_true, y_pred = labels["race"][known], predictions["race"][known].argmax(axis=1)
    result = classification_metrics(y_true, y_pred, RACES)

    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(5), zero_division=0)
    for k, row in enumerate(result["per_class"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[k], recall[k], f1[k], support[k]))
    for average in ("macro", "weighted"):  # sklearn's default: classes present in true or pred
        expected = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                       zero_division=0)
        got = [result[f"{average}_{m}"] for m in ("precision", "recall", "f1")]
        assert got == pytest.approx(expected[:3])
    assert result["confusion"] == skm.confusion_matrix(y_true, y_pred, labels=range(5)).tolist()
    assert np.allclose(result["confusion_normalized"],
                       skm.confusion_matrix(y_true, y_pred, labels=range(5), normalize="true"),
                       atol=1e-6)
    assert result["per_class"][4] == {"class": "Others", "precision": 0.0, "recall": 0.0,
                                      "f1": 0.0, "support": 0}


def test_gender_by_hand():
    labels = {"gender": np.array([0, 0, 1, 1, 1, -1])}
    predictions = {"gender": np.array([0.2, 0.6, 0.5, 0.4, 0.9, 0.9])}  # 0.5 counts as female
    result = evaluate_predictions(labels, predictions, NO_BOOTSTRAP)
    gender = result.classification["gender"]
    assert gender["n"] == 5 and gender["accuracy"] == pytest.approx(3 / 5)
    assert gender["majority_accuracy"] == pytest.approx(3 / 5)  # always "female"
    assert gender["confusion"] == [[1, 1], [1, 2]]
    assert gender["confusion_normalized"] == [[0.5, 0.5], [pytest.approx(1 / 3),
                                                           pytest.approx(2 / 3)]]
    male, female = gender["per_class"]
    assert (male["precision"], male["recall"], male["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (female["precision"], female["recall"], female["f1"]) == pytest.approx((2 / 3,) * 3)
    assert gender["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert gender["weighted_f1"] == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)
    assert result.tasks == ("gender",)
    assert set(result.skipped) == {"age", "race"}


def test_age_by_hand_and_sklearn():
    true = np.array([10.0, 20.0, 30.0, 45.0, 85.0])
    predicted = np.array([12.0, 20.0, 40.0, 44.0, 79.0])  # errors 2, 0, 10, -1, -6
    age = age_metrics(true, predicted, cs_threshold=5)
    assert age["mae"] == pytest.approx(19 / 5) == pytest.approx(
        skm.mean_absolute_error(true, predicted))
    assert age["rmse"] == pytest.approx(math.sqrt((4 + 0 + 100 + 1 + 36) / 5))
    assert age["rmse"] == pytest.approx(skm.root_mean_squared_error(true, predicted))
    assert age["bias"] == pytest.approx(5 / 5)
    assert age["cs"] == pytest.approx(3 / 5)  # |error| <= 5: 2, 0, -1
    bands = {band["band"]: band for band in age["bands"]}
    assert list(bands) == ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79",
                           "80+"]
    assert (bands["10-19"]["mae"], bands["30-39"]["mae"], bands["80+"]["mae"]) == (2, 10, 6)
    assert bands["80+"]["bias"] == -6 and bands["0-9"] == {"band": "0-9", "n": 0, "mae": None,
                                                          "bias": None}
    # Best constant guesses: the median (30) for MAE and CS, the mean (38) for RMSE.
    assert age["constant_baseline"] == {"mae": pytest.approx((20 + 10 + 0 + 15 + 55) / 5),
                                        "cs": pytest.approx(1 / 5),
                                        "rmse": pytest.approx(math.sqrt(3430 / 5))}


def test_unknown_labels_and_missing_tasks_are_not_scored():
    labels, predictions = random_case()
    only_gender = {"gender": labels["gender"], "race": np.full(len(labels["race"]), -1),
                   "age": np.full(len(labels["age"]), np.nan)}
    result = evaluate_predictions(only_gender, predictions, NO_BOOTSTRAP)
    assert result.tasks == ("gender",)
    assert result.skipped == {"age": "no known labels in the evaluated rows",
                              "race": "no known labels in the evaluated rows"}
    assert result.classification["gender"]["n"] == (labels["gender"] >= 0).sum()
    no_age_head = {task: predictions[task] for task in ("gender", "race")}
    result = evaluate_predictions(labels, no_age_head, NO_BOOTSTRAP)
    assert result.age is None and result.skipped == {"age": "the model does not predict it"}
    assert result.classification["race"]["n"] == (labels["race"] >= 0).sum()


def test_fairness_by_hand():
    # Four groups: male/White (3), male/Black (2), female/White (2), female/Black (1).
    labels = {"gender": np.array([0, 0, 0, 0, 0, 1, 1, 1]),
              "race": np.array([0, 0, 0, 1, 1, 0, 0, 1]),
              "age": np.array([20, 30, 40, 50, 60, 20, 30, 40], float)}
    race_scores = np.eye(5)[[0, 0, 1, 1, 0, 0, 0, 0]]
    predictions = {"gender": np.array([0.1, 0.1, 0.9, 0.2, 0.2, 0.8, 0.3, 0.7]),
                   "race": race_scores,
                   "age": np.array([22, 30, 40, 40, 60, 26, 31, 40], float)}
    options = MetricOptions(bootstrap=0, min_group_size=2)
    fairness = fairness_breakdown(labels, predictions, ("age", "gender", "race"), options)
    groups = {group["group"]: group for group in fairness["groups"]}
    assert list(groups) == ["male / White", "male / Black", "female / White", "female / Black"]
    assert groups["male / White"]["n"] == 3
    assert groups["male / White"]["gender_accuracy"] == pytest.approx(2 / 3)
    assert groups["male / White"]["race_accuracy"] == pytest.approx(2 / 3)
    assert groups["male / Black"]["race_accuracy"] == pytest.approx(1 / 2)
    assert groups["female / White"]["gender_accuracy"] == pytest.approx(1 / 2)
    assert groups["male / Black"]["age_mae"] == pytest.approx(5.0)
    assert groups["female / White"]["age_mae"] == pytest.approx(3.5)
    assert groups["male / White"]["age_rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert fairness["unranked"] == ["female / Black"]  # n=1 < 2: listed, not ranked
    summary = fairness["summary"]
    assert summary["gender_accuracy"]["worst"] == "female / White"
    assert summary["gender_accuracy"]["best"] == "male / Black"
    assert summary["gender_accuracy"]["gap"] == pytest.approx(1 - 1 / 2)
    assert summary["age_mae"]["worst"] == "male / Black"
    assert summary["age_mae"]["best"] == "male / White"
    assert summary["age_mae"]["gap"] == pytest.approx(5 - 2 / 3)
    assert summary["age_mae"]["higher_is_better"] is False


def test_bootstrap_matches_naive_resampling_and_is_deterministic():
    labels, predictions = random_case(n=300)
    options = MetricOptions(bootstrap=60, seed=11, confidence=0.9)
    tasks = ("age", "gender", "race")
    intervals = bootstrap_intervals(labels, predictions, tasks, options)
    assert intervals == bootstrap_intervals(labels, predictions, tasks, options)
    assert intervals != bootstrap_intervals(labels, predictions, tasks,
                                            MetricOptions(bootstrap=60, seed=12, confidence=0.9))
    naive = {"gender_accuracy": [], "race_macro_f1": [], "age_mae": [], "age_cs": []}
    for indices in resample_indices(300, 60, seed=11):
        for row in indices:
            gender, race = labels["gender"][row], labels["race"][row]
            g, r = gender >= 0, race >= 0
            naive["gender_accuracy"].append(skm.accuracy_score(
                gender[g], (predictions["gender"][row] >= 0.5)[g]))
            naive["race_macro_f1"].append(skm.f1_score(
                race[r], predictions["race"][row].argmax(axis=1)[r], average="macro",
                zero_division=0))
            age = ~np.isnan(labels["age"][row])
            errors = np.abs(predictions["age"][row][age] - labels["age"][row][age])
            naive["age_mae"].append(errors.mean())
            naive["age_cs"].append((errors <= 5).mean())
    for name, values in naive.items():
        low, high = np.percentile(values, [5, 95])
        assert intervals[name] == {"low": pytest.approx(low), "high": pytest.approx(high)}


def test_bootstrap_width_matches_normal_approximation():
    rng = np.random.default_rng(0)
    n = 2000
    gender = rng.integers(0, 2, n)
    correct = rng.random(n) < 0.8
    predictions = {"gender": np.where(correct, gender, 1 - gender).astype(float)}
    result = evaluate_predictions({"gender": gender}, predictions,
                                  MetricOptions(bootstrap=1000, seed=0))
    interval = result.intervals["gender_accuracy"]
    accuracy = correct.mean()
    assert interval["estimate"] == pytest.approx(accuracy)
    assert interval["low"] < accuracy < interval["high"]
    normal_width = 2 * 1.96 * math.sqrt(accuracy * (1 - accuracy) / n)
    assert interval["high"] - interval["low"] == pytest.approx(normal_width, rel=0.15)


def test_result_is_json_ready():
    labels, predictions = random_case()
    result = evaluate_predictions(labels, predictions, MetricOptions(bootstrap=50))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["tasks"] == ["age", "gender", "race"]
    assert set(data["intervals"]) == set(data["headline"]) == {
        "gender_accuracy", "gender_macro_f1", "race_accuracy", "race_macro_f1", "age_mae",
        "age_rmse", "age_cs"}
    assert data["headline"]["race_accuracy"] == data["classification"]["race"]["accuracy"]


@pytest.mark.parametrize(("labels", "message"), [
    ({"gender": np.array([0, 2, 1])}, "gender label(s) lie outside the model's classes"),
    ({"race": np.array([0, 7, 1])}, "found [7]"),
    ({"gender": np.array([0, 1])}, "differ in length"),
    ({"age": np.array([np.nan] * 3)}, "Nothing to score"),
])
def test_bad_labels(labels, message):
    predictions = {"gender": np.array([0.1, 0.9, 0.6]), "race": np.full((3, 5), 0.2)}
    with pytest.raises(DataError, match=re.escape(message)):
        evaluate_predictions(labels, predictions, NO_BOOTSTRAP)
