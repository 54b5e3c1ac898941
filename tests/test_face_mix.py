"""Issue 21: masked versions (`mask --variants`), bare photos, occluders, photometric jitter,
the face mix of `train` and its `masked` output, on tiny data made here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.config import MaskConfig, variant_seed
from maskmtl_cli.masking.variants import variant_configs, variant_dir
from maskmtl_cli.training.config import TrainConfig, parse_face_mix
from maskmtl_cli.training.face_mix import BARE, MASKED, OCCLUDED, batch_kinds, compose_batch
from maskmtl_cli.training.occluders import TOP_RANGE, occlude, occluder_alpha
from maskmtl_cli.training.photometric import jitter
from maskmtl_cli.training.versions import FaceVersions, version_paths

runner = CliRunner()


def face(seed: int, size: int = 64) -> np.ndarray:
    """A cartoon face (BGR) on a noisy background, eyes at 30% and mouth at 70% height."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    cv2.ellipse(image, (size // 2, size // 2), (size * 3 // 8, size * 7 // 16), 0, 0, 360,
                tuple(int(v) for v in rng.integers(110, 230, 3)), -1)
    for side in (-1, 1):
        cv2.circle(image, (size // 2 + side * size // 5, size * 3 // 10), 3, (30, 30, 30), -1)
    cv2.ellipse(image, (size // 2, size * 7 // 10), (size // 7, size // 20), 0, 0, 360,
                (40, 40, 160), -1)
    return image


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory) -> Path:
    """24 labelled faces masked with --aligned --variants 3, split --seed 0."""
    root = tmp_path_factory.mktemp("mix")
    photos = root / "photos"
    photos.mkdir()
    for index in range(24):
        name = f"{10 + 3 * index}_{index % 2}_{index % 5}_2017011{index:02d}.jpg.chip.jpg"
        cv2.imwrite(str(photos / name), face(index))
    masked = root / "masked"
    result = runner.invoke(app, ["mask", str(photos), str(masked), "--aligned", "--variants",
                                 "3", "--workers", "1", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert [run["masked"] for run in summary["variants"]] == [24, 24, 24]
    return root


def test_variants_draw_other_masks_into_their_own_folders(masked_run):
    masked = masked_run / "masked"
    name = sorted(p.name for p in (masked_run / "photos").iterdir())[0]
    versions = [cv2.imread(str(variant_dir(masked, k) / name)) for k in range(3)]
    assert all(v is not None for v in versions)
    assert not np.array_equal(versions[0], versions[1])
    assert not np.array_equal(versions[1], versions[2])
    config = json.loads((variant_dir(masked, 2) / "mask_config.json").read_text())
    assert config["variant"] == 2 and config["preview"] == 0
    assert variant_seed(5, 3, 0) == [5, 3] and variant_seed(5, 3, 2) == [5, 3, 2]


def test_variant_configs_refuse_bad_counts(tmp_path):
    config = MaskConfig(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    assert [c.variant for c in variant_configs(config, 3)] == [0, 1, 2]
    with pytest.raises(InputError, match="--variants must be between 1"):
        variant_configs(config, 0)


def test_split_ignores_the_variants_and_keeps_its_assignment(masked_run, tmp_path):
    masked, photos = masked_run / "masked", masked_run / "photos"
    outputs = {}
    for name, folder in (("masked", masked), ("bare", photos)):
        out = tmp_path / f"{name}.csv"
        result = runner.invoke(app, ["split", str(folder), "-o", str(out), "--seed", "0"])
        assert result.exit_code == 0, result.output
        outputs[name] = pd.read_csv(out)
    assert len(outputs["masked"]) == 24  # the 48 other versions are not more photos
    joined = outputs["masked"].merge(outputs["bare"], on="filename")
    assert len(joined) == 24 and (joined["split_x"] == joined["split_y"]).all()
    bare, others = version_paths(outputs["masked"].assign(
        path=[str(masked / f) for f in outputs["masked"]["filename"]]))
    assert all(Path(path).parent == photos.resolve() or Path(path).parent == photos
               for path in bare)
    assert all(len(row) == 2 and Path(row[1]).is_file() for row in others)


def test_rows_outside_a_mask_run_have_no_bare_photo(tmp_path):
    rows = pd.DataFrame({"path": [str(tmp_path / "a.jpg")], "filename": ["a.jpg"]})
    bare, others = version_paths(rows)
    assert bare == [""] and others == [[]]


def test_batch_kinds_follow_the_mix_and_faces_without_a_bare_photo_stay_masked():
    rng = np.random.default_rng(0)
    kinds = batch_kinds(64, {"masked": 0.5, "occluded": 0.35, "bare": 0.15},
                        np.ones(64, bool), rng)
    assert np.bincount(kinds, minlength=3).tolist() == [32, 22, 10]
    has_bare = np.arange(64) % 2 == 0
    kinds = batch_kinds(64, {"bare": 1.0}, has_bare, rng)
    assert (kinds[~has_bare] == MASKED).all() and (kinds[has_bare] == BARE).all()


def test_face_mix_option_is_parsed_and_normalised():
    assert parse_face_mix("masked=2,bare=2") == {"masked": 0.5, "bare": 0.5}
    assert parse_face_mix("none") == {}
    with pytest.raises(InputError, match="Unknown name 'mouth' in --face-mix"):
        parse_face_mix("mouth=1")
    with pytest.raises(InputError, match="--photometric must be between 0 and 3"):
        TrainConfig(photometric=-1)


def test_occluders_cover_the_lower_face_only():
    size = 48
    for seed in range(40):
        alpha = occluder_alpha(size, np.random.default_rng(seed))
        # nothing above just under the eyes (the top edge may tilt or bend a little)
        assert alpha[: int((TOP_RANGE[0] - 0.1) * size)].max() == 0
        assert alpha[int(0.85 * size):].max() > 0.5  # the chin is covered
    image = np.full((size, size, 3), 128, np.uint8)
    donor = np.zeros_like(image)
    out = occlude(image, np.random.default_rng(1), donor)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[:10], image[:10]) and not np.array_equal(out, image)


def test_jitter_is_seeded_and_off_at_zero():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert jitter(image, np.random.default_rng(1), 0.0) is image
    first = jitter(image, np.random.default_rng(1), 1.0)
    assert np.array_equal(first, jitter(image, np.random.default_rng(1), 1.0))
    assert first.shape == image.shape and first.dtype == np.uint8
    gray = jitter(image[..., :1], np.random.default_rng(2), 2.0)
    assert gray.shape == (32, 32, 1)


def test_compose_batch_is_reproducible_and_uses_every_kind():
    rng = np.random.default_rng(0)
    versions = FaceVersions(masked=rng.integers(0, 256, (16, 2, 24, 24, 3), dtype=np.uint8),
                            bare=rng.integers(0, 256, (16, 24, 24, 3), dtype=np.uint8),
                            has_bare=np.ones(16, bool), versions=np.ones((16, 2), bool))
    mix = {"masked": 0.5, "occluded": 0.25, "bare": 0.25}
    rows = np.arange(16)
    one = compose_batch(versions, rows, mix, 1.0, np.random.default_rng(5))
    two = compose_batch(versions, rows, mix, 1.0, np.random.default_rng(5))
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    images, kinds = compose_batch(versions, rows, mix, 0.0, np.random.default_rng(6))
    for slot, kind in enumerate(kinds):
        if kind == BARE:
            assert np.array_equal(images[slot], versions.bare[slot])
        elif kind == MASKED:
            assert any(np.array_equal(images[slot], versions.masked[slot, k]) for k in (0, 1))
    assert set(kinds.tolist()) == {MASKED, OCCLUDED, BARE}


def test_train_mixes_faces_and_learns_the_masked_output(masked_run, tmp_path):
    manifest = tmp_path / "manifest.csv"
    assert runner.invoke(app, ["split", str(masked_run / "masked"), "-o", str(manifest),
                               "--seed", "0"]).exit_code == 0
    result = runner.invoke(app, [
        "train", str(manifest), "--preset", "tiny", "--image-size", "32", "--batch-size", "8",
        "--epochs", "2", "--no-progress", "--eager", "--project", str(tmp_path / "runs"),
        "--name", "mix", "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    table = pd.read_csv(manifest)
    val = int((table["split"] == "val").sum())
    assert summary["val_images"] == 2 * val  # every val face masked and bare
    history = pd.read_csv(tmp_path / "runs" / "mix" / "history.csv")
    assert "val_masked_acc" in history.columns and len(history) == 2
    tasks = json.loads((tmp_path / "runs" / "mix" / "tasks.json").read_text())
    assert "masked" in json.dumps(tasks)
    config = json.loads((tmp_path / "runs" / "mix" / "config.json").read_text())
    assert config["face_mix"] == {"masked": 0.5, "occluded": 0.35, "bare": 0.15}
