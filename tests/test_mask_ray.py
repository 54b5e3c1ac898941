"""`maskmtl mask --ray` on a local Ray instance (2 CPUs, loopback only) against the local pool.

The cluster (``tests/ray_cluster.py``) is started once for the module and ended, workers and
all, at its end. Its workers import the same maskmtl as the tests (``PYTHONPATH``), and the
nodes check that they do (``maskmtl_cli.masking.cluster``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("ray") is None:  # not imported here: see loopback_ray
    pytest.skip("ray is not installed (pip install 'maskmtl[ray]')", allow_module_level=True)

from maskmtl_cli.masking.journal import (  # noqa: E402
    JOURNAL,
    JournalWriter,
    journal_files,
    journal_marks,
    read_journals,
    worker_journal_name,
)
from maskmtl_cli.masking.ray_pool import MAX_SHARD, shard_size  # noqa: E402
from maskmtl_cli.masking.records import new_record  # noqa: E402
from ray_cluster import LOOPBACK_ENV, LocalRayCluster, free_port  # noqa: E402
from test_mask_durability import OPTIONS, assert_same_run, cli_mask, make_inputs, rows_of  # noqa: E402
from test_mask_cli import tree_bytes  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
#: Seconds any one masking command may take here (200 small images on 2 CPUs take ~10).
COMMAND_TIMEOUT = 240


@pytest.fixture(scope="module", autouse=True)
def loopback_ray():
    """Ray in this process on loopback only. Set before its first import here: Ray reads the
    variable when it is imported, and any test may be the first to connect."""
    patch = pytest.MonkeyPatch()
    for name, value in LOOPBACK_ENV.items():
        patch.setenv(name, value)
    patch.delenv("RAY_ADDRESS", raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray head on 127.0.0.1, ended with all its processes after the module."""
    head = LocalRayCluster(cpus=2, env={"PYTHONPATH": PYTHONPATH})
    try:
        yield head.start()
    finally:
        head.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """200 input files (197 faces, a truncated, a tiny and an empty one) and the local pool's
    output of them with 2 workers."""
    root = tmp_path_factory.mktemp("ray_reference")
    assert len(make_inputs(root / "in", 197)) == 200
    result = cli_mask(root / "in", root / "local", *OPTIONS, "--workers", "2")
    assert result.exit_code == 0, result.output
    return root / "in", root / "local"


def driver_command(source: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "maskmtl_cli", "mask", str(source), str(out), *OPTIONS,
            "--ray", address, "--json"]


def driver_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **LOOPBACK_ENV, "PYTHONPATH": PYTHONPATH, **extra}


