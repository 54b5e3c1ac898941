"""`maskmtl split` and the data layer, through the real CLI on tiny generated data."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.data.dataset import load_split
from maskmtl_cli.data.labels import parse_utkface_name
from maskmtl_cli.data.manifest import read_manifest

runner = CliRunner()


def write_face(path: Path, seed: int, size: int = 64) -> None:
    """A random but decodable JPEG: a noisy ellipse on a background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    cv2.ellipse(image, (size // 2, size // 2), (size // 3, size // 2 - 4), 0, 0, 360,
                tuple(int(v) for v in rng.integers(120, 255, 3)), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


@pytest.fixture()
def tiny_faces(tmp_path: Path) -> Path:
    """40 labelled faces in UTKFace naming, one byte-duplicate pair, one conflicting pair."""
    root = tmp_path / "faces"
    for index in range(40):
        age, gender, race = 5 + (index * 7) % 80, index % 2, index % 5
        write_face(root / f"{age}_{gender}_{race}_20170116{index:09d}.jpg.chip.jpg", index)
    same = root / "30_0_0_20170116000000001.jpg.chip.jpg"
    write_face(same, 1000)
    (root / "sub").mkdir()
    (root / "sub" / "30_0_0_20170116000000002.jpg.chip.jpg").write_bytes(same.read_bytes())
    conflict = root / "1_1_2_20170116000000003.jpg.chip.jpg"
    write_face(conflict, 2000)
    (root / "3_1_2_20170116000000004.jpg.chip.jpg").write_bytes(conflict.read_bytes())
    return root


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_name_parser_strict_lenient_and_malformed():
    assert parse_utkface_name("26_1_3_20170104235421282.jpg.chip.jpg").status == "ok"
    lenient = parse_utkface_name("24_0_1_20170116220224657 .jpg.chip.jpg")
    assert (lenient.status, lenient.age, lenient.gender, lenient.race) == ("lenient", 24, 0, 1)
    assert parse_utkface_name("55_0_0_20170116232725357jpg.chip.jpg").status == "lenient"
    assert parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg").status == "unparseable"
    assert parse_utkface_name("photo.jpg").status == "unparseable"


def test_split_random_writes_manifest_and_keeps_groups_together(tiny_faces, tmp_path):
    manifest = tmp_path / "manifest.csv"
    result = run("split", str(tiny_faces), "-o", str(manifest), "--json", "--keep-duplicates")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    table = read_manifest(manifest)
    assert summary["images"] == len(table) == 42  # 40 + both copies of the duplicate; conflict dropped
    assert summary["duplicate_groups"] == 2 and len(summary["conflicting_groups"]) == 1
    copies = table[table["filename"].str.startswith("30_0_0_20170116")]
    assert copies["split"].nunique() == 1 and copies["sha1"].nunique() == 1
    assert set(table["split"]) <= {"train", "val", "test"}
    assert sum(summary["splits"][s]["images"] for s in ("train", "val", "test")) == 42
    assert Path(table["path"][0]).is_absolute() and Path(table["path"][0]).is_file()
    raw = pd.read_csv(manifest)
    assert not Path(raw["path"][0]).is_absolute()  # stored relative to the manifest


def test_split_is_seeded(tiny_faces, tmp_path):
    for name, seed in (("a.csv", "1"), ("b.csv", "1"), ("c.csv", "2")):
        assert run("split", str(tiny_faces), "-o", str(tmp_path / name), "--seed", seed).exit_code == 0
    a, b, c = (pd.read_csv(tmp_path / n)["split"].tolist() for n in ("a.csv", "b.csv", "c.csv"))
    assert a == b and a != c


def test_split_parts_strategy(tiny_faces, tmp_path):
    names = sorted(p.name for p in tiny_faces.rglob("*.jpg"))
    parts = tmp_path / "parts.csv"
    pd.DataFrame({"filename": names, "part": ["part1" if i < 20 else "part2_or_part3"
                                              for i in range(len(names))]}).to_csv(parts, index=False)
    manifest = tmp_path / "m.csv"
    result = run("split", str(tiny_faces), "-o", str(manifest), "--strategy", "parts",
                 "--parts", str(parts), "--json")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(manifest)
    part1 = set(names[:20])
    in_part1 = table["filename"].map(lambda f: Path(f).name in part1)
    assert (table.loc[in_part1, "split"] == "train").all()
    rest = table.loc[~in_part1, "split"]
    assert set(rest) <= {"train", "val", "test"} and (rest == "test").sum() > (rest == "val").sum()


def test_labels_csv_for_other_datasets(tmp_path):
    root = tmp_path / "photos"
    for index in range(6):
        write_face(root / f"img{index}.png", index)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"filename": [f"img{i}.png" for i in range(5)],
                  "gender": [0, 1, 0, 1, 1]}).to_csv(labels, index=False)
    result = run("split", str(root), "-o", str(tmp_path / "m.csv"), "--labels", str(labels), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == 5
    assert summary["skipped"] == [{"file": "img5.png", "reason": "no row in the label CSV"}]
    table = read_manifest(tmp_path / "m.csv")
    assert table["age"].isna().all() and table["gender"].notna().all()


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (lambda root: None, ["--strategy", "kfold"], "Choose one of: random, parts"),
        (lambda root: None, ["--strategy", "parts"], "needs --parts"),
        (lambda root: None, ["--labels", "missing.csv"], "Label file not found"),
    ],
)
def test_split_option_errors(tiny_faces, tmp_path, setup, args, message):
    result = runner.invoke(app, ["split", str(tiny_faces), "-o", str(tmp_path / "m.csv"), *args])
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(("ratios", "message"), [
    ("0.5,0.2,0.2", "sum to 0.9"),
    ("a,b", "three numbers"),
    ("nan,0.5,0.5", "'nan' is not a finite number"),
    ("inf,0,0", "'inf' is not a finite number"),
    ("1.5,-0.25,-0.25", "-0.25 is negative"),
])
def test_bad_ratios_are_a_usage_error(tiny_faces, tmp_path, ratios, message):
    manifest = tmp_path / "m.csv"
    result = runner.invoke(app, ["split", str(tiny_faces), "-o", str(manifest), "--ratios", ratios])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert "Traceback" not in result.output and not manifest.exists()


