"""`maskmtl mask` through the real CLI, on small generated images and the astronaut photo.

Generated images are not real faces, so most tests use ``--aligned``: the real dlib predictor
then landmarks the whole crop, which is all the batch machinery needs.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.masking import io as mask_io
from maskmtl_cli.faces.landmarks import DlibLandmarker
from maskmtl_cli.masking.records import CSV_COLUMNS
from maskmtl_cli.masking.style import PALETTE, TEMPLATE_NAMES, TEXTURE_NAMES

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["mask", *map(str, args)], catch_exceptions=False)


def run_json(*args) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def draw_face(seed: int, size: int = 72) -> np.ndarray:
    """A cartoon face (BGR): skin ellipse, eyes, nose and mouth on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    skin = tuple(int(v) for v in rng.integers(110, 230, 3))
    centre = size // 2
    cv2.ellipse(image, (centre, centre), (size * 3 // 8, size * 7 // 16), 0, 0, 360, skin, -1)
    for side in (-1, 1):
        cv2.circle(image, (centre + side * size // 6, size * 2 // 5), max(2, size // 24),
                   (30, 30, 30), -1)
    cv2.line(image, (centre, size * 2 // 5), (centre, size * 3 // 5), (60, 60, 90), 2)
    cv2.ellipse(image, (centre, size * 3 // 4), (size // 7, size // 20), 0, 0, 360,
                (40, 40, 160), -1)
    return image


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture()
def faces(tmp_path: Path) -> Path:
    """Eight JPEG 'faces' in a small tree (UTKFace-like names, one subfolder level)."""
    root = tmp_path / "faces"
    for index in range(6):
        write(root / f"{20 + index}_{index % 2}_{index % 5}_2017011{index}.jpg.chip.jpg",
              draw_face(index))
    write(root / "sub" / "a.jpg", draw_face(10, size=96))
    write(root / "sub" / "b.jpeg", draw_face(11, size=64))
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root by relative path (mask_config.json names the absolute output)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "mask_config.json"
    }


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def flat(text: str) -> str:
    """Help text with rich's box characters and line wrapping removed."""
    return " ".join(text.replace("│", " ").split())


def test_help_names_every_template_and_the_aligned_mode():
    result = runner.invoke(app, ["mask", "--help"])
    assert result.exit_code == 0
    text = flat(result.output)
    for name in TEMPLATE_NAMES:
        assert name in text
    assert "The mode for aligned crops" in text
    assert "maskmtl mask" in text  # the example


def test_same_output_for_any_worker_count_and_tree_mirrored(faces, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    first = run_json(faces, one, "--aligned", "--workers", "1", "--seed", "7", "--save-masks")
    second = run_json(faces, two, "--aligned", "--workers", "2", "--seed", "7", "--save-masks")
    assert (first["masked"], first["failed"], first["workers"]) == (8, 0, 1)
    assert (second["masked"], second["workers"]) == (8, 2)
    outputs = tree_bytes(one)
    assert outputs == tree_bytes(two)  # byte-identical images, masks and tables
    inputs = {path.relative_to(faces).as_posix() for path in faces.rglob("*") if path.is_file()}
    assert inputs <= set(outputs)
    assert {f"_masks/{name}.png" for name in inputs} <= set(outputs)
    assert set(first["stage_ms"]) == {"decode", "detect", "landmarks", "overlay", "encode"}
    # Another seed gives other masks.
    other = tmp_path / "other"
    run_json(faces, other, "--aligned", "--seed", "8", "--workers", "1")
    assert any(other.joinpath(name).read_bytes() != outputs[name] for name in inputs)


def test_masks_csv_binary_masks_and_preview(faces, tmp_path):
    out = tmp_path / "out"
    summary = run_json(faces, out, "--aligned", "--save-masks", "--preview", "4",
                       "--mask-type", "surgical", "--colour", "#3366cc", "--texture", "dots",
                       "--texture-weight", "0.5", "--workers", "1")
    assert summary["preview"] == str(out.resolve() / "preview.png")
    sheet = cv2.imread(summary["preview"])
    assert sheet is not None and sheet.shape[0] > 64 and sheet.shape[1] > 128
    rows = read_rows(out / "masks.csv")
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [row["source"] for row in rows] == sorted(row["source"] for row in rows)
    assert len(rows) == 8 and read_rows(out / "failures.csv") == []
    for row in rows:
        assert row["status"] == "masked" and row["output"] == row["source"]
        assert (row["template"], row["colour"], row["texture"]) == ("surgical", "#3366cc", "dots")
        assert float(row["texture_weight"]) == 0.5
        assert row["landmark_source"] == "aligned" and row["faces"] == "1"
        left, top, right, bottom = map(int, row["face_box"].split())
        width, height = int(row["width"]), int(row["height"])
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        mask = cv2.imread(str(out / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (height, width) and set(np.unique(mask)) <= {0, 255}
        assert 0.05 < (mask > 0).mean() < 0.7
        assert not mask[: height // 4].any()  # nothing near the top of the face crop


def test_resume_skips_finished_outputs_and_overwrite_redoes_them(faces, tmp_path):
    out = tmp_path / "out"
    assert run_json(faces, out, "--aligned", "--limit", "3", "--workers", "1")["processed"] == 3
    resumed = run_json(faces, out, "--aligned", "--workers", "1")
    assert (resumed["skipped_existing"], resumed["processed"]) == (3, 5)
    rows = read_rows(out / "masks.csv")
    assert len(rows) == 8 and {row["status"] for row in rows} == {"masked"}
    assert all(row["template"] for row in rows)  # kept rows keep their earlier records
    again = run(faces, out, "--aligned", "--seed", "5")
    assert again.exit_code == 0 and "8 skipped (output exists)" in again.stderr
    assert "different settings (seed)" in flat(again.stderr)
    redo = run_json(faces, out, "--aligned", "--overwrite", "--workers", "2")
    assert (redo["skipped_existing"], redo["processed"], redo["masked"]) == (0, 8, 8)


def test_bad_files_become_failure_records_and_formats_are_kept(tmp_path):
    src = tmp_path / "mixed"
    good = write(src / "good.jpg", draw_face(1))
    data = good.read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (src / "notes.jpg").write_text("not an image")
    (src / "empty.png").write_bytes(b"")
    write(src / "tiny.jpg", draw_face(2, size=20))
    write(src / "gray.jpg", cv2.cvtColor(draw_face(3), cv2.COLOR_BGR2GRAY))
    write(src / "deep" / "gray.png", cv2.cvtColor(draw_face(4), cv2.COLOR_BGR2GRAY))
    rgba = np.dstack([draw_face(5), np.full((72, 72), 200, np.uint8)])
    write(src / "rgba.png", rgba)
    (src / "readme.txt").write_text("ignored")
    rotated = Image.fromarray(cv2.cvtColor(draw_face(6, size=64), cv2.COLOR_BGR2RGB))
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: shown rotated 90 degrees clockwise
    rotated.crop((0, 0, 64, 48)).save(src / "exif.jpg", exif=exif.tobytes())
    out = tmp_path / "out"
    result = run(src, out, "--aligned", "--workers", "2", "--save-masks", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["masked"], summary["failed"], summary["ignored_files"]) == (5, 4, 1)
    assert summary["failures_by_reason"] == {"too_small": 1, "truncated": 1, "unreadable": 2}
    assert "failed, truncated: 1" in result.stderr
    failures = {row["source"]: row for row in read_rows(out / "failures.csv")}
    assert set(failures) == {"truncated.jpg", "notes.jpg", "empty.png", "tiny.jpg"}
    assert "20x20" in failures["tiny.jpg"]["detail"]
    assert not any((out / name).exists() for name in failures)
    assert cv2.imread(str(out / "gray.jpg"), cv2.IMREAD_UNCHANGED).ndim == 2
    assert cv2.imread(str(out / "deep" / "gray.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    assert cv2.imread(str(out / "exif.jpg")).shape == (64, 48, 3)  # stored upright
    masked_rgba = cv2.imread(str(out / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert masked_rgba.shape == (72, 72, 4) and masked_rgba[0, 0, 3] == 200
    assert (masked_rgba[..., 3] == 255).any()  # the mask itself is opaque


@pytest.mark.slow
def test_huge_photo_is_detected_downscaled_and_masked_at_full_size(astronaut_path, tmp_path):
    photo = np.zeros((4000, 6000, 3), np.uint8)  # 6000 px wide, the astronaut 4000 px tall
    photo[:, 1000:5000] = cv2.resize(cv2.imread(str(astronaut_path)), (4000, 4000))
    (tmp_path / "in").mkdir()
    assert cv2.imwrite(str(tmp_path / "in" / "huge.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 80])
    summary = run_json(tmp_path / "in", tmp_path / "out", "--save-masks", "--workers", "1")
    assert summary["masked"] == 1
    row = read_rows(tmp_path / "out" / "masks.csv")[0]
    assert (row["width"], row["height"], row["landmark_source"]) == ("6000", "4000", "detected")
    mask = cv2.imread(str(tmp_path / "out" / row["mask"]), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.nonzero(mask)
    # The astronaut's face spans about x 180-270, y 85-170 of her 512 px portrait.
    scale = 4000 / 512
    assert 1000 + 170 * scale < xs.mean() < 1000 + 280 * scale
    assert 110 * scale < ys.mean() < 200 * scale


def test_empty_missing_and_nested_folders_are_refused(faces, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty", tmp_path / "out")
    assert result.exit_code == 1 and "No images found" in result.stderr
    result = run(tmp_path / "nowhere", tmp_path / "out")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    inside = faces / "masked"
    result = run(faces, inside, "--aligned")
    assert result.exit_code == 1 and "inside the input folder" in flat(result.stderr)
    assert not inside.exists()
    result = run(faces, tmp_path, "--aligned")
    assert result.exit_code == 1 and "inside the output folder" in flat(result.stderr)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--mask-type", "bandana"], ", ".join(TEMPLATE_NAMES)),
        (["--colour", "blurple"], ", ".join(list(PALETTE)[:3])),
        (["--texture", "paisley"], ", ".join(TEXTURE_NAMES)),
        (["--mix", "surgical=0.5,banana=0.5"], "banana"),
        (["--mix", "surgical=lots"], "not a number"),
        (["--mix", "surgical=1", "--mask-type", "n95"], "--mask-type random"),
    ],
)
def test_bad_style_values_name_the_valid_choices(faces, tmp_path, options, expected):
    out = tmp_path / "out"
    result = run(faces, out, *options)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error:") and expected in flat(result.stderr)
    assert not out.exists() and "Traceback" not in result.output


def test_usage_errors_exit_2(faces, tmp_path):
    for options in (["--detector", "yolo"], ["--faces", "some"], ["--texture-weight", "2"],
                    ["--workers", "0"]):
        assert run(faces, tmp_path / "out", *options).exit_code == 2


def test_interrupt_leaves_no_temporary_file_and_exits_130(faces, tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def replace_then_interrupt(source, target):
        calls.append(target)
        if len(calls) == 3:  # the third write: its temporary file is already on disk
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(mask_io.os, "replace", replace_then_interrupt)
    out = tmp_path / "out"
    result = run(faces, out, "--aligned", "--workers", "1")
    monkeypatch.setattr(mask_io.os, "replace", real_replace)
    assert result.exit_code == 130 and "Interrupted" in result.stderr
    assert not [path for path in out.rglob("*") if path.name.endswith(mask_io.TEMP_SUFFIX)]
    finished = read_rows(out / "masks.csv")
    assert len(finished) == 1  # mask_config.json was the first write, one image the second
    resumed = run_json(faces, out, "--aligned", "--workers", "1")
    assert (resumed["skipped_existing"], resumed["processed"]) == (1, 7)


@pytest.mark.slow
def test_real_faces_with_dlib(astronaut_path, tmp_path):
    photo = cv2.imread(str(astronaut_path))
    src = tmp_path / "photos"
    write(src / "astronaut.jpg", photo)
    head = photo[20:260, 100:350]
    write(src / "pair.png", cv2.hconcat([head, head]))
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    write(src / "noise.jpg", noise)
    out = tmp_path / "out"
    summary = run_json(src, out, "--faces", "all", "--on-fail", "copy", "--save-masks",
                       "--preview", "2", "--workers", "1")
    assert (summary["masked"], summary["copied"], summary["faces_masked"]) == (2, 1, 3)
    rows = {row["source"]: row for row in read_rows(out / "masks.csv")}
    assert rows["pair.png"]["faces"] == "2" and len(rows["pair.png"]["face_box"].split(";")) == 2
    assert rows["noise.jpg"]["status"] == "copied" and rows["noise.jpg"]["reason"] == "no_face"
    assert (out / "noise.jpg").read_bytes() == (src / "noise.jpg").read_bytes()
    assert rows["astronaut.jpg"]["landmark_source"] == "detected"
    assert rows["astronaut.jpg"]["detector"] == "hog"
    # The mask covers the nose tip, mouth and chin landmarks and leaves the eyes free.
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    landmarker = DlibLandmarker("hog")
    points = landmarker.landmarks(gray, landmarker.find_boxes(gray)[0]).round().astype(int)
    mask = cv2.imread(str(out / rows["astronaut.jpg"]["mask"]), cv2.IMREAD_GRAYSCALE)
    assert all(mask[y, x] == 255 for x, y in points[[33, 51, 57, 62, 66]])
    assert not any(mask[y, x] for x, y in points[36:48])
    # --on-fail skip leaves the faceless image out.
    skipped = run_json(src, tmp_path / "skip", "--workers", "1")
    assert skipped["failures_by_reason"] == {"no_face": 1}
    assert not (tmp_path / "skip" / "noise.jpg").exists()


@pytest.mark.slow
def test_utkface64_crops_are_all_masked_in_aligned_mode(shared_data, tmp_path):
    names = sorted(os.listdir(shared_data / "utkface64"))[::2963][:8]
    src = tmp_path / "utk"
    src.mkdir()
    for name in names:  # links, not copies: the images stay in ../shared
        (src / name).symlink_to(shared_data / "utkface64" / name)
    summary = run_json(src, tmp_path / "out", "--aligned", "--workers", "2")
    assert (summary["masked"], summary["failed"]) == (len(names), 0)
