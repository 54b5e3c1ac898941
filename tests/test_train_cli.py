"""`maskmtl train` through the real CLI on tiny generated data (32x32, one epoch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.data.manifest import write_manifest

runner = CliRunner()
# Tiny, eager runs: graph compilation costs ~10 s per model on a 2-core CPU. Tests that pass
# COMPILED instead exercise the compiled (tf.function) path.
COMPILED = ["--preset", "tiny", "--image-size", "32", "--batch-size", "16", "--epochs", "1",
            "--no-progress"]
FAST = [*COMPILED, "--eager"]


def write_dataset(folder: Path, count: int = 48, missing_race: int = 0, splits=None) -> Path:
    """Write ``count`` random 40x40 PNG faces-to-be and a manifest; returns the manifest path."""
    import cv2

    rng = np.random.default_rng(7)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    splits = splits or ["train"] * (count * 2 // 3) + ["val"] * (count // 6)
    splits = splits + ["test"] * (count - len(splits))
    rows = []
    for index in range(count):
        age = int(rng.integers(1, 90))
        image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        image[8:32, 8:32] = min(255, age * 3)  # a label-dependent patch, so there is signal
        name = f"images/{index:03d}.png"
        cv2.imwrite(str(folder / name), image)
        race = "" if index < missing_race else int(rng.integers(0, 5))
        rows.append({"path": str(folder / name), "filename": Path(name).name, "age": age,
                     "gender": int(rng.integers(0, 2)), "race": race,
                     "sha1": f"{index:040x}", "split": splits[index]})
    return write_manifest(pd.DataFrame(rows), folder / "manifest.csv")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny"))


def train(args, cwd: Path | None = None, monkeypatch=None):
    if cwd is not None and monkeypatch is not None:
        monkeypatch.chdir(cwd)
    return runner.invoke(app, ["train", *args])


def summary_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.mark.parametrize(
    "arch, nonlocal_flag, tasks, extra",
    [
        ("hierarchical", "--no-nonlocal", "age,gender,race", []),
        ("hierarchical", "--nonlocal", "gender,race", ["--augment"]),
        ("hard", "--no-nonlocal", "age", ["--lr-schedule", "plateau"]),
        ("hard", "--nonlocal", "age,gender,race", ["--uncertainty-weighting"]),
        ("soft", "--no-nonlocal", "age,race", ["--soft-l2", "0.01", "--color", "rgb"]),
        ("soft", "--nonlocal", "age,gender,race", []),
        ("hierarchical", "--nonlocal", "age,gender,race",
         ["--age-loss", "ldl", "--preset", "compact-gap", "--race-balance", "logit-adjust",
          "--weight-decay", "0.01", "--age-reweight", "sqrt-inv", "--augment"]),
        ("hard", "--no-nonlocal", "age,race", ["--age-loss", "log-l1"]),
    ],
)
def test_every_arch_trains_one_epoch(dataset, tmp_path, arch, nonlocal_flag, tasks, extra):
    compiled = (arch, nonlocal_flag) in {("hierarchical", "--no-nonlocal"), ("soft", "--nonlocal")}
    result = train([str(dataset), "--arch", arch, nonlocal_flag, "--tasks", tasks,
                    *(COMPILED if compiled else FAST), *extra,
                    "--project", str(tmp_path / "runs"), "--cache-dir", str(tmp_path), "--json"])
    summary = summary_of(result)
    run_dir = Path(summary["run_dir"])
    assert run_dir == tmp_path / "runs" / "train"
    for name in ("config.json", "best.keras", "best.onnx", "last.keras", "history.csv",
                 "curves.png", "summary.json", "state.json"):
        assert (run_dir / name).is_file(), name
    # best.onnx was checked against best.keras at export, and the collapse check ran.
    assert set(summary["onnx_parity"]) == set(tasks.split(","))
    assert set(summary["val_collapse"]) == set(tasks.split(","))
    assert summary["arch"] == arch and summary["nonlocal"] == (nonlocal_flag == "--nonlocal")
    assert summary["tasks"] == tasks.split(",")
    assert summary["epochs_run"] == 1 and summary["status"] == "finished"
    assert summary["train_images"] == 32 and summary["val_images"] == 8
    assert summary["images_per_second"] > 0 and summary["parameters"] > 0
    assert summary["run_eagerly"] is not compiled
    with (run_dir / "history.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 1 and float(rows[0]["val_loss"]) > 0
    for task in tasks.split(","):
        assert f"val_{'age_mae' if task == 'age' else task + '_acc'}" in rows[0]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["manifest"] == str(dataset.resolve()) and config["arch"] == arch
    if "--uncertainty-weighting" in extra:  # learned weights moved away from exp(0) = 1
        assert all(weight != 1.0 for weight in summary["task_weights"].values())
    if "--color" in extra:
        assert config["color_mode"] == "rgb" and config["soft_l2"] == 0.01


def test_default_manifest_and_run_names_and_reload(dataset, tmp_path, monkeypatch):
    """No manifest argument: manifest.csv in the working folder; runs/train, then runs/train2."""
    from maskmtl_cli import inference

    workdir = dataset.parent
    monkeypatch.chdir(workdir)
    with_progress = [arg for arg in COMPILED if arg != "--no-progress"]
    first = train([*with_progress, "--cache-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "runs/train" in first.stdout and "best" in first.stdout
    assert "epoch 1/1: loss" in first.stderr and "* best" in first.stderr
    second = train([*FAST, "--cache-dir", str(tmp_path), "--tasks", "age", "--json"])
    assert Path(summary_of(second)["run_dir"]) == Path("runs/train2")
    assert inference.latest_run("runs") == Path("runs/train2")

    # best.keras of a one-epoch run holds the same weights as last.keras's network.
    import keras

    model = inference.load_model("runs/train", "keras")  # the .keras file itself
    trainer = keras.saving.load_model("runs/train/last.keras")
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    predicted = inference.predict_arrays(model, images)
    direct = trainer.network(images.astype("float32"), training=False)
    # Equal up to float rounding: the ldl age is a 117-term expectation, summed in another order.
    np.testing.assert_allclose(predicted["age"], np.asarray(direct["age"])[:, 0], rtol=1e-6)
    np.testing.assert_allclose(predicted["race"], np.asarray(direct["race"]), atol=1e-6)
    again = inference.predict_arrays(inference.load_model("runs/train/best.keras", "keras"),
                                     images)
    np.testing.assert_array_equal(predicted["gender"], again["gender"])


def test_resume_continues_an_interrupted_run(dataset, tmp_path):
    project = tmp_path / "runs"
    common = [str(dataset), *FAST, "--project", str(project), "--cache-dir", str(tmp_path)]
    assert train([*common, "--name", "r", "--lr-schedule", "cosine"]).exit_code == 0
    refused = train([*common, "--name", "r"])
    assert refused.exit_code == 1
    assert "already exists" in refused.output and "--resume" in refused.output
    done = train(["--resume", str(project / "r"), "--no-progress"])
    assert done.exit_code == 1 and "--epochs" in done.output
    resumed = train(["--resume", str(project / "r"), "--epochs", "2", "--no-progress", "--json"])
    summary = summary_of(resumed)
    assert summary["epochs_run"] == 2 and summary["status"] == "finished"
    with (project / "r" / "history.csv").open() as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["1", "2"]
    state = json.loads((project / "r" / "state.json").read_text())
    assert state["epochs_done"] == 2


def test_nan_loss_stops_with_the_epoch_named(dataset, tmp_path):
    result = train([str(dataset), *FAST, "--lr", "1e30", "--project", str(tmp_path / "runs"),
                    "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "NaN in epoch 1" in result.output and "--lr" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--arch", "pyramid"], "Choose one of: hierarchical, hard, soft"),
        (["--tasks", "age,mood"], "Unknown task 'mood'. Choose any of: age, gender, race"),
        (["--preset", "huge"], "Choose one of: compact, wide, notebook"),
        (["--loss-weights", "age"], "TASK=WEIGHT"),
        (["--soft-l2", "0.1"], "--arch soft"),
        (["--image-size", "16"], "Image size 16 is too small for --arch hierarchical"),
        (["--arch", "hard", "--tasks", "gender", "--image-size", "8"], "at least 16x16"),
    ],
)
def test_bad_options_fail_clearly(dataset, tmp_path, args, expected):
    result = train([str(dataset), "--no-progress", "--project", str(tmp_path / "runs"), *args])
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_backend_cannot_change_once_keras_runs(dataset, tmp_path):
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "torch"
    result = train([str(dataset), *FAST, "--backend", other, "--project", str(tmp_path)])
    assert result.exit_code == 1
    assert f"--backend {other} cannot take effect" in result.output


def test_missing_default_manifest_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(["--no-progress"])
    assert result.exit_code == 1
    assert "No manifest found" in result.output and "maskmtl split" in result.output


def test_manifest_without_validation_rows(tmp_path):
    manifest = write_dataset(tmp_path, count=12, splits=["train"] * 8 + ["test"] * 4)
    result = train([str(manifest), *FAST, "--project", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert "no validation rows" in result.output and "maskmtl split" in result.output


def test_zero_byte_image_is_skipped_on_a_first_run(tmp_path):
    manifest = write_dataset(tmp_path, count=24)  # 16 train, 4 val, 4 test
    (tmp_path / "images" / "000.png").write_bytes(b"")  # a train image
    result = train([str(manifest), *FAST, "--project", str(tmp_path / "runs"),
                    "--cache-dir", str(tmp_path / "new-cache"), "--json"])
    summary = summary_of(result)
    assert summary["train_images"] == 15 and summary["unreadable_images"] == 1
    assert "000.png: empty file, 0 bytes" in " ".join(result.stderr.split())


def test_small_data_is_flagged(tmp_path):
    manifest = write_dataset(tmp_path, count=6, splits=["train"] * 4 + ["val"])
    result = train([str(manifest), *FAST, "--project", str(tmp_path / "runs"),
                    "--cache-dir", str(tmp_path), "--json"])
    summary = summary_of(result)
    assert (summary["train_images"], summary["val_images"]) == (4, 1)
    messages = " ".join(result.stderr.split())
    assert "Only 1 validation image:" in messages and "--ratios" in messages
    assert "Only 4 training images:" in messages


def test_read_only_project_folder_is_one_line_not_a_traceback(dataset, tmpfs):
    disk = tmpfs(1 << 20)
    disk.remount("ro")
    result = train([str(dataset), *FAST, "--project", str(disk / "runs")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not an OSError escaping the CLI
    assert f"Error: Cannot write {disk / 'runs'}: read-only file system." in result.stderr


def test_missing_labels_are_masked_dropped_or_refused(tmp_path):
    manifest = write_dataset(tmp_path, count=48, missing_race=3)
    common = [str(manifest), *FAST, "--project", str(tmp_path / "runs"),
              "--cache-dir", str(tmp_path)]
    masked = summary_of(train([*common, "--json"]))  # the default: out of race's loss only
    assert masked["train_images"] == 32 and masked["dropped_unlabelled"] == {}
    assert masked["missing_labels"] == "mask"
    failed = train([*common, "--missing-labels", "require"])
    assert failed.exit_code == 1
    assert "3 train and 0 val images have no race" in failed.output
    assert "--missing-labels mask" in failed.output and "--missing-labels drop" in failed.output
    assert train([*common, "--require-labels"]).exit_code == 1  # the older spelling
    dropped = train([*common, "--drop-missing", "--json"])
    summary = summary_of(dropped)
    assert summary["train_images"] == 29 and summary["dropped_unlabelled"] == {"train": 3}


class _StubModel:
    """Just enough of a Keras model for RunRecorder: an optimizer, stop_training and save."""

    def __init__(self):
        self.optimizer = type("Optimizer", (), {"learning_rate": 0.001})()
        self.stop_training = False
        self.saved = []

    def save(self, path):
        Path(path).write_bytes(b"model")
        self.saved.append(Path(path).name)


def test_recorder_keeps_the_best_epoch_and_stops_early(tmp_path):
    from maskmtl_cli.training.callbacks import RunRecorder

    best = []
    state = {"epochs_done": 0, "best_val_loss": float("inf"), "best_epoch": 0,
             "timed_images": 0, "timed_seconds": 0.0}
    recorder = RunRecorder(tmp_path, state, save_best=lambda model: best.append(1),
                           train_size=100, batch_size=50, early_stopping=2)
    model = _StubModel()
    recorder.set_model(model)
    for epoch, val_loss in enumerate([3.0, 2.0, 2.5, 2.6]):
        recorder.on_epoch_begin(epoch)
        for batch in range(2):
            recorder.on_train_batch_end(batch)
        recorder.on_epoch_end(epoch, {"loss": 1.0, "age_mae": 5.0, "val_loss": val_loss})
        if model.stop_training:
            break
    assert epoch == 3 and state["stopped_early"] is True
    assert state["best_epoch"] == 2 and state["best_val_loss"] == 2.0 and len(best) == 2
    assert state["epochs_done"] == 4 and state["timed_images"] == 50 + 3 * 100
    assert json.loads((tmp_path / "state.json").read_text())["best_epoch"] == 2
    assert (tmp_path / "last.keras").read_bytes() == b"model"
    with (tmp_path / "history.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["val_loss"] for row in rows] == ["3.0", "2.0", "2.5", "2.6"]
    assert list(rows[0])[:4] == ["epoch", "lr", "seconds", "loss"]


def test_recorder_stops_on_nan(tmp_path):
    from maskmtl_cli.training.callbacks import RunRecorder

    state = {"epochs_done": 0, "best_val_loss": float("inf"), "best_epoch": 0,
             "timed_images": 0, "timed_seconds": 0.0}
    recorder = RunRecorder(tmp_path, state, save_best=lambda model: None, train_size=10,
                           batch_size=10)
    model = _StubModel()
    recorder.set_model(model)
    recorder.on_epoch_begin(0)
    recorder.on_epoch_end(0, {"loss": float("nan"), "val_loss": 1.0})
    assert recorder.nan_epoch == 1 and model.stop_training
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "last.keras").exists()
