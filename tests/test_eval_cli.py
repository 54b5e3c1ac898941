"""`maskmtl eval` through the real CLI: tiny generated faces, tiny Keras models, real files."""

from __future__ import annotations

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
SIZE = 32
RACES = ("White", "Black", "Asian", "Indian", "Others")


def build_model(path: Path, tasks=("age", "gender", "race")) -> Path:
    """A tiny functional model with the maskmtl contract: input "image", dict outputs in years,
    P(female) and race probabilities; saved as .keras."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((SIZE, SIZE, 1), name="image")
    features = keras.layers.Rescaling(1 / 255)(image)
    features = keras.layers.Conv2D(4, 3, activation="relu")(features)
    features = keras.layers.GlobalAveragePooling2D()(features)
    heads = {"age": keras.layers.Dense(1, name="age"),
             "gender": keras.layers.Dense(1, activation="sigmoid", name="gender"),
             "race": keras.layers.Dense(5, activation="softmax", name="race")}
    model = keras.Model(image, {task: heads[task](features) for task in tasks})
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Built once per module: a three-task model and a gender-only model."""
    root = tmp_path_factory.mktemp("models")
    return {"full": build_model(root / "full.keras"),
            "gender": build_model(root / "gender.keras", tasks=("gender",))}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKMTL_CACHE_DIR", str(tmp_path / "cache"))


