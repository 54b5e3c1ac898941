"""`maskmtl unmask`, `maskmtl train-unmask` and `maskmtl eval --reconstruction`, end to end.

The faces are made here from the public-domain astronaut portrait: jittered aligned crops with
UTKFace-style names, masked by the real `maskmtl mask --aligned --save-masks --variants 2`,
split by `maskmtl split`; a one-epoch model is trained on them through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.unmasking import metrics
from maskmtl_cli.unmasking.config import DEFAULT_UNMASK_MODEL

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def astronaut_crop(astronaut_path: Path) -> np.ndarray:
    """The astronaut's face aligned like UTKFace's crops (200x200 RGB), as predict aligns it."""
    from maskmtl_cli.prediction.crops import face_crops
    from maskmtl_cli.prediction.inputs import read_image

    return face_crops(read_image(astronaut_path), "retinaface", "largest")[0][1]


def write_faces(folder: Path, crop: np.ndarray, count: int = 32, size: int = 64) -> Path:
    """Jittered copies of one aligned face (shift, scale, turn, light, mirror), named like
    UTKFace's files."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    for index in range(count):
        angle, scale = rng.uniform(-6, 6), rng.uniform(0.94, 1.06)
        matrix = cv2.getRotationMatrix2D((100, 100), angle, scale)
        matrix[:, 2] += rng.uniform(-5, 5, 2)
        face = cv2.warpAffine(crop, matrix, (200, 200), borderMode=cv2.BORDER_REFLECT_101)
        face = np.clip(face * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        if index % 2:
            face = face[:, ::-1]
        face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
        name = f"{30 + index % 20}_{index % 2}_{index % 3}_2017010{index:07d}.jpg.chip.jpg"
        cv2.imwrite(str(folder / name), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, astronaut_path) -> Path:
    root = tmp_path_factory.mktemp("unmask")
    write_faces(root / "bare", astronaut_crop(astronaut_path))
    result = invoke("mask", root / "bare", root / "masked", "--aligned", "--save-masks",
                    "--variants", "2", "--seed", "1", "--workers", "1")
    assert result.exit_code == 0, result.output
    result = invoke("split", root / "masked", "-o", root / "manifest.csv", "--seed", "0")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def trained(workspace) -> Path:
    result = invoke("train-unmask", workspace / "manifest.csv", "--project",
                    workspace / "runs", "--name", "tiny", "--epochs", "1", "--batch-size", "8",
                    "--image-size", "32", "--width", "0.25")
    assert result.exit_code == 0, result.output
    return workspace / "runs" / "tiny"


# --- metrics ---------------------------------------------------------------------------------

def test_psnr_over_a_region_and_identical_images():
    reference = np.full((8, 8, 3), 100, np.uint8)
    image = reference.copy()
    assert metrics.psnr(reference, image) == float("inf")
    image[:4] += 10  # the top half is 10 grey levels off
    region = np.zeros((8, 8), bool)
    region[:4] = True
    assert metrics.psnr(reference, image, region) == pytest.approx(10 * np.log10(255 ** 2 / 100))
    assert metrics.psnr(reference, image, ~region) == float("inf")
    assert np.isnan(metrics.psnr(reference, image, np.zeros((8, 8), bool)))


def test_ssim_map_is_scikit_image_s_gaussian_ssim():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    image = np.clip(reference + rng.normal(0, 25, reference.shape), 0, 255).astype(np.uint8)
    _, expected = structural_similarity(reference, image, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=255,
                                        channel_axis=2, full=True)
    np.testing.assert_allclose(metrics.ssim_map(reference, image), expected, atol=1e-9)
    assert metrics.ssim(reference, reference) == pytest.approx(1.0)


def test_telea_fills_only_the_hole():
    face = np.full((32, 32, 3), 90, np.uint8)
    hole = np.zeros((32, 32, 1), np.uint8)
    hole[16:26, 8:24] = 1
    masked = face.copy()
    masked[hole[:, :, 0] > 0] = (250, 0, 0)
    filled = metrics.telea(masked, hole)
    assert np.array_equal(filled[hole[:, :, 0] == 0], masked[hole[:, :, 0] == 0])
    assert np.abs(filled[hole[:, :, 0] > 0].astype(int) - 90).max() <= 2


# --- the network -----------------------------------------------------------------------------

def test_the_network_uses_the_given_mask_or_its_own():
    from maskmtl_cli.unmasking.network import build_unmask_network

    network = build_unmask_network(16, width=0.25)
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    given = np.zeros((2, 16, 16, 1), "float32")
    given[:, 8:] = 1.0
    out = network.predict_on_batch({"image": image, "mask": given})
    np.testing.assert_array_equal(out["used_mask"], given)
    # outside the mask the face is the input, inside it is painted
    np.testing.assert_allclose(out["face"][:, :8], image[:, :8], atol=1e-3)
    assert np.abs(out["face"][:, 8:] - image[:, 8:]).max() > 1
    own = network.predict_on_batch({"image": image, "mask": -np.ones_like(given)})
    expected = np.asarray(own["mask_probability"]) >= 0.5
    assert np.all(own["used_mask"][expected] == 1)  # the estimate, grown by a pixel


# --- train-unmask, eval --reconstruction, unmask ---------------------------------------------

def test_train_unmask_writes_a_resumable_run_and_its_onnx(trained):
    for name in ("config.json", "state.json", "history.csv", "last.weights.h5",
                 "unmask.keras", "unmask.onnx", "summary.json"):
        assert (trained / name).is_file(), name
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["train_faces"] > 10
    assert summary["onnx_parity"]["face"] < 0.5


def test_train_unmask_resumes_with_more_epochs(trained, tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(trained, copy)
    result = invoke("train-unmask", "--resume", copy, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "state.json").read_text())["epoch"] == 2
    assert len((copy / "history.csv").read_text().strip().splitlines()) == 3  # header + 2


def test_train_unmask_needs_masks(workspace, tmp_path):
    import pandas as pd

    table = pd.read_csv(workspace / "manifest.csv").drop(columns=["mask"])
    table["path"] = [str((workspace / path).resolve()) for path in table["path"]]
    table.to_csv(tmp_path / "no_masks.csv", index=False)
    result = invoke("train-unmask", tmp_path / "no_masks.csv", "--project", tmp_path)
    assert result.exit_code == 1
    assert "--save-masks" in result.output
    assert invoke("train-unmask", tmp_path / "missing.csv").exit_code == 1


def test_eval_reconstruction_scores_against_telea_and_the_attribute_model(trained, workspace,
                                                                         tmp_path):
    out = tmp_path / "rec"
    result = invoke("eval", "--reconstruction", "-m", workspace / "manifest.csv", "--split",
                    "all", "--unmask-model", trained, "-o", out, "--grid", "3", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["faces"] >= 20
    for method in ("model, own mask", "model, exact mask", "Telea, exact mask"):
        row = found["methods"][method]
        assert 5 < row["psnr_hole"] < 60 and 0 < row["ssim_face"] <= 1
    # the masked face itself is far from the bare one inside the mask
    assert found["methods"]["masked (no reconstruction)"]["psnr_hole"] < \
        found["methods"]["Telea, exact mask"]["psnr_hole"]
    for version in ("bare (reference)", "masked (no reconstruction)", "model, own mask"):
        assert 0 <= found["attributes"][version]["gender_accuracy"] <= 1
    for name in ("reconstruction.json", "reconstruction.csv", "reconstruction.md",
                 "reconstruction_grid.png"):
        assert (out / name).is_file()
    grid = cv2.imread(str(out / "reconstruction_grid.png"))
    assert grid.shape[0] > 3 * 32


def test_eval_reconstruction_needs_a_manifest_with_masks(tmp_path):
    result = invoke("eval", "--reconstruction")
    assert result.exit_code == 1 and "--manifest" in result.output


def test_unmask_with_a_trained_model_on_aligned_crops(trained, workspace, tmp_path):
    masked = workspace / "masked"
    out = tmp_path / "out"
    result = invoke("unmask", masked, out, "--aligned", "--model", trained, "--crops",
                    "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["photos"]
    inputs = sorted(path.name for path in masked.glob("*.jpg"))
    assert sorted(Path(record["file"]).name for record in records) == inputs
    assert sorted(path.name for path in out.glob("*.jpg")) == inputs
    assert (out / "unmask.json").is_file() and any((out / "_crops").iterdir())
    # rerun: every output exists, nothing is redone or lost
    before = {path.name: path.stat().st_mtime_ns for path in out.glob("*.jpg")}
    again = invoke("unmask", masked, out, "--aligned", "--model", trained, "--json")
    assert again.exit_code == 0
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.jpg")} == before
    assert [r["status"] for r in json.loads(again.stdout)["photos"]] == \
        [r["status"] for r in records]


def test_unmask_refuses_to_write_into_its_input_and_bad_models(trained, workspace, tmp_path):
    masked = workspace / "masked"
    result = invoke("unmask", masked, masked / "out")
    assert result.exit_code == 1 and "inside the input folder" in result.output
    assert invoke("unmask", masked).exit_code == 1
    attribute = Path(__file__).parents[1] / "maskmtl_cli/assets/models/maskmtl_default.onnx"
    result = invoke("unmask", masked, tmp_path / "o", "--model", attribute)
    assert result.exit_code == 1 and "not an unmasking model" in result.output
    result = invoke("unmask", masked, tmp_path / "o", "--model", tmp_path / "nothing.onnx")
    assert result.exit_code == 1 and "No unmasking model" in result.output
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "broken.jpg").write_bytes(b"not a jpeg")
    (inputs / "clip.mp4").write_bytes(b"not read")
    result = invoke("unmask", inputs, tmp_path / "o2", "--model", trained, "--json")
    assert result.exit_code == 0
    statuses = {Path(photo["file"]).name: photo["status"]
                for photo in json.loads(result.stdout)["photos"]}
    assert statuses == {"broken.jpg": "unreadable", "clip.mp4": "skipped (a video)"}
    assert sorted(path.name for path in inputs.iterdir()) == ["broken.jpg", "clip.mp4"]


@pytest.mark.skipif(not DEFAULT_UNMASK_MODEL.is_file(), reason="no shipped unmasking model")
def test_unmask_the_masked_astronaut_changes_only_the_mask(astronaut_path, tmp_path):
    """The bar: one output, the mask region changed, the rest as it was."""
    photos = tmp_path / "photos"
    photos.mkdir()
    # PNG all the way, so that an unchanged pixel is exactly the same
    cv2.imwrite(str(photos / "astronaut.png"), cv2.imread(str(astronaut_path)))
    assert invoke("mask", photos, tmp_path / "masked", "--save-masks", "--seed", "0",
                  "--workers", "1").exit_code == 0
    masked_path = tmp_path / "masked" / "astronaut.png"
    mask = cv2.imread(str(tmp_path / "masked" / "_masks" / "astronaut.png.png"),
                      cv2.IMREAD_GRAYSCALE) > 127
    out = tmp_path / "out"
    result = invoke("unmask", masked_path, out, "--json")
    assert result.exit_code == 0, result.output
    assert [path.name for path in out.iterdir() if path.suffix == ".png"] == ["astronaut.png"]
    faces = json.loads(result.stdout)["photos"][0]["faces"]
    assert [face["status"] for face in faces] == ["unmasked"]
    before = cv2.imread(str(masked_path)).astype(int)
    after = cv2.imread(str(out / "astronaut.png")).astype(int)
    changed = np.abs(after - before).max(axis=2) > 0
    assert np.abs(after - before)[mask].mean() > 20  # the mask is painted over
    assert changed[mask].mean() > 0.9
    near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=8) > 0
    assert not changed[~near].any()  # nothing farther than 8 pixels from the mask moved


@pytest.mark.skipif(not DEFAULT_UNMASK_MODEL.is_file(), reason="no shipped unmasking model")
def test_unmask_leaves_a_bare_face_alone(astronaut_path, tmp_path):
    result = invoke("unmask", astronaut_path, tmp_path / "out", "--json", "--side-by-side")
    assert result.exit_code == 0, result.output
    faces = json.loads(result.stdout)["photos"][0]["faces"]
    assert [face["status"] for face in faces] == ["no mask"]
    photo = cv2.imread(str(astronaut_path))
    pair = cv2.imread(str(tmp_path / "out" / "astronaut.jpg"))
    assert pair.shape[1] > 2 * photo.shape[1]
