"""Speed of `maskmtl predict`: one photo cold, where that time goes, and warm throughput.

Prints four measurements per engine (``--engines onnx,keras``; record them in docs/predict.md
with the machine and its load):

1. cold: wall time of ``maskmtl predict tests/data/astronaut.jpg --model M --engine E`` in a
   fresh process
   (process start to printed result), median and min over ``--cold-runs`` runs;
2. cold breakdown: the same steps timed one by one inside a fresh process;
3. warm throughput on aligned crops: ``run_predict(..., aligned=True)`` over ``--crops``
   200x200 JPEG face crops (decode, resize, batched forward pass), model already loaded;
   plus the forward pass alone (``predict_arrays`` on in-memory 48x48 inputs);
4. warm photos: ``predict_image`` on the 512x512 astronaut photo and on a 640x480 canvas with
   five faces (RetinaFace, align, predict).

Without ``--model`` the pretrained model shipped in the package is used; ``--untrained`` builds the
default architecture of ``maskmtl train`` instead (hierarchical, preset compact, 48x48 grayscale;
``--nonlocal`` adds the non-local block). Crops are made from the public-domain astronaut photo (shifted,
brightness-jittered copies of its aligned face); nothing is read from the UTKFace data.

Usage (from the repository root):

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_predict.py [--model M] [--engines onnx,keras]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "tests" / "data" / "astronaut.jpg"

#: Run in a fresh interpreter: the cold path of `maskmtl predict`, one step at a time.
BREAKDOWN_PROBE = r"""
import json, sys, time
start = time.perf_counter()
steps, last = {}, start
def lap(name):
    global last
    now = time.perf_counter(); steps[name] = round(now - last, 3); last = now
engine = sys.argv[3]
from maskmtl_cli.cli import app; lap("python + CLI modules")
import numpy, PIL.Image, cv2; lap("numpy, Pillow, OpenCV")
if engine == "keras":
    import tensorflow; lap("import tensorflow (+ keras)")
from maskmtl_cli.inference import load_model, input_spec, predict_arrays
model = load_model(sys.argv[1], engine); lap(f"load the model ({engine})")
from maskmtl_cli.faces.detection import get_detector
from maskmtl_cli.prediction.predict import read_image, face_crops
detector = get_detector("retinaface"); lap("build RetinaFace")
from maskmtl_cli.faces.alignment import to_model_input
photo = read_image(sys.argv[2]); lap("read photo")
pairs = face_crops(photo, "retinaface"); lap("first detection + alignment")
size, mode = input_spec(model)
inputs = numpy.stack([to_model_input(crop, size, mode) for _, crop in pairs])
predict_arrays(model, inputs); lap("first forward pass")
face_crops(photo, "retinaface"); lap("(second detection, for comparison)")
predict_arrays(model, inputs); lap("(second forward pass, for comparison)")
print(json.dumps(steps))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="A .onnx or .keras file or run folder "
                        "(default: the shipped pretrained model).")
    parser.add_argument("--untrained", action="store_true",
                        help="Build the default `maskmtl train` network untrained instead.")
    parser.add_argument("--nonlocal", dest="nonlocal_block", action="store_true",
                        help="With --untrained: build the network with the non-local block.")
    parser.add_argument("--engines", default="onnx,keras",
                        help="Comma-separated engines to measure (onnx, keras).")
    parser.add_argument("--crops", type=int, default=2048, help="Aligned crops to predict.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed repeats of warm runs.")
    parser.add_argument("--cold-runs", type=int, default=3, help="Cold process runs.")
    parser.add_argument("--batch-size", type=int, default=256)
    return parser.parse_args()


def build_default_model(folder: Path, nonlocal_block: bool) -> Path:
    from maskmtl_cli.models import build_network, count_parameters

    from maskmtl_cli.models.export import export_onnx

    model = build_network(arch="hierarchical", preset="compact", image_size=48,
                          color_mode="gray", nonlocal_block=nonlocal_block)
    path = folder / "compact.keras"
    model.save(path)
    export_onnx(model, path.with_suffix(".onnx"))
    print(f"model: untrained hierarchical/compact 48x48 gray"
          f"{' + non-local' if nonlocal_block else ''}, "
          f"{count_parameters(model)['total']:,} parameters")
    return path


