"""Throughput and success rate of ``maskmtl mask`` on UTKFace crops.

Builds input folders of links (no copies) to every ``--step``-th file, in sorted order, of
``utkface200_part1`` (the 200x200 crops) and to the same names in ``utkface64``, then runs the
real CLI in a fresh process per run and prints, per setting, the median over ``--repeats`` runs
of: images/s while processing (models loaded), images/s end to end (process start to exit, with
Python start-up and model loading), the share of images masked, and the time split per image
(decode, detect, landmarks, overlay, encode; summed over workers, so per worker-second).

Example (the issue's setting: 300 images, every 32nd file)::

    python benchmarks/bench_mask.py --repeats 5
    python benchmarks/bench_mask.py --modes detect --detector auto --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("MASKMTL_SHARED_DATA", REPO.parent / "shared" / "data"))
STAGES = ("decode", "detect", "landmarks", "overlay", "encode")


def link_inputs(data: Path, root: Path, count: int, step: int) -> dict[str, Path]:
    """Folders of links: {"200px": ..., "64px": ...} holding the same file names."""
    names = sorted(os.listdir(data / "utkface200_part1"))[::step][:count]
    folders = {}
    for label, source in (("200px", "utkface200_part1"), ("64px", "utkface64")):
        folder = root / label
        folder.mkdir()
        for name in names:
            (folder / name).symlink_to(data / source / name)
        folders[label] = folder
    return folders


def busy_cpu_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (from /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_busy: float, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until the machine is busier than ``max_busy`` no more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = busy_cpu_seconds()
        time.sleep(2.0)
        if (busy_cpu_seconds() - before) / (2.0 * (os.cpu_count() or 1)) <= max_busy:
            return


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(inputs: Path, output: Path, workers: int, mode: str, detector: str,
             mask_type: str) -> tuple[dict, float, float]:
    """One CLI run: its summary, wall seconds, and the share of the machine's CPU that other
    processes used meanwhile (contention from whatever else runs on the machine)."""
    command = [sys.executable, "-m", "maskmtl_cli", "mask", str(inputs), str(output),
               "--workers", str(workers), "--mask-type", mask_type, "--seed", "0",
               "--overwrite", "--json"]
    command += ["--aligned"] if mode == "aligned" else ["--detector", detector]
    busy, ours = busy_cpu_seconds(), children_cpu_seconds()
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - started
    others = (busy_cpu_seconds() - busy) - (children_cpu_seconds() - ours)
    if result.returncode != 0:
        raise SystemExit(f"maskmtl mask failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout), wall, max(0.0, others) / (wall * (os.cpu_count() or 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--step", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=["aligned", "detect"],
                        choices=["aligned", "detect"])
    parser.add_argument("--sizes", nargs="+", default=["200px", "64px"], choices=["200px", "64px"])
    parser.add_argument("--detector", default="auto", choices=["auto", "hog", "retinaface", "cnn"])
    parser.add_argument("--mask-type", default="random")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-others", type=float, default=1.0,
                        help="Keep only runs during which other processes used at most this "
                             "share of the machine's CPU (0-1); retried up to 4x --repeats.")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="Before each run, wait up to this many seconds for the machine to "
                             "be no busier than --max-others.")
    args = parser.parse_args()
    if not (args.data / "utkface200_part1").is_dir():
        raise SystemExit(f"UTKFace data not found under {args.data} (set --data).")

    print(f"# maskmtl mask benchmark: {args.count} images (1 in {args.step}, sorted), "
          f"--mask-type {args.mask_type}, median of {args.repeats} runs, "
          f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")
    header = (f"{'mode':<14} {'size':<6} {'workers':>7} {'img/s':>7} {'e2e img/s':>9} "
              f"{'masked':>7} " + " ".join(f"{stage:>9}" for stage in STAGES)
              + f" {'others':>7}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="bench_mask_") as temp:
        folders = link_inputs(args.data, Path(temp), args.count, args.step)
        for mode in args.modes:
            label = "aligned" if mode == "aligned" else f"detect {args.detector}"
            for size in args.sizes:
                for workers in args.workers:
                    rates, walls, masked, stages = [], [], [], {s: [] for s in STAGES}
                    reasons: dict[str, int] = {}
                    contention: list[float] = []
                    for _ in range(4 * args.repeats):
                        if args.wait_quiet:
                            wait_for_quiet(args.max_others, args.wait_quiet)
                        summary, wall, others = run_once(folders[size], Path(temp) / "out",
                                                         workers, mode, args.detector,
                                                         args.mask_type)
                        if others > args.max_others:
                            continue
                        contention.append(others)
                        rates.append(summary["images_per_s"])
                        walls.append(summary["processed"] / wall)
                        masked.append(summary["masked"] / summary["selected"])
                        reasons = summary["failures_by_reason"]
                        for stage in STAGES:
                            stages[stage].append(summary["stage_ms"][stage])
                        if len(rates) == args.repeats:
                            break
                    if not rates:
                        print(f"{label:<14} {size:<6} {workers:>7} no run under --max-others")
                        continue
                    split = " ".join(f"{statistics.median(stages[s]):7.2f}ms" for s in STAGES)
                    print(f"{label:<14} {size:<6} {workers:>7} {statistics.median(rates):7.1f} "
                          f"{statistics.median(walls):9.1f} {statistics.median(masked):7.1%} "
                          f"{split} {max(contention):7.0%} {reasons or ''}", flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.2f}. img/s: images over processing time "
          "(models loaded); e2e: over the whole command; stage times: ms per image per worker; "
          "others: the most CPU other processes used during a kept run, as a share of the "
          "machine.")


if __name__ == "__main__":
    main()