def test_fractional_labels_are_reported_not_truncated(tmp_path):
    root = tmp_path / "photos"
    for index in range(4):
        write_face(root / f"img{index}.png", index)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,age,gender,race\nimg0.png,30,0.5,1\nimg1.png,30,1,2.5\n"
                      "img2.png,30.5,1,2\nimg3.png,41,0,4\n")
    result = run("split", str(root), "-o", str(tmp_path / "m.csv"), "--labels", str(labels),
                 "--json")
    assert result.exit_code == 0, result.output
    reasons = {item["file"]: item["reason"] for item in json.loads(result.stdout)["skipped"]}
    assert reasons == {"img0.png": "label out of range: gender 0.5 is not 0 (male) or 1 (female)",
                       "img1.png": "label out of range: race 2.5 is not one of 0-4 (White, "
                                   "Black, Asian, Indian, Others)"}
    table = read_manifest(tmp_path / "m.csv")
    assert sorted(table["filename"]) == ["img2.png", "img3.png"]  # fractional ages are fine
    assert table.set_index("filename")["age"]["img2.png"] == 30.5


def test_manifest_with_fractional_labels_is_a_data_error(tiny_faces, tmp_path):
    from maskmtl_cli.errors import DataError

    manifest = tmp_path / "m.csv"
    assert run("split", str(tiny_faces), "-o", str(manifest)).exit_code == 0
    pd.read_csv(manifest).assign(gender=0.5).to_csv(manifest, index=False)
    with pytest.raises(DataError, match="row 2: gender 0.5 is not a whole number"):
        read_manifest(manifest)


@pytest.mark.parametrize("target", ["image", "labels", "through_a_folder_link"])
def test_output_never_replaces_an_input_even_with_overwrite(tmp_path, target):
    root = tmp_path / "photos"
    for index in range(4):
        write_face(root / f"img{index}.png", index)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,gender\n" + "".join(f"img{i}.png,{i % 2}\n" for i in range(4)))
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    output = {"image": root / "img0.png", "labels": labels,
              "through_a_folder_link": tmp_path / "alias" / "img1.png"}[target]
    before = {path: path.read_bytes() for path in (*root.iterdir(), labels)}
    result = runner.invoke(app, ["split", str(root), "-o", str(output), "--labels", str(labels),
                                 "--overwrite"])
    assert result.exit_code == 1, result.output
    assert "is an input" in " ".join(result.stderr.split()) and "Traceback" not in result.output
    assert {path: path.read_bytes() for path in before} == before


