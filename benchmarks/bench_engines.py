"""ONNX Runtime and RetinaFace against the engines they replaced, in one run.

Until issue 11, `predict` ran models with a home-made numpy interpreter (`maskmtl_cli/runtime/`)
and found faces with a numpy port of MTCNN (`prediction/mtcnn_numpy/`). This script measures
both old engines beside their replacements in the same process run, on the same inputs:

1. model forward pass, faces/s at batch 16 and 256 (numpy runtime vs ONNX Runtime vs Keras),
   plus the largest output difference to Keras and the load time;
2. face detection, ms per photo (numpy MTCNN vs RetinaFace on ONNX Runtime) on the
   astronaut photo and on a 640x480 canvas with five faces, and the detector build time.

The old engines no longer exist in this tree: pass a checkout of a commit that still has them,
e.g. ``git worktree add /tmp/maskmtl-old 0912e6d``. Usage (repository root):

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_engines.py --old-tree /tmp/maskmtl-old \\
        --model maskmtl_cli/assets/models/maskmtl_default.keras
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def best_rate(function, count: int, repeats: int = 5) -> float:
    """Items per second of ``function()`` (which handles ``count`` items): median of repeats."""
    function()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def milliseconds(function, repeats: int = 20) -> float:
    """Median wall time of ``function()`` in ms, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def old_modules(old_tree: Path):
    """``runtime`` and ``mtcnn_numpy`` imported from the old checkout, under other names."""
    sys.path.insert(0, str(old_tree))
    for name in [n for n in sys.modules if n == "maskmtl_cli" or n.startswith("maskmtl_cli.")]:
        del sys.modules[name]
    runtime = importlib.import_module("maskmtl_cli.runtime")
    mtcnn = importlib.import_module("maskmtl_cli.prediction.mtcnn_numpy")
    sys.path.pop(0)
    for name in [n for n in sys.modules if n == "maskmtl_cli" or n.startswith("maskmtl_cli.")]:
        sys.modules["old_" + name] = sys.modules.pop(name)
    return runtime, mtcnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", type=Path, required=True)
    parser.add_argument("--model", type=Path,
                        default=REPO / "maskmtl_cli" / "assets" / "models" /
                        "maskmtl_default.keras")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runtime, old_mtcnn = old_modules(args.old_tree.resolve())

    from maskmtl_cli.inference import OnnxModel, load_model
    from maskmtl_cli.models.export import export_keras_file
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.prediction.inputs import read_image
    from bench_predict import five_face_canvas  # this folder is on sys.path

    onnx_path = Path("/tmp") / f"bench-engines-{os.getpid()}.onnx"
    export_keras_file(args.model, onnx_path)
    start = time.perf_counter()
    numpy_model = runtime.load_numpy_model(args.model)
    numpy_load = time.perf_counter() - start
    start = time.perf_counter()
    onnx_model = OnnxModel(onnx_path)
    onnx_load = time.perf_counter() - start
    keras_model = load_model(args.model, "keras")
    size, channels = keras_model.input_shape[1], keras_model.input_shape[3]
    rng = np.random.default_rng(0)
    print(f"model {args.model} ({size}x{size}x{channels}); load: numpy runtime "
          f"{numpy_load * 1000:.0f} ms, ONNX Runtime {onnx_load * 1000:.0f} ms")
    for batch in (16, 256):
        images = rng.uniform(0, 255, (batch, size, size, channels)).astype("float32")
        expected = keras_model.predict_on_batch(images)
        rates = {}
        for name, model in (("numpy runtime", numpy_model), ("ONNX Runtime", onnx_model),
                            ("Keras", keras_model)):
            outputs = model.predict_on_batch(images)
            worst = max(float(np.max(np.abs(np.asarray(outputs[k]) - np.asarray(expected[k]))))
                        for k in expected)
            rates[name] = best_rate(lambda m=model: m.predict_on_batch(images), batch)
            print(f"  batch {batch:>3}: {name:<14} {rates[name]:>8,.0f} faces/s "
                  f"(max |diff| to Keras {worst:.1e})")
        print(f"  batch {batch:>3}: ONNX Runtime / numpy runtime = "
              f"{rates['ONNX Runtime'] / rates['numpy runtime']:.1f}x")
    onnx_path.unlink(missing_ok=True)

    photo = read_image(REPO / "tests" / "data" / "astronaut.jpg")
    canvas = five_face_canvas(photo)
    start = time.perf_counter()
    numpy_mtcnn = old_mtcnn.NumpyMtcnn()
    mtcnn_build = time.perf_counter() - start
    start = time.perf_counter()
    retinaface = get_detector("retinaface")
    retinaface_build = time.perf_counter() - start
    print(f"detector build: numpy MTCNN {mtcnn_build * 1000:.0f} ms, RetinaFace "
          f"{retinaface_build * 1000:.0f} ms")
    for label, image in (("astronaut 512x512", photo), ("canvas 640x480, 5 faces", canvas)):
        found_old = len(numpy_mtcnn.detect_faces(image))
        found_new = len(retinaface.detect(image))
        old_ms = milliseconds(lambda: numpy_mtcnn.detect_faces(image))
        new_ms = milliseconds(lambda: retinaface.detect(image))
        print(f"  {label}: numpy MTCNN {old_ms:.1f} ms ({found_old} faces), RetinaFace "
              f"{new_ms:.1f} ms ({found_new} faces)")


if __name__ == "__main__":
    main()
