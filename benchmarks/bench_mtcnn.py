"""MTCNN speed: the NumPy port (``prediction/mtcnn_numpy/``) against the ``mtcnn`` package.

Each implementation runs in its own fresh interpreter, so TensorFlow's import does not slow the
NumPy one down. For each it prints:

1. cold start: import of the detector's module (NumPy and OpenCV, which ``maskmtl predict``
   loads anyway, are imported before the clock starts), construction, and the first detection
   on a 640x480 photo, with their sum: what detection adds to ``maskmtl predict``'s start-up;
2. warm detection per photo, after one warm-up call: median and minimum wall time and the median
   process CPU time (steadier on a machine shared with other work) over ``--repeats`` calls, on
   the public-domain astronaut photo (512x512) and copies resized to 640x480 and 1280x960.

    python benchmarks/bench_mtcnn.py --repeats 5 [--skip-tf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "maskmtl_cli" / "assets" / "samples" / "astronaut.jpg"

#: Run in a fresh interpreter: argv = implementation ("numpy" or "tf"), photo path, repeats.
PROBE = r"""
import json, sys, time
start = time.perf_counter()
import cv2, numpy as np
kind, photo, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
astronaut = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
photos = {"512x512": astronaut,
          "640x480": cv2.resize(astronaut, (640, 480), interpolation=cv2.INTER_AREA),
          "1280x960": cv2.resize(astronaut, (1280, 960), interpolation=cv2.INTER_AREA)}
report, last = {}, time.perf_counter()
def lap(name):
    global last
    now = time.perf_counter(); report[name] = now - last; last = now
if kind == "numpy":
    from maskmtl_cli.prediction.mtcnn_numpy import NumpyMtcnn as Detector
else:
    from mtcnn import MTCNN as Detector
lap("import")
detector = Detector(); lap("construction")
faces = detector.detect_faces(photos["640x480"]); lap("first detection 640x480")
report["faces"] = len(faces)
for name, image in photos.items():
    detector.detect_faces(image)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        detector.detect_faces(image)
        wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    report[name] = {"median": float(np.median(wall)), "min": min(wall),
                    "cpu": float(np.median(cpu))}
print(json.dumps(report))
"""


def run_probe(kind: str, repeats: int) -> dict:
    """Run PROBE for one implementation in a fresh interpreter and return its report."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", PROBE, kind, str(PHOTO), str(repeats)],
                          capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} probe failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-tf", action="store_true", help="Time the NumPy port only.")
    args = parser.parse_args()
    kinds = ["numpy"] if args.skip_tf else ["numpy", "tf"]
    reports = {kind: run_probe(kind, args.repeats) for kind in kinds}
    labels = {"numpy": "numpy port", "tf": "mtcnn (TF)"}

    print(f"MTCNN, {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; warm rows: {args.repeats} calls after one warm-up")
    print(f"{'cold start (s)':<28}" + "".join(f"{labels[k]:>14}" for k in kinds))
    for step in ("import", "construction", "first detection 640x480"):
        print(f"{step:<28}" + "".join(f"{reports[k][step]:>14.3f}" for k in kinds))
    total = {k: sum(reports[k][s] for s in ("import", "construction", "first detection 640x480"))
             for k in kinds}
    print(f"{'total':<28}" + "".join(f"{total[k]:>14.3f}" for k in kinds))
    print(f"{'faces found (640x480)':<28}" + "".join(f"{reports[k]['faces']:>14d}" for k in kinds))
    print(f"\n{'warm detection (ms)':<28}" + "".join(f"{labels[k]:>24}" for k in kinds))
    print(f"{'':<28}" + "".join(f"{'median   min   cpu':>24}" for _ in kinds))
    for photo in ("512x512", "640x480", "1280x960"):
        times = [reports[k][photo] for k in kinds]
        cells = "".join(f"{t['median'] * 1e3:>12.0f}{t['min'] * 1e3:>6.0f}{t['cpu'] * 1e3:>6.0f}"
                        for t in times)
        print(f"{photo:<28}{cells}")


if __name__ == "__main__":
    main()
