"""Time `maskmtl eval` end to end on 10,000 test images and print the figures.

Each timed run is a fresh `maskmtl eval` process (TensorFlow import, model load, image loading,
prediction, all metrics with 1,000 bootstrap resamples, metrics.json + predictions.csv), first
with a cold image cache, then warm, then warm with `--report` (figures and report.md).

Images: the first N UTKFace 64x64 crops of ../shared/data/utkface64 when present (read in place;
nothing is copied), else N synthetic noise images written to a temporary folder. Model: the file
given with --model, else an untrained `compact` hierarchical network from maskmtl_cli.models at
48x48 gray (prediction cost does not depend on the weights).

Usage:
    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_eval.py [--images 10000] [--model X.keras]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKMTL_SHARED_DATA", REPO.parent / "shared" / "data"))


def utkface_manifest(folder: Path, count: int, manifest: Path) -> str:
    """Manifest of the first ``count`` parseable UTKFace files, all in split ``test``."""
    import pandas as pd

    from maskmtl_cli.data.labels import parse_utkface_name

    rows = []
    for path in sorted(folder.iterdir()):
        parsed = parse_utkface_name(path.name)
        if parsed.status != "unparseable":
            rows.append({"path": str(path), "filename": path.name, "age": parsed.age,
                         "gender": parsed.gender, "race": parsed.race, "sha1": "", "split": "test"})
        if len(rows) == count:
            break
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return f"UTKFace utkface64 (first {len(rows)} files, 64x64 JPEG)"


def synthetic_manifest(root: Path, count: int, manifest: Path) -> str:
    """``count`` random 64x64 PNG images with random labels, all in split ``test``."""
    import cv2
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    rows = []
    for index in range(count):
        path = root / "images" / f"{index:05d}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (64, 64), dtype=np.uint8))
        rows.append({"path": str(path), "filename": path.name, "age": int(rng.integers(1, 90)),
                     "gender": int(rng.integers(0, 2)), "race": int(rng.integers(0, 5)),
                     "sha1": "", "split": "test"})
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return f"synthetic 64x64 PNG noise ({count} files)"


def make_model(run_dir: Path, given: Path | None) -> str:
    run_dir.mkdir(parents=True)
    if given is not None:
        shutil.copy(given, run_dir / "best.keras")
        return str(given)
    from maskmtl_cli.models import build_network, count_parameters

    network = build_network("hierarchical", preset="compact", image_size=48, color_mode="gray")
    network.save(run_dir / "best.keras")
    return (f"untrained compact hierarchical, 48x48 gray, "
            f"{count_parameters(network)['total']:,} parameters")


def timed_eval(run_dir: Path, manifest: Path, cache: Path, extra: list[str]) -> tuple[float, dict]:
    command = [sys.executable, "-m", "maskmtl_cli", "eval", str(run_dir), "--manifest",
               str(manifest), "--bootstrap", "1000", "--json", "--cache-dir", str(cache), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"maskmtl eval failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--model", type=Path, help="a .keras file to evaluate instead")
    parser.add_argument("--synthetic", action="store_true", help="ignore ../shared data")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="maskmtl-bench-eval-"))
    try:
        manifest = root / "manifest.csv"
        if (SHARED / "utkface64").is_dir() and not args.synthetic:
            source = utkface_manifest(SHARED / "utkface64", args.images, manifest)
        else:
            source = synthetic_manifest(root, args.images, manifest)
        model = make_model(root / "runs" / "bench", args.model)
        print(f"images: {source}\nmodel: {model}\ncpu: {os.cpu_count()} cores, load average "
              f"before {os.getloadavg()[0]:.2f}")
        runs = [("cold cache", []), ("warm cache", []), ("warm cache + --report", ["--report"])]
        for label, extra in runs:
            wall, metrics = timed_eval(root / "runs" / "bench", manifest, root / "cache", extra)
            timing = metrics["meta"]["timing_s"]
            print(f"{label:>22}: {wall:6.1f} s wall for {metrics['n']} faces | in-process: "
                  + ", ".join(f"{key} {value:.2f} s" for key, value in timing.items()))
        print(f"load average after {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
