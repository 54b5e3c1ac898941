"""``maskmtl mask`` on a local Ray cluster with 2 workers and 1 worker, and on the local pool.

Links the first ``--count`` files (sorted) of ``utkface200_part1`` (the 200x200 crops) into a
folder, then runs the real CLI in a fresh process per run, ``--aligned --seed 0 --overwrite``:

* ``local``: the local process pool, ``--workers 2``;
* ``ray N``: a one-machine Ray cluster on 127.0.0.1 offering N CPUs (``ray start --head
  --num-cpus N``; both clusters are started first, their start-up timed apart, and ended at the
  end), with ``--ray ADDRESS``.

The settings take turns, ``--repeats`` rounds, so that the load of other jobs on the machine
drifts over all of them alike; each ``mask`` process runs in a session of its own.

Per run it prints images/s while processing (from the summary: models loaded, for Ray from the
first task submitted to the last record back) and end to end (process start to exit: Python
start, connecting, the node checks, Ray workers starting and loading dlib's model). The ratios at
the end are the issue's: Ray 2 workers over Ray 1 worker, and Ray 2 workers over the local pool
with 2. Every run's outputs are compared byte for byte with the first local run's.

Example (the figures in docs/scale.md)::

    python benchmarks/bench_ray_mask.py --count 2000 --repeats 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from ray_cluster import LOOPBACK_ENV, LocalRayCluster  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("MASKMTL_SHARED_DATA", REPO.parent / "shared" / "data"))


def link_inputs(data: Path, folder: Path, count: int) -> int:
    names = sorted(os.listdir(data / "utkface200_part1"))[:count]
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(data / "utkface200_part1" / name)
    return len(names)


def digest(folder: Path) -> str:
    """One hash of every output file's name and bytes (mask_config.json aside)."""
    total = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "mask_config.json":
            total.update(path.relative_to(folder).as_posix().encode())
            total.update(path.read_bytes())
    return total.hexdigest()


def run_once(inputs: Path, output: Path, extra: list[str], env: dict) -> tuple[dict, float]:
    command = [sys.executable, "-m", "maskmtl_cli", "mask", str(inputs), str(output),
               "--aligned", "--seed", "0", "--overwrite", "--json", *extra]
    started = time.perf_counter()
    # A session of its own, like the Ray cluster's processes: with the kernel's autogroup
    # scheduling, each session shares the CPUs with other sessions' jobs as one group, so a
    # `mask` run in the benchmark's own session would get a smaller share than the cluster.
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600,
                            start_new_session=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"maskmtl mask failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not (args.data / "utkface200_part1").is_dir():
        raise SystemExit(f"UTKFace data not found under {args.data} (set --data).")
    env = {**os.environ, **LOOPBACK_ENV, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [
               os.environ.get("PYTHONPATH")])])}
    print(f"# maskmtl mask --aligned on {args.count} 200x200 crops, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'setting':<22} {'img/s':>7} {'e2e img/s':>9} {'wall s':>7}  identical  load")
    rates: dict[str, list[float]] = {}
    clusters: list[LocalRayCluster] = []
    with tempfile.TemporaryDirectory(prefix="bench_ray_mask_") as temp:
        inputs = Path(temp) / "in"
        count = link_inputs(args.data, inputs, args.count)
        reference = None
        try:
            settings = [("local, 2 workers", ["--workers", "2"])]
            for cpus in (2, 1):
                started = time.perf_counter()
                cluster = LocalRayCluster(cpus, env={"PYTHONPATH": env["PYTHONPATH"]}).start()
                clusters.append(cluster)
                label = f"ray, {cpus} worker{'s' if cpus > 1 else ''}"
                print(f"# {label}: cluster started in {time.perf_counter() - started:.1f} s",
                      flush=True)
                settings.append((label, ["--ray", cluster.address]))
            # Interleaved, so that the load of other jobs drifts over every setting alike.
            for _ in range(args.repeats):
                for label, extra in settings:
                    output = Path(temp) / "out"
                    summary, wall = run_once(inputs, output, extra, env)
                    assert summary["processed"] == count, summary
                    same = digest(output)
                    reference = reference or same
                    rates.setdefault(label, []).append(summary["images_per_s"])
                    rates.setdefault(f"{label} e2e", []).append(count / wall)
                    print(f"{label:<22} {summary['images_per_s']:7.1f} {count / wall:9.1f} "
                          f"{wall:7.1f}  {same == reference}  load {os.getloadavg()[0]:.1f}",
                          flush=True)
        finally:
            for cluster in clusters:
                cluster.stop()
    median = {label: statistics.median(values) for label, values in rates.items()}
    for kind, suffix in (("processing", ""), ("end to end", " e2e")):
        ray2, ray1 = median[f"ray, 2 workers{suffix}"], median[f"ray, 1 worker{suffix}"]
        local = median[f"local, 2 workers{suffix}"]
        print(f"# {kind}, median img/s: local pool 2 workers {local:.1f}, ray 2 workers "
              f"{ray2:.1f}, ray 1 worker {ray1:.1f}")
        print(f"# {kind}: ray 2 workers / ray 1 worker = {ray2 / ray1:.2f}; "
              f"ray 2 workers / local pool 2 workers = {ray2 / local:.2f}")
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