def run_driver(source: Path, out: Path, address: str, **env: str) -> subprocess.CompletedProcess:
    """`maskmtl mask --ray` in a process of its own, bounded in time (a Ray driver that cannot
    reach its cluster may wait for minutes)."""
    return subprocess.run(driver_command(source, out, address), env=driver_env(**env),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def wait_for_outputs(out: Path, names: list[str], count: int, process) -> int:
    """Wait until ``count`` of the outputs exist (or the process ended); returns how many."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        done = sum((out / name).is_file() for name in names)
        if done >= count:
            return done
        time.sleep(0.01)
    return sum((out / name).is_file() for name in names)


def test_without_ray_the_option_says_how_to_install_and_exits_2(tmp_path, monkeypatch):
    make_inputs(tmp_path / "in", 3)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    result = cli_mask(tmp_path / "in", tmp_path / "out", "--aligned", "--ray", "auto")
    assert result.exit_code == 2, result.output
    assert "pip install 'maskmtl[ray]'" in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_help_says_the_folders_must_be_shared():
    from typer.testing import CliRunner

    from maskmtl_cli.cli import app

    result = CliRunner().invoke(app, ["mask", "--help"])
    text = " ".join(result.output.replace("│", " ").split())
    assert "--ray" in text and "same paths (a shared filesystem" in text
    assert "maskmtl[ray]" in text


def test_nothing_listening_is_one_line_error(tmp_path):
    make_inputs(tmp_path / "in", 3)
    started = time.monotonic()
    result = cli_mask(tmp_path / "in", tmp_path / "out", "--aligned", "--ray",
                      f"127.0.0.1:{free_port()}")
    assert result.exit_code == 1, result.output
    assert "Nothing answers at 127.0.0.1:" in result.stderr
    assert "ray start --head" in " ".join(result.stderr.split())
    assert time.monotonic() - started < 30  # not Ray's minutes of retries


def test_shards_and_worker_journals_merge_like_one_journal(tmp_path):
    assert shard_size(200, 2) == 7 and shard_size(10, 4) == 1
    assert shard_size(10**6, 2) == MAX_SHARD
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (out / name).write_bytes(b"x")
    local = JournalWriter(out / JOURNAL)
    local.append({**new_record(0, "a.jpg"), "output": "a.jpg", "template": "n95"})
    local.close()
    marks = journal_marks(out)
    worker = JournalWriter(out / worker_journal_name("node/1-42"))
    worker.append({**new_record(0, "a.jpg"), "output": "a.jpg", "template": "cloth"})
    worker.append({**new_record(1, "b.jpg"), "output": "b.jpg"})
    worker.append({**new_record(2, "c.jpg"), "output": "c.jpg"})  # killed before c.jpg
    worker.close()
    assert [path.name for path in journal_files(out)] == [JOURNAL, "masks.journal.node-1-42.jsonl"]
    everything = read_journals(out)
    assert sorted(everything) == ["a.jpg", "b.jpg"]
    assert everything["a.jpg"]["template"] == "cloth"  # the later file wins
    assert sorted(read_journals(out, marks)) == ["a.jpg", "b.jpg"]  # this run's rows only
    local = JournalWriter(out / JOURNAL)
    local.append({**new_record(3, "d.jpg"), "status": "failed", "reason": "no_face"})
    local.close()
    assert sorted(read_journals(out, journal_marks(out))) == []


def test_ray_output_is_byte_identical_to_the_local_pool(cluster, reference, tmp_path):
    source, expected = reference
    out = tmp_path / "out"
    result = run_driver(source, out, "auto", RAY_ADDRESS=cluster.address)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["processed"], summary["ray_nodes"], summary["workers"]) == (200, 1, 2)
    assert {"masked", "failed", "copied"} == {row["status"] for row in rows_of(out / "masks.csv")}
    # Every image, binary mask, masks.csv and failures.csv byte for byte; no journal or
    # temporary file left.
    assert tree_bytes(out) == tree_bytes(expected)
    assert "on 1 Ray node" in " ".join(result.stderr.split())


def test_a_killed_worker_loses_only_its_unfinished_images(cluster, reference, tmp_path):
    source, expected = reference
    out = tmp_path / "out"
    names = sorted(path.relative_to(source).as_posix() for path in source.rglob("*.jpg"))
    process = subprocess.Popen(driver_command(source, out, cluster.address), env=driver_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        done = wait_for_outputs(out, names, 40, process)
        victims, deadline = [], time.monotonic() + 20
        while not victims and process.poll() is None and time.monotonic() < deadline:
            victims = cluster.workers("mask_shard")  # a busy machine may show it late
            time.sleep(0 if victims else 0.05)
        assert victims and process.poll() is None, f"nothing to kill ({done} done)"
        os.kill(victims[0], signal.SIGKILL)  # mid-shard: no cleanup, no record returned
        finished = {name: (out / name).stat().st_ino for name in names if (out / name).is_file()}
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert done < len(names)
    summary = json.loads(stdout)
    assert summary["processed"] == 200  # the dead worker's finished images came from its journal
    assert_same_run(out, expected)  # identical bytes, nothing half-written, no journal left
    assert tree_bytes(out) == tree_bytes(expected)
    # Images finished before the kill were not redone (an atomic rewrite makes a new inode).
    assert {name: (out / name).stat().st_ino for name in finished} == finished
    rerun = run_driver(source, out, cluster.address)
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads(rerun.stdout)
    # Nothing left to redo but the two files that have no output (as with the local pool).
    assert (again["skipped_existing"], again["processed"], again["failed"]) == (198, 2, 2)
    assert tree_bytes(out) == tree_bytes(expected)


def test_driver_killed_with_its_workers_then_rerun_completes(cluster, reference, tmp_path):
    source, expected = reference
    out = tmp_path / "out"
    names = sorted(path.relative_to(source).as_posix() for path in source.rglob("*.jpg"))
    process = subprocess.Popen(driver_command(source, out, cluster.address), env=driver_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = wait_for_outputs(out, names, 60, process)
    victims = cluster.workers("mask_shard")
    process.kill()
    for pid in victims:  # as if their node went down with the driver
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    assert 0 < done < len(names)
    deadline = time.monotonic() + 60  # Ray ends the dead driver's other tasks
    while cluster.workers("mask_shard") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [path for path in journal_files(out) if path.name != JOURNAL]  # rows not yet merged
    rerun = run_driver(source, out, cluster.address)
    assert rerun.returncode == 0, rerun.stderr
    assert "existing" not in {row["status"] for row in rows_of(out / "masks.csv")}
    assert_same_run(out, expected)


def test_output_folder_the_workers_do_not_see_is_refused(cluster, reference, tmp_path):
    source, _ = reference
    out = tmp_path / "private"
    out.mkdir()
    # The driver runs in a mount namespace of its own with a tmpfs on the output folder: the
    # folder it writes is not the one the workers see at that path, as on an unshared disk.
    script = f"mount -t tmpfs tmpfs {out} && exec \"$@\""
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
               *driver_command(source, out, cluster.address)]
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(command, env=driver_env(), capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, message
    assert f"The output folder {out.resolve()} is not reachable from the Ray node" in message
    assert "needs a filesystem that every node sees at the same path" in message
    assert "Traceback" not in message
    assert not list(out.iterdir())  # nothing written where the workers would have looked