def test_full_disk_gives_one_line_and_leaves_no_temporary_file(tiny_faces, tmp_path,
                                                               monkeypatch):
    from maskmtl_cli.data import manifest as manifest_module

    def full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source))

    monkeypatch.setattr(manifest_module.os, "replace", full)
    result = runner.invoke(app, ["split", str(tiny_faces), "-o", str(tmp_path / "m.csv")])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: Cannot write {tmp_path / 'm.csv'}: no space left on device. Free some space or "
        "choose a location on another disk, then rerun."]
    assert not list(tmp_path.glob(".manifest-*")) and not (tmp_path / "m.csv").exists()


def test_read_only_disk_gives_one_line(tiny_faces, tmpfs):
    disk = tmpfs(1 << 20)
    disk.remount("ro")
    for output in (disk / "m.csv", disk / "new" / "m.csv"):
        result = runner.invoke(app, ["split", str(tiny_faces), "-o", str(output)])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip().splitlines() == [
            f"Error: Cannot write {output}: read-only file system. Choose a location on a "
            "writable disk, then rerun."]


def test_split_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["split", str(empty)])
    assert result.exit_code == 1 and "is empty" in result.stderr
    result = runner.invoke(app, ["split", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "not found" in result.stderr
    (empty / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["split", str(empty)])
    assert result.exit_code == 1 and "no images" in result.stderr


def test_split_lists_bad_files_and_labels(tiny_faces, tmp_path):
    good = next(tiny_faces.glob("*.jpg")).read_bytes()
    (tiny_faces / "20_0_0_20170116999999991.jpg.chip.jpg").write_bytes(good[: len(good) // 2])
    (tiny_faces / "20_0_0_20170116999999992.jpg.chip.jpg").write_bytes(b"not an image at all")
    write_face(tiny_faces / "20_7_0_20170116999999993.jpg.chip.jpg", 7)
    write_face(tiny_faces / "20_0_9_20170116999999994.jpg.chip.jpg", 8)
    write_face(tiny_faces / "39_1_20170116174525125.jpg.chip.jpg", 9)
    result = run("split", str(tiny_faces), "-o", str(tmp_path / "m.csv"), "--json")
    assert result.exit_code == 0, result.output
    reasons = {item["file"]: item["reason"] for item in json.loads(result.stdout)["skipped"]}
    assert "truncated" in reasons["20_0_0_20170116999999991.jpg.chip.jpg"]
    assert "not a decodable image" in reasons["20_0_0_20170116999999992.jpg.chip.jpg"]
    assert "gender 7" in reasons["20_7_0_20170116999999993.jpg.chip.jpg"]
    assert "race 9" in reasons["20_0_9_20170116999999994.jpg.chip.jpg"]
    assert "malformed name" in reasons["39_1_20170116174525125.jpg.chip.jpg"]


def test_existing_output_needs_overwrite(tiny_faces, tmp_path):
    manifest = tmp_path / "m.csv"
    assert run("split", str(tiny_faces), "-o", str(manifest)).exit_code == 0
    result = runner.invoke(app, ["split", str(tiny_faces), "-o", str(manifest)])
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert run("split", str(tiny_faces), "-o", str(manifest), "--overwrite").exit_code == 0


def test_label_csv_errors(tiny_faces, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("name,age\na.jpg,3\n")
    result = runner.invoke(app, ["split", str(tiny_faces), "--labels", str(labels), "-o",
                                 str(tmp_path / "m.csv")])
    assert result.exit_code == 1 and "no 'filename' column" in result.stderr
    labels.write_text("filename,age\na.jpg,old\n")
    result = runner.invoke(app, ["split", str(tiny_faces), "--labels", str(labels), "-o",
                                 str(tmp_path / "m.csv")])
    assert result.exit_code == 1 and "'old' is not a number" in result.stderr


def test_loader_sizes_colour_and_cache(tiny_faces, tmp_path):
    manifest = tmp_path / "m.csv"
    assert run("split", str(tiny_faces), "-o", str(manifest)).exit_code == 0
    cache = tmp_path / "cache"
    gray = load_split(manifest, "train", size=32, color_mode="gray", cache_dir=cache)
    assert gray.images.dtype == np.uint8 and gray.images.shape[1:] == (32, 32, 1)
    assert len(gray) == len(gray.age) == len(gray.gender) == len(gray.race) > 0
    assert list(cache.glob("*.npz"))
    again = load_split(manifest, "train", size=32, color_mode="gray", cache_dir=cache)
    np.testing.assert_array_equal(gray.images, again.images)
    rgb = load_split(manifest, None, size=48, color_mode="rgb", cache_dir=None)
    assert rgb.images.shape[1:] == (48, 48, 3) and len(rgb) == len(read_manifest(manifest))
    # a file that disappears after the split is reported, not fatal
    Path(read_manifest(manifest)["path"][0]).unlink()
    partial = load_split(manifest, None, size=32, cache_dir=None)
    assert len(partial.failures) == 1 and partial.failures[0][1] == "file not found"


def test_loader_errors(tiny_faces, tmp_path):
    from maskmtl_cli.errors import DataError, InputError

    manifest = tmp_path / "m.csv"
    assert run("split", str(tiny_faces), "-o", str(manifest), "--ratios", "1,0,0").exit_code == 0
    with pytest.raises(DataError, match="no rows in split 'test'"):
        load_split(manifest, "test", cache_dir=None)
    with pytest.raises(InputError, match="Choose one of: gray, rgb"):
        load_split(manifest, "train", color_mode="cmyk")
    with pytest.raises(DataError, match="Manifest not found"):
        load_split(tmp_path / "absent.csv")


def test_utkface64_split(shared_data, tmp_path):
    """The real data: malformed names reported, no duplicate group crosses splits."""
    manifest = tmp_path / "manifest.csv"
    result = run("split", str(shared_data / "utkface64"), "-o", str(manifest), "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    malformed = (shared_data / "utkface_meta" / "malformed_names.txt").read_text().split("\n")
    reported = {s["file"] for s in summary["skipped"]} | set(summary["lenient_names"])
    assert {m for m in malformed if m} <= reported
    assert summary["duplicate_groups"] == 345
    table = pd.read_csv(manifest)
    assert table.groupby("sha1")["split"].nunique().max() == 1
    groups = [line.split("\t") for line in
              (shared_data / "utkface_meta" / "duplicate_groups_64px.txt").read_text().splitlines()]
    split_of = dict(zip(table["filename"], table["split"]))
    for group in groups:
        assert len({split_of[f] for f in group if f in split_of}) <= 1


def test_masked_copies_are_grouped_by_their_source(tiny_faces, tmp_path):
    """`maskmtl mask` gives identical photos different masks; split must still keep them together."""
    masked = tmp_path / "masked"
    sources = sorted(p.relative_to(tiny_faces).as_posix() for p in tiny_faces.rglob("*.jpg"))
    for index, relative in enumerate(sources):
        write_face(masked / relative, 5000 + index)  # every "masked" copy differs from the others
    pd.DataFrame({"source": sources, "output": sources}).to_csv(masked / "masks.csv", index=False)
    (masked / "mask_config.json").write_text(json.dumps({"input_dir": str(tiny_faces)}))
    manifest = tmp_path / "m.csv"
    result = run("split", str(masked), "-o", str(manifest), "--json", "--keep-duplicates")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["duplicate_groups"] == 2 and len(summary["conflicting_groups"]) == 1
    table = pd.read_csv(manifest)
    copies = table[table["filename"].str.contains("30_0_0_20170116")]
    assert len(copies) == 2 and copies["split"].nunique() == 1
    unmasked = tmp_path / "u.csv"
    assert run("split", str(tiny_faces), "-o", str(unmasked), "--keep-duplicates").exit_code == 0
    same = table.merge(pd.read_csv(unmasked), on="filename")
    assert (same["split_x"] == same["split_y"]).all()  # masked and bare splits line up