def make_workspace(root: Path, models: dict[str, Path], n_test: int = 36) -> Path:
    """Images, ./manifest.csv (test + train rows) and runs/full with best.keras + config.json."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(n_test + 8):
        path = root / "faces" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (48, 48), dtype=np.uint8))
        rows.append({"path": f"faces/{index}.png", "filename": f"{index}.png",
                     "age": 5 + (index * 11) % 80, "gender": index % 2, "race": index % 5,
                     "sha1": "", "split": "test" if index < n_test else "train"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    add_run(root / "runs" / "full", models["full"], root / "manifest.csv")
    return root


def add_run(run_dir: Path, model: Path, manifest: Path | None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, run_dir / "best.keras")
    config = {"arch": "hierarchical", "tasks": ["age", "gender", "race"], "image_size": SIZE}
    if manifest is not None:
        config["manifest"] = str(manifest.resolve())
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


@pytest.fixture()
def workspace(tmp_path, models, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_workspace(tmp_path, models)


def run(*args: str):
    return runner.invoke(app, ["eval", *args], catch_exceptions=False)


def test_report_on_latest_run(workspace):
    result = run("--report", "--bootstrap", "200", "--min-group", "2")
    assert result.exit_code == 0, result.output
    assert "most recent one, runs/full" in result.stderr
    assert "Headline metrics" in result.stdout and "Table 1" in result.stdout
    out = workspace / "runs" / "full" / "eval"
    for name in ("metrics.json", "predictions.csv", "report.md", "confusion_gender.png",
                 "confusion_race.png", "age_scatter.png", "age_bands.png", "fairness.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "![gender confusion matrices](confusion_gender.png)" in report
    assert "| Gender accuracy |" in report and "0.8913" in report and "12.15" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 36 and metrics["meta"]["model_auto_selected"] is True
    assert metrics["meta"]["split"] == "test" and metrics["tasks"] == ["age", "gender", "race"]
    assert set(metrics["intervals"]) == set(metrics["headline"])
    assert metrics["fairness"]["summary"]["age_mae"]["worst"]

    # predictions.csv alone is enough to recompute the metrics.
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 36
    gender_accuracy = (table["gender_true"] == table["gender_pred"]).mean()
    assert metrics["headline"]["gender_accuracy"] == pytest.approx(gender_accuracy)
    race_pred = table[[f"p_{name}" for name in RACES]].to_numpy().argmax(axis=1)
    assert (race_pred == table["race_pred"]).all()
    assert metrics["headline"]["race_accuracy"] == pytest.approx(
        (table["race_true"] == table["race_pred"]).mean())
    assert metrics["headline"]["age_mae"] == pytest.approx(
        (table["age_pred"] - table["age_true"]).abs().mean(), abs=1e-2)


def test_json_output_is_pure_and_deterministic(workspace):
    first = run("runs/full", "--json", "--bootstrap", "100", "--seed", "3", "-o", "evalA")
    assert first.exit_code == 0, first.output
    metrics = json.loads(first.stdout)  # nothing but JSON on stdout
    assert metrics["meta"]["model_auto_selected"] is False
    assert metrics["options"]["seed"] == 3 and metrics["options"]["bootstrap"] == 100
    assert json.loads((workspace / "evalA" / "metrics.json").read_text())["headline"] == \
        metrics["headline"]
    again = json.loads(run("runs/full", "--json", "--bootstrap", "100", "--seed", "3",
                           "-o", "evalB").stdout)
    assert again["intervals"] == metrics["intervals"]


def test_other_manifest_with_only_gender_labels(workspace):
    table = pd.read_csv("manifest.csv")
    table["age"], table["race"] = np.nan, np.nan
    table.to_csv("gender_only.csv", index=False)
    result = run("runs/full", "--manifest", "gender_only.csv", "--split", "all", "--json",
                 "--bootstrap", "0", "-o", "other", "--flip")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["tasks"] == ["gender"] and metrics["n"] == 44 and metrics["meta"]["flip"]
    assert set(metrics["skipped"]) == {"age", "race"} and metrics["age"] is None
    assert metrics["fairness"]["group_by"] == ["gender"]


def test_gender_only_model(workspace, models):
    add_run(workspace / "runs" / "gender", models["gender"], None)
    result = run("runs/gender", "--report", "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    assert "Not scored: age (the model does not predict it)" in result.stdout.replace("\n", " ")
    out = workspace / "runs" / "gender" / "eval"
    assert (out / "confusion_gender.png").is_file() and not (out / "age_scatter.png").exists()
    assert "p_female" in (out / "predictions.csv").read_text().splitlines()[0]


def test_failed_images_are_listed_not_fatal(workspace):
    (workspace / "faces" / "0.png").write_bytes(b"not an image")
    (workspace / "faces" / "1.png").unlink()
    result = run("runs/full", "--json", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "2 images failed to load" in result.stderr
    assert "0.png (not a decodable image)" in result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 34 and len(metrics["meta"]["failures"]) == 2


def test_zero_byte_image_is_skipped_with_a_note(workspace):
    (workspace / "faces" / "4.png").write_bytes(b"")
    result = run("runs/full", "--json", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "4.png (empty file, 0 bytes)" in " ".join(result.stderr.split())
    assert json.loads(result.stdout)["n"] == 35 and "Traceback" not in result.output


def test_changed_images_are_re_read_not_served_from_a_stale_cache(workspace):
    def predictions() -> pd.DataFrame:
        result = run("runs/full", "--json", "--bootstrap", "0")
        assert result.exit_code == 0, result.output
        table = pd.read_csv(workspace / "runs" / "full" / "eval" / "predictions.csv")
        return table.assign(name=[Path(path).name for path in table["path"]]).set_index("name")

    before = predictions()
    assert list((workspace / "cache").glob("*.npz"))  # the second run may use the cache
    faces = workspace / "faces"
    replaced = cv2.imread(str(faces / "5.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(faces / "2.png"), 255 - replaced)  # another face, same size
    (faces / "3.png").write_bytes(b"")
    after = predictions()
    assert "3.png" in before.index and "3.png" not in after.index  # now empty: not scored
    assert after.loc["2.png", "p_female"] != before.loc["2.png", "p_female"]
    unchanged = [name for name in before.index if name not in ("2.png", "3.png")]
    pd.testing.assert_frame_equal(before.loc[unchanged], after.loc[unchanged])


def test_out_folder_never_replaces_an_input(workspace):
    shutil.copy(workspace / "manifest.csv", workspace / "predictions.csv")
    before = (workspace / "predictions.csv").read_bytes()
    result = run("runs/full", "--manifest", "predictions.csv", "--out", ".", "--bootstrap", "0")
    assert result.exit_code == 1, result.output
    assert "replacing the input predictions.csv" in " ".join(result.stderr.split())
    assert (workspace / "predictions.csv").read_bytes() == before


def test_compare(workspace, models):
    add_run(workspace / "runs" / "second", models["full"], workspace / "manifest.csv")
    for name in ("full", "second"):
        assert run(f"runs/{name}", "--bootstrap", "50", "--json").exit_code == 0
    result = run("--compare", "runs/full", "runs/second/eval", "-o", "comparison")
    assert result.exit_code == 0, result.output
    for text in ("full", "second", "MaskMTL paper", "0.8913", "12.15", "hierarchical"):
        assert text in result.stdout
    assert (workspace / "comparison" / "compare.md").read_text().count("\n| ") >= 3
    everything = json.loads(run("--compare", "--json").stdout)  # all evaluated runs under runs/
    assert [entry["name"] for entry in everything["runs"]] == ["full", "second"]
    assert everything["warnings"] == []


@pytest.mark.parametrize(("setup", "args", "message"), [
    (lambda ws: (ws / "runs" / "empty").mkdir(), ["runs/empty"], "No best.keras in"),
    (lambda ws: shutil.rmtree(ws / "runs"), [], "No trained run found"),
    (None, ["runs/full", "--split", "val"], "splits present: test (36 rows), train (8 rows)"),
    (None, ["runs/full", "runs/full"], "add --compare"),
    (None, ["--compare", "runs/full"], "Evaluate it first with `maskmtl eval runs/full`"),
    (lambda ws: pd.read_csv(ws / "manifest.csv").assign(race=7).to_csv(
        ws / "manifest.csv", index=False), ["runs/full"], "outside the model's classes"),
    (lambda ws: (ws / "manifest.csv").unlink(), ["runs/full"], "no longer exists"),
    (lambda ws: [p.unlink() for p in (ws / "faces").glob("*.png")], ["runs/full"],
     "None of the 36 images"),
])
def test_errors(workspace, setup, args, message):
    if setup is not None:
        setup(workspace)
    result = run(*args, "--bootstrap", "0")
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output


def test_usage_error_for_unknown_split(workspace):
    result = run("runs/full", "--split", "tset")
    assert result.exit_code == 2
