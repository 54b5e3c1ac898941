"""Issue 21's held-out checks: the sticker generator (tools/heldout_stickers.py) and the
realphotos agreement figures (benchmarks/realphotos_agreement.py), on data made here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from maskmtl_cli.data.manifest import write_manifest
from tools import heldout_stickers

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "realphotos_agreement.py"


def _agreement():
    spec = importlib.util.spec_from_file_location("realphotos_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stickers_are_hard_edged_and_cover_the_lower_face_only():
    image = np.full((64, 64, 3), 120, np.uint8)
    bank = [np.full((120, 120, 3), value, np.uint8) for value in (10, 240)]
    for seed in range(20):
        out = heldout_stickers.apply_sticker(image, bank, np.random.default_rng(seed))
        changed = (out != image).any(axis=2)
        assert not changed[:24].any()  # nothing at or above the eyes (30% of 64 = 19 px)
        assert changed[48:56, 28:36].all()  # mouth and chin covered
        # hard edges: every pixel is the photo or the (here uniform) texture, nothing between
        assert len(np.unique(out[changed], axis=0)) == 1
        assert (out[~changed] == 120).all()


def test_sticker_set_keeps_rows_labels_and_splits(tmp_path):
    rows = []
    for index in range(6):
        path = tmp_path / "bare" / f"{20 + index}_0_1_2017{index}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), np.full((64, 64, 3), 40 * index, np.uint8))
        rows.append({"path": str(path), "filename": path.name, "age": 20 + index,
                     "gender": 0, "race": 1, "sha1": f"{index:040x}",
                     "split": ["train", "val", "test"][index % 3]})
    manifest = write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")
    count = heldout_stickers.write_sticker_set(manifest, tmp_path / "out", ("val", "test"), 0)
    assert count == 4
    written = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert sorted(written["split"]) == ["test", "test", "val", "val"]
    assert all((tmp_path / "out" / "images" / name).is_file() for name in written["filename"])
    again = tmp_path / "again"
    heldout_stickers.write_sticker_set(manifest, again, ("val",), 0)
    name = written.loc[written["split"] == "val", "filename"].iloc[0]
    assert (again / "images" / name).read_bytes() == (
        tmp_path / "out" / "images" / name).read_bytes()  # seeded per file


def test_pairs_count_as_the_same_photo_by_aspect_and_face_position():
    module = _agreement()
    bare = {"image_size": (400, 300), "box": [100, 50, 100, 120]}
    scaled = {"image_size": (800, 600), "box": [200, 100, 200, 240]}
    moved = {"image_size": (800, 600), "box": [500, 100, 200, 240]}
    assert module._same_photo(bare, scaled)
    assert not module._same_photo(bare, moved)
    assert not module._same_photo(bare, {"image_size": (300, 300), "box": [75, 50, 75, 120]})


def test_pair_figures_count_agreement_and_mask_probability():
    module = _agreement()
    def record(gender, ethnicity, age, p_female, p_mask):
        return {"gender": gender, "ethnicity": ethnicity, "age": age, "p_female": p_female,
                "masked_probabilities": {"no": 1 - p_mask, "yes": p_mask}}
    pairs = [(record("male", "White", 30, 0.1, 0.1), record("male", "Asian", 34, 0.3, 0.9)),
             (record("female", "Black", 20, 0.9, 0.2), record("male", "Black", 22, 0.4, 0.8))]
    figures = module._pair_figures(pairs)
    assert figures["gender_agreement"] == 0.5 and figures["ethnicity_agreement"] == 0.5
    assert figures["age_abs_change_mean"] == 3.0
    assert abs(figures["p_female_abs_change_mean"] - 0.35) < 1e-9
    assert abs(figures["p_masked_mean_masked"] - 0.85) < 1e-9
    assert module._pair_figures([]) == {}
