"""`maskmtl mask` loses nothing: kill -9 at random moments, read-only folders and full disks.

Read-only folders are made two ways: ``chmod`` (skipped for root, whom permissions do not stop)
and a read-only tmpfs mount (skipped where the test cannot mount, e.g. without root). A full disk
is a 96 KiB tmpfs where one can be mounted, and a fake ``os.replace`` raising ENOSPC everywhere.
"""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.masking import io as mask_io
from maskmtl_cli.masking.journal import JOURNAL, JournalWriter, read_journal

from test_mask_cli import draw_face, tree_bytes, write

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Every run masks with these; --on-fail copy and --save-masks exercise every kind of output.
OPTIONS = ("--aligned", "--seed", "1", "--save-masks", "--on-fail", "copy")
runner = CliRunner()


def make_inputs(root: Path, count: int) -> list[str]:
    """``count`` JPEG faces in three folders plus a truncated, a tiny and an empty file."""
    for index in range(count):
        write(root / f"d{index % 3}" / f"{index:03d}.jpg", draw_face(index, size=64))
    data = (root / "d0" / "000.jpg").read_bytes()
    (root / "d1" / "cut.jpg").write_bytes(data[: len(data) // 2])
    write(root / "d2" / "tiny.jpg", draw_face(7, size=16))  # too small: copied unmasked
    (root / "empty.png").write_bytes(b"")
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def cli_mask(*args) -> object:
    return runner.invoke(app, ["mask", *map(str, args)], catch_exceptions=False)


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_run(out: Path, reference: Path) -> None:
    """Images, masks and tables equal to an uninterrupted run's (row order aside)."""
    assert not (out / JOURNAL).exists()
    key = lambda row: row["source"]  # noqa: E731
    assert sorted(rows_of(out / "masks.csv"), key=key) == sorted(
        rows_of(reference / "masks.csv"), key=key)
    assert tree_bytes(out) == tree_bytes(reference)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """Inputs and the output of one uninterrupted run over them."""
    root = tmp_path_factory.mktemp("reference")
    make_inputs(root / "in", 150)
    result = cli_mask(root / "in", root / "out", *OPTIONS, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert {row["status"] for row in rows_of(root / "out" / "masks.csv")} == {
        "masked", "failed", "copied"}
    return root / "in", root / "out"


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    source, expected = reference
    out = tmp_path / "out"
    images = [path.relative_to(source).as_posix() for path in source.rglob("*.jpg")]
    command = [sys.executable, "-m", "maskmtl_cli", "mask", str(source), str(out), *OPTIONS,
               "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    rng = np.random.default_rng(16)
    for attempt in range(3):
        done_before = sum((out / name).is_file() for name in images)
        # Kill once a random number of further images is out, plus a random few milliseconds.
        target = done_before + int(rng.integers(5, 40))
        process = subprocess.Popen(command, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while (sum((out / name).is_file() for name in images) < target
               and process.poll() is None and time.monotonic() < deadline):
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0, 0.05)))
        os.killpg(process.pid, signal.SIGKILL)  # the parent and its workers, no cleanup
        assert process.wait() == -signal.SIGKILL, f"attempt {attempt} finished before the kill"
        finished = sum((out / name).is_file() for name in images)
        assert done_before < finished < len(images), (attempt, done_before, finished)
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "existing" not in {row["status"] for row in rows_of(out / "masks.csv")}
    assert_same_run(out, expected)


def one_line_error(result, *fragments: str) -> str:
    """The run failed with exit 1 and one line on stderr (besides the progress bar) holding
    every fragment."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.strip().splitlines()
             if not line.startswith("masking ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_fake_full_disk_stops_with_one_line_and_the_finished_images_recorded(
        reference, tmp_path, monkeypatch):
    source, expected = reference
    out = tmp_path / "out"
    real_replace, outputs = os.replace, []

    def replace_until_full(temp, target):
        if str(target).endswith((".jpg", ".png")):
            outputs.append(target)
            if len(outputs) > 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temp))
        real_replace(temp, target)

    monkeypatch.setattr(mask_io.os, "replace", replace_until_full)
    result = cli_mask(source, out, *OPTIONS, "--workers", "1")
    monkeypatch.setattr(mask_io.os, "replace", real_replace)
    one_line_error(result, "no space left on device", str(out.resolve()),
                   "recorded in masks.csv", "Free some space", "rerun the same command to resume")
    recorded = {row["source"]: row for row in rows_of(out / "masks.csv")}
    written = {path.relative_to(out).as_posix() for path in out.rglob("*.jpg")}
    assert written and written <= {row["output"] for row in recorded.values()}
    assert not [path for path in out.rglob("*") if path.name.endswith(mask_io.TEMP_SUFFIX)]
    resumed = cli_mask(source, out, *OPTIONS, "--workers", "2")
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(out, expected)


def test_fake_permission_error_on_the_first_write(reference, tmp_path, monkeypatch):
    source, _ = reference

    def refuse(temp, target):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(temp))

    monkeypatch.setattr(mask_io.os, "replace", refuse)
    result = cli_mask(source, tmp_path / "out", *OPTIONS, "--workers", "1")
    monkeypatch.undo()
    one_line_error(result, "permission denied (writing mask_config.json)",
                   f"Make {(tmp_path / 'out').resolve()} writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores chmod; see the tmpfs tests")
def test_chmod_read_only_output_and_parent(reference, tmp_path):
    source, _ = reference
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_error(cli_mask(source, locked, *OPTIONS), "permission denied", "writable")
        one_line_error(cli_mask(source, locked / "out", *OPTIONS),
                       "Cannot create the output folder", "permission denied")
    finally:
        locked.chmod(0o755)


def test_read_only_disk_output_parent_and_overwrite(reference, tmpfs):
    source, expected = reference
    disk = tmpfs(8 << 20)
    finished = disk / "out"
    assert cli_mask(source, finished, *OPTIONS, "--limit", "30").exit_code == 0
    before = tree_bytes(finished)
    disk.remount("ro")
    resumed = cli_mask(source, finished, *OPTIONS)
    one_line_error(resumed, "read-only file system", "writable disk")
    one_line_error(cli_mask(source, finished, *OPTIONS, "--limit", "30", "--overwrite"),
                   "read-only file system")
    one_line_error(cli_mask(source, disk / "new" / "out", *OPTIONS),
                   "Cannot create the output folder", "read-only file system")
    assert tree_bytes(finished) == before  # the finished run is untouched and still usable
    disk.remount("rw")
    assert cli_mask(source, finished, *OPTIONS, "--workers", "2").exit_code == 0
    assert_same_run(finished, expected)


def test_full_tmpfs_stops_cleanly_and_resumes_after_space_is_freed(reference, tmpfs):
    source, expected = reference
    disk = tmpfs(96 << 10)
    out = disk / "out"
    result = cli_mask(source, out, *OPTIONS, "--workers", "2")
    line = one_line_error(result, "no space left on device", "Free some space", "rerun")
    written = {path.relative_to(out).as_posix() for path in out.rglob("*.jpg")}
    assert written, line
    if JOURNAL in line:  # masks.csv did not fit: the journal holds the rows
        recorded = read_journal(out / JOURNAL, out).values()
    else:
        recorded = rows_of(out / "masks.csv")
    assert written <= {row["output"] for row in recorded}
    disk.remount(f"size={8 << 20}")
    resumed = cli_mask(source, out, *OPTIONS, "--workers", "2")
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(out, expected)


def test_journal_rows_cut_short_or_without_output_are_ignored(tmp_path):
    from maskmtl_cli.masking.records import new_record

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"x")
    writer = JournalWriter(out / JOURNAL)
    writer.append({**new_record(0, "a.jpg"), "output": "a.jpg", "template": "n95"})
    writer.append({**new_record(1, "b.jpg"), "output": "b.jpg"})  # killed before b.jpg appeared
    writer.close()
    with open(out / JOURNAL, "ab") as handle:
        handle.write(b'\n{"index": 2, "source": "c.j')  # cut short by a kill or a full disk
    writer = JournalWriter(out / JOURNAL)
    writer.append({**new_record(3, "d.jpg"), "status": "failed", "reason": "no_face"})
    writer.close()
    rows = read_journal(out / JOURNAL, out)
    assert sorted(rows) == ["a.jpg", "d.jpg"]
    assert rows["a.jpg"]["template"] == "n95" and rows["d.jpg"]["reason"] == "no_face"

