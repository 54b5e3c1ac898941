"""`maskmtl eval --detect`: labelled photos, faces found and aligned as `predict` does."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.prediction.predict import DEFAULT_MODEL

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKMTL_CACHE_DIR", str(tmp_path / "cache"))


def paste(face: np.ndarray, side: int, position: tuple[int, int], seed: int) -> np.ndarray:
    """``face`` scaled to ``side`` px on a 640x480 canvas of smooth random colour."""
    rng = np.random.default_rng(seed)
    canvas = cv2.resize(rng.integers(60, 200, (6, 8, 3), dtype=np.uint8), (640, 480),
                        interpolation=cv2.INTER_CUBIC)
    x, y = position
    canvas[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return canvas


def write_manifest(root: Path, rows: list[dict]) -> Path:
    path = root / "manifest.csv"
    pd.DataFrame(rows).assign(sha1="", split="test").to_csv(path, index=False)
    return path


def run_eval(manifest: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["eval", str(DEFAULT_MODEL), "--manifest", str(manifest),
                                 "--detect", "--bootstrap", "0", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "metrics.json").read_text())


def test_photos_of_the_astronaut_and_a_wall(tmp_path, astronaut_path):
    photo = cv2.imread(str(astronaut_path))
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo)
    cv2.imwrite(str(tmp_path / "large.jpg"),
                cv2.resize(photo, (1600, 1600), interpolation=cv2.INTER_CUBIC))
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((300, 400, 3), 200, np.uint8))
    rows = [{"path": str(tmp_path / name), "filename": name, "age": 42, "gender": 1, "race": 0}
            for name in ("photo.jpg", "large.jpg", "wall.png")]
    result, metrics = run_eval(write_manifest(tmp_path, rows), tmp_path / "out", "--report")
    detection = metrics["detection"]
    assert detection["photos"] == 3 and detection["photos_with_face"] == 2
    assert detection["faces_found"] == 2  # one face each, at 512 and at 1,600 px
    assert detection["no_face"] == [str(tmp_path / "wall.png")]
    assert detection["seconds_per_photo"] > 0 and metrics["n"] == 2
    assert "2 photos with a face" in metrics["headline_scope"]
    assert "wall.png" in result.output and "Face detection" in result.output
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Face detection" in report and "Faces per photo" in report
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert sorted(Path(p).name for p in predictions["path"]) == ["large.jpg", "photo.jpg"]
    # The same photo at two sizes is one face aligned about the same way: close ages (the
    # model moves a few years with a few pixels of alignment; 4.6 years apart here).
    assert abs(predictions["age_pred"].iloc[0] - predictions["age_pred"].iloc[1]) < 6


def test_no_face_anywhere_is_an_error_naming_the_way_out(tmp_path):
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((300, 400, 3), 200, np.uint8))
    manifest = write_manifest(tmp_path, [{"path": str(tmp_path / "wall.png"), "filename": "w",
                                          "age": 30, "gender": 0, "race": 0}])
    result = runner.invoke(app, ["eval", str(DEFAULT_MODEL), "--manifest", str(manifest),
                                 "--detect", "--bootstrap", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "No face was found" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_utkface_faces_pasted_into_photos_score_like_their_crops(tmp_path, shared_data):
    from maskmtl_cli.data.labels import parse_utkface_name

    crops = sorted((shared_data / "utkface200_part1").glob("*.jpg"))[::700][:12]
    rows, aligned_rows = [], []
    for index, path in enumerate(crops):
        label = parse_utkface_name(path.name)
        face = cv2.imread(str(path))
        side = 140 + 10 * index
        photo = paste(face, side, (40 + 30 * index, 480 - side - 10 * (index % 3)), index)
        photo_path = tmp_path / f"photo_{index}.jpg"
        cv2.imwrite(str(photo_path), photo)
        labels = {"age": label.age, "gender": label.gender, "race": label.race}
        rows.append({"path": str(photo_path), "filename": photo_path.name, **labels})
        aligned_rows.append({"path": str(path), "filename": path.name, **labels})
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), paste(np.full((10, 10, 3), 128, np.uint8), 10, (0, 0), 99))
    rows.append({"path": str(wall), "filename": "wall.png", "age": 30, "gender": 0, "race": 0})
    _, metrics = run_eval(write_manifest(tmp_path, rows), tmp_path / "photos")
    detection = metrics["detection"]
    assert detection["photos"] == 13 and detection["no_face"] == [str(wall)]
    assert detection["faces_found"] == 12 and metrics["n"] == 12
    aligned_manifest = tmp_path / "aligned" / "manifest.csv"
    aligned_manifest.parent.mkdir()
    pd.DataFrame(aligned_rows).assign(sha1="", split="test").to_csv(aligned_manifest, index=False)
    result = runner.invoke(app, ["eval", str(DEFAULT_MODEL), "--manifest",
                                 str(aligned_manifest), "--bootstrap", "0", "--out",
                                 str(tmp_path / "crops")])
    assert result.exit_code == 0, result.output
    crops_metrics = json.loads((tmp_path / "crops" / "metrics.json").read_text())
    photos = pd.read_csv(tmp_path / "photos" / "predictions.csv")
    aligned = pd.read_csv(tmp_path / "crops" / "predictions.csv")
    # Detected, aligned and cropped again, each face is predicted about as from its crop.
    assert np.abs(photos["age_pred"].to_numpy() - aligned["age_pred"].to_numpy()).mean() < 5
    agree = (photos["gender_pred"].to_numpy() == aligned["gender_pred"].to_numpy()).mean()
    assert agree >= 10 / 12
    assert "detection" not in crops_metrics