def cold(model: Path, runs: int, engine: str) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "maskmtl_cli", "predict", str(ASTRONAUT), "--model",
               str(model), "--engine", engine]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - start)
    print(f"\n1. cold, one photo ({' '.join(['maskmtl', *command[3:]])}):")
    print(f"   median {statistics.median(times):.2f} s, min {min(times):.2f} s over {runs} runs")
    probe = subprocess.run([sys.executable, "-c", BREAKDOWN_PROBE, str(model), str(ASTRONAUT),
                            engine],
                           check=True, capture_output=True, text=True, env=env, cwd=REPO)
    steps = json.loads(probe.stdout.strip().splitlines()[-1])
    print("\n2. cold breakdown (one fresh process):")
    for name, seconds in steps.items():
        print(f"   {name:<40} {seconds:6.2f} s")


def make_crops(folder: Path, count: int) -> None:
    """Aligned 200x200 crops of the astronaut, jittered so every file differs."""
    import numpy as np
    from PIL import Image

    from maskmtl_cli.faces.alignment import align_face
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.prediction.predict import read_image

    photo = read_image(ASTRONAUT)
    face = max(get_detector("retinaface").detect(photo), key=lambda f: f.area)
    base = align_face(photo, face).astype(np.float32)
    rng = np.random.default_rng(0)
    for index in range(count):
        shift = rng.integers(-6, 7, size=2)
        crop = np.roll(base, tuple(shift), axis=(0, 1)) * rng.uniform(0.8, 1.2)
        Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).save(
            folder / f"crop_{index:05d}.jpg", quality=90)


def warm(model_path: Path, crops: int, repeats: int, batch_size: int, engine: str) -> None:
    import numpy as np

    from maskmtl_cli.inference import input_spec, load_model, predict_arrays
    from maskmtl_cli.prediction.predict import PredictConfig, predict_image, read_image, run_predict

    model = load_model(model_path, engine)
    with tempfile.TemporaryDirectory() as folder:
        make_crops(Path(folder), crops)
        config = PredictConfig(inputs=(Path(folder),), model=model_path, aligned=True,
                               batch_size=batch_size, engine=engine)
        run_predict(config, model=model)  # warm-up: graph tracing, file cache
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = run_predict(config, model=model)
            rates.append(len(result.records) / (time.perf_counter() - start))
    print(f"\n3. warm, aligned crops ({crops} 200x200 JPEGs, --aligned, batch {batch_size}):")
    print(f"   end to end (decode + resize + predict): median {statistics.median(rates):.0f}, "
          f"best {max(rates):.0f} faces/s over {repeats} runs")
    size, mode = input_spec(model)
    inputs = np.random.default_rng(0).integers(0, 256, (crops, size, size, 1 if mode == "gray"
                                                         else 3), dtype=np.uint8)
    predict_arrays(model, inputs[:batch_size], batch_size=batch_size)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_arrays(model, inputs, batch_size=batch_size)
        rates.append(crops / (time.perf_counter() - start))
    print(f"   forward pass only ({size}x{size} {mode}): median {statistics.median(rates):.0f}, "
          f"best {max(rates):.0f} faces/s")
    photo = read_image(ASTRONAUT)
    for label, image in (("one 512x512 photo, 1 face", photo),
                         ("one 640x480 photo, 5 faces", five_face_canvas(photo))):
        found = len(predict_image(image, model))
        times = []
        for _ in range(max(10, repeats)):
            start = time.perf_counter()
            predict_image(image, model)
            times.append(time.perf_counter() - start)
        print(f"\n4. warm, {label} (RetinaFace + align + predict, {found} found): median "
              f"{statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms")


def five_face_canvas(photo):
    """A 640x480 canvas with five shrunken, shifted copies of the astronaut's head."""
    import cv2
    import numpy as np

    canvas = np.full((480, 640, 3), 90, np.uint8)
    head = photo[20:260, 130:330]
    for x, y, side in [(20, 40, 150), (200, 60, 120), (350, 30, 170), (80, 280, 110),
                       (420, 260, 160)]:
        resized = cv2.resize(head, (side, round(side * 1.2)), interpolation=cv2.INTER_AREA)
        canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return canvas


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args()
    print(f"cpus: {os.cpu_count()}, load average at start: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    from maskmtl_cli.prediction.predict import DEFAULT_MODEL

    with tempfile.TemporaryDirectory() as folder:
        if args.untrained:
            model = build_default_model(Path(folder), args.nonlocal_block)
        else:
            model = args.model or DEFAULT_MODEL
            print(f"model: {model}")
        for engine in [part.strip() for part in args.engines.split(",") if part.strip()]:
            print(f"\n=== engine: {engine} ===")
            cold(model, args.cold_runs, engine)
            warm(model, args.crops, args.repeats, args.batch_size, engine)
    print(f"\nload average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
