"""Speed of the numpy inference runtime (``maskmtl_cli.runtime``) against Keras.

Each engine runs in its own fresh interpreter, one after the other, and reports:

- import: seconds to import the engine (``maskmtl_cli.runtime``, or ``keras`` with its backend);
- load: seconds to load the model file;
- first: seconds of the first forward pass on one face (what ``maskmtl predict`` pays);
- cold total: process start to first prediction, interpreter start-up included;
- faces/s at batch 1 and at batch 256, with ``predict_on_batch`` (what ``inference`` calls),
  each measured for ``--seconds`` seconds after one warm-up call.

The numpy engine runs with BLAS capped at one thread (the runtime's default) and, as
"numpy (BLAS default)", with the BLAS library's own thread count. The machine's load matters
(another job sharing the cores slows every row): record it with the figures.

Usage (from the repository root):

    python benchmarks/bench_runtime.py [MODEL.keras] [--seconds 3] [--skip-keras]
    python benchmarks/bench_runtime.py --build wide:64     # an untrained preset:size network
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "maskmtl_cli" / "assets" / "models" / "maskmtl_default.keras"

#: Runs in a fresh interpreter: argv = engine, model path, seconds, blas threads ("none" or int).
PROBE = r"""
import json, sys, time
start = time.perf_counter()
engine, path, seconds, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
import numpy as np
if engine == "numpy":
    from maskmtl_cli.runtime import load_numpy_model
    imported = time.perf_counter()
    model = load_numpy_model(path, blas_threads=None if threads == "none" else int(threads))
else:
    import keras
    import maskmtl_cli.models  # registers NonLocalBlock
    imported = time.perf_counter()
    model = keras.saving.load_model(path, compile=False)
loaded = time.perf_counter()
shape = tuple(model.input_shape[1:])
faces = np.random.default_rng(0).integers(0, 256, (256,) + shape).astype("float32")
model.predict_on_batch(faces[:1])
first = time.perf_counter()
print("ready", flush=True)
rates = {}
for batch in (1, 256):
    model.predict_on_batch(faces[:batch])
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        model.predict_on_batch(faces[:batch])
        count += batch
    rates[batch] = count / (time.perf_counter() - begin)
print(json.dumps({
    "import": imported - start, "load": loaded - imported, "first": first - loaded,
    "in_process": first - start, "rate1": rates[1], "rate256": rates[256],
}))
"""


def run_probe(engine: str, model: Path, seconds: float, threads: str) -> dict:
    """Run PROBE in a fresh interpreter; ``cold`` is process start to the first prediction."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    begin = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE, engine, str(model), str(seconds), threads],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    first_line = process.stdout.readline()
    cold = time.perf_counter() - begin
    rest, errors = process.communicate()
    if process.returncode != 0 or first_line.strip() != "ready":
        raise SystemExit(f"{engine} probe failed:\n{errors[-2000:]}")
    figures = json.loads(rest.strip().splitlines()[-1])
    figures["cold"] = cold
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL)
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="duration of each throughput run"
    )
    parser.add_argument("--skip-keras", action="store_true", help="only time the numpy runtime")
    parser.add_argument("--build", metavar="PRESET:SIZE",
                        help="time an untrained hierarchical + non-local RGB network of this "
                             "preset and input size (e.g. wide:64) instead of MODEL")
    args = parser.parse_args()
    if args.build:
        import tempfile

        from maskmtl_cli.models import build_network

        preset, size = args.build.split(":")
        args.model = Path(tempfile.mkdtemp()) / f"{preset}{size}.keras"
        build_network("hierarchical", preset=preset, image_size=int(size), color_mode="rgb",
                      nonlocal_block=True, augment=True).save(args.model)
    runs = [("numpy (1 BLAS thread)", "numpy", "1"), ("numpy (BLAS default)", "numpy", "none")]
    if not args.skip_keras:
        runs.append(("keras", "keras", "none"))
    print(f"model: {args.model}  cores: {os.cpu_count()}  load average: {os.getloadavg()[0]:.2f}")
    print(
        f"{'engine':24s} {'import s':>9s} {'load s':>7s} {'first s':>8s} {'cold s':>7s} "
        f"{'faces/s b1':>11s} {'faces/s b256':>13s}"
    )
    for label, engine, threads in runs:
        f = run_probe(engine, args.model, args.seconds, threads)
        print(f"{label:24s} {f['import']:9.3f} {f['load']:7.3f} {f['first']:8.4f} {f['cold']:7.2f} "
              f"{f['rate1']:11.1f} {f['rate256']:13.1f}")


if __name__ == "__main__":
    main()
