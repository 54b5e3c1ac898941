"""Tasks from a labels file and the segmentation head, through the real CLI on tiny images.

A folder shaped like a `maskmtl mask --save-masks` output (images, masks.csv, _masks/*.png) is
split with a labels CSV holding a 3-class column, a 4-class column, a regression column and
gaps; the model trained on it is evaluated and predicts, and a bare .onnx export is enough.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app

runner = CliRunner()
TRAIN = ["--preset", "tiny", "--image-size", "32", "--batch-size", "16", "--epochs", "1",
         "--no-progress", "--eager"]
EXPRESSIONS = ("happy", "neutral", "unhappy")
AGE_GROUPS = ("<10", "10-20", "20-40", ">40")


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def write_mask_run(root: Path, count: int = 60) -> Path:
    """Images with a bright 'mask' over their lower half, masks.csv and _masks/<name>.png."""
    rng = np.random.default_rng(5)
    (root / "_masks").mkdir(parents=True)
    records = []
    for index in range(count):
        name = f"face{index:03d}.png"
        image = rng.integers(0, 120, (40, 40, 3), dtype=np.uint8)
        top = 18 + index % 6  # the mask's top edge moves, so there is something to learn
        image[top:, 6:34] = 230
        mask = np.zeros((40, 40), np.uint8)
        mask[top:, 6:34] = 255
        cv2.imwrite(str(root / name), image)
        cv2.imwrite(str(root / "_masks" / f"{name}.png"), mask)
        records.append({"index": index, "source": name, "output": name,
                        "mask": f"_masks/{name}.png", "status": "masked",
                        "template": ("surgical", "n95")[index % 2]})
    pd.DataFrame(records).to_csv(root / "masks.csv", index=False)
    return root


def write_labels(path: Path, count: int = 60) -> Path:
    """filename, age, gender, expression (3 classes), age_group (4), score (a number), gaps."""
    rng = np.random.default_rng(6)
    rows = []
    for index in range(count):
        rows.append({
            "filename": f"face{index:03d}.png",
            "age": int(rng.integers(1, 80)),
            "gender": int(rng.integers(0, 2)) if index % 7 else "",  # some unknown
            "expression": EXPRESSIONS[index % 3] if index % 5 else "",
            "age_group": AGE_GROUPS[index % 4] if index % 4 != 3 or index < 8 else "",
            "score": round(float(rng.normal(50, 10)), 2) if index % 6 else "",
        })
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    write_mask_run(root / "masked")
    write_labels(root / "labels.csv")
    return root


@pytest.fixture(scope="module")
def manifest(workspace) -> Path:
    result = invoke("split", workspace / "masked", "--labels", workspace / "labels.csv",
                    "-o", workspace / "manifest.csv", "--ratios", "0.6,0.2,0.2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["masks"] == 60
    assert set(summary["label_columns"]) == {"expression", "age_group", "score"}
    return workspace / "manifest.csv"


@pytest.fixture(scope="module")
def trained(workspace, manifest) -> Path:
    spec = workspace / "tasks.yaml"
    spec.write_text("age: {}\ngender: {}\nexpression:\n  kind: classification\n"
                    "age_group:\n  classes: ['<10', '10-20', '20-40', '>40']\n  attach: block2\n"
                    "score:\n  kind: regression\n  weight: 0.5\n")
    result = invoke("train", manifest, *TRAIN, "--task-spec", spec, "--segmentation",
                    "--project", workspace / "runs", "--name", "custom",
                    "--cache-dir", workspace / "cache", "--json")
    assert result.exit_code == 0, result.output
    return workspace / "runs" / "custom"


def test_split_keeps_every_label_column_and_the_masks(manifest):
    table = pd.read_csv(manifest)
    assert list(table.columns)[:7] == ["path", "filename", "age", "gender", "race", "sha1",
                                       "split"]
    assert {"mask", "expression", "age_group", "score"} <= set(table.columns)
    assert table["mask"].str.startswith("masked/_masks/").all()
    assert table["expression"].isna().sum() == 12 and table["race"].isna().all()


def test_train_reads_classes_from_the_labels_and_masks_missing_ones(trained):
    tasks = json.loads((trained / "tasks.json").read_text())
    by_name = {task["name"]: task for task in tasks["tasks"]}
    assert list(by_name) == ["age", "gender", "expression", "age_group", "score"]
    assert by_name["expression"]["classes"] == list(EXPRESSIONS)  # sorted distinct values
    assert by_name["age_group"]["classes"] == list(AGE_GROUPS)  # the spec's order
    assert by_name["age_group"]["attach"] == "block2" and by_name["score"]["weight"] == 0.5
    assert tasks["segmentation"] is True
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["train_images"] == 36 and summary["dropped_unlabelled"] == {}
    assert set(summary["onnx_parity"]) == {"age", "gender", "expression", "age_group", "score",
                                           "segmentation"}
    history = (trained / "history.csv").read_text().splitlines()[0].split(",")
    for column in ("val_expression_acc", "val_age_group_acc", "val_score_mae",
                   "val_segmentation_iou", "val_gender_acc"):
        assert column in history


def test_eval_scores_every_task_and_the_masks(trained, workspace):
    result = invoke("eval", trained, "--report", "--bootstrap", "50", "--min-group", "1",
                    "--group-by", "expression", "--cache-dir", workspace / "cache")
    assert result.exit_code == 0, result.output
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert metrics["tasks"] == ["age", "gender", "expression", "age_group", "score"]
    expression = metrics["classification"]["expression"]
    assert expression["classes"] == list(EXPRESSIONS)
    assert np.asarray(expression["confusion"]).shape == (3, 3)
    assert len(metrics["classification"]["age_group"]["per_class"]) == 4
    assert metrics["regression"]["score"]["mae"] > 0 and metrics["age"]["bands"]
    assert metrics["skipped"]["race"] == "the model does not predict it"
    assert 0 <= metrics["segmentation"]["iou"] <= 1 and metrics["segmentation"]["n"] == 12
    assert "segmentation_iou" in metrics["intervals"]
    assert metrics["fairness"]["group_by"] == ["expression"]
    assert [group["group"] for group in metrics["fairness"]["groups"]] == list(EXPRESSIONS)
    report = (trained / "eval" / "report.md").read_text()
    assert "## expression" in report and "## Mask segmentation" in report
    assert (trained / "eval" / "confusion_age_group.png").is_file()
    assert "Table 1" in result.stdout and "expression macro F1" in result.stdout
    columns = pd.read_csv(trained / "eval" / "predictions.csv").columns
    assert {"expression_true", "p_expression_unhappy", "score_pred", "segmentation_iou"} <= \
        set(columns)


def test_predict_lists_each_task_by_name_and_writes_masks(trained, workspace, tmp_path):
    photo = workspace / "masked" / "face001.png"
    result = invoke("predict", photo, "--model", trained, "--aligned", "--json",
                    "--masks", tmp_path / "masks")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)[0]
    assert record["gender"] in ("male", "female") and record["ethnicity"] is None
    assert record["expression"] in EXPRESSIONS
    assert set(record["expression_probabilities"]) == set(EXPRESSIONS)
    assert record["age_group"] in AGE_GROUPS and isinstance(record["score"], float)
    written = cv2.imread(str(tmp_path / "masks" / "face001_face0.png"), cv2.IMREAD_GRAYSCALE)
    assert written.shape == (40, 40) and set(np.unique(written)) <= {0, 255}
    table = invoke("predict", photo, "--model", trained, "--aligned", "--csv")
    row = next(csv.DictReader(io.StringIO(table.stdout)))
    assert row["expression"] == record["expression"] and "p_age_group_<10" in row
    assert float(row["score"]) == pytest.approx(record["score"], abs=1e-3)


def test_predicted_masks_of_detected_faces_and_models_without_the_head(trained, tmp_path,
                                                                      astronaut_path):
    result = invoke("predict", astronaut_path, "--model", trained, "--masks", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "Predicted masks: 1 in" in result.stderr
    written = cv2.imread(str(tmp_path / "m" / "astronaut_face0.png"), cv2.IMREAD_GRAYSCALE)
    assert written.shape == (200, 200)  # the frame of the aligned crop
    refused = invoke("predict", astronaut_path, "--masks", tmp_path / "n")  # bundled model
    assert refused.exit_code == 1 and "--segmentation" in refused.stderr
    assert not (tmp_path / "n").exists()


def test_a_bare_onnx_file_knows_its_tasks(trained, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(trained / "best.onnx", alone / "model.onnx")
    from maskmtl_cli import inference

    model = inference.load_model(alone / "model.onnx")
    specs = {spec.name: spec for spec in inference.task_specs(model)}
    assert specs["expression"].classes == EXPRESSIONS and specs["score"].kind == "regression"
    assert inference.has_segmentation(model)
    keras_model = inference.load_model(trained, "keras")  # tasks.json beside best.keras
    assert inference.task_specs(keras_model) == inference.task_specs(model)


def test_unknown_or_unusable_tasks_fail_before_training(manifest, tmp_path):
    common = [manifest, *TRAIN, "--project", tmp_path / "runs"]
    unknown = invoke("train", *common, "--tasks", "age,mood")
    assert unknown.exit_code == 1
    assert "Unknown task 'mood'" in unknown.output and "expression, age_group" in unknown.output
    numeric = invoke("train", *common, "--tasks", "score")  # a number taken as classes
    assert numeric.exit_code == 1 and "score:regression" in numeric.output
    loop = tmp_path / "loop.yaml"
    loop.write_text("expression: {attach: 'branch:age_group'}\n"
                    "age_group: {attach: 'branch:expression'}\n")
    looped = invoke("train", *common, "--task-spec", loop)
    assert looped.exit_code == 1 and "loop" in looped.output
    assert invoke("train", *common, "--tasks", "age,expression:numbers").exit_code == 1
    assert not (tmp_path / "runs").exists()


def test_resume_keeps_the_tasks_their_classes_and_the_masks(trained, workspace, tmp_path):
    run_dir = tmp_path / "custom"
    shutil.copytree(trained, run_dir)
    result = invoke("train", "--resume", run_dir, "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["epochs_run"] == 2 and summary["segmentation"] is True
    assert [task["classes"] for task in summary["task_specs"]][2:4] == [list(EXPRESSIONS),
                                                                       list(AGE_GROUPS)]
    with (run_dir / "history.csv").open() as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["1", "2"]
