"""Speed of `maskmtl predict` on photos of real sizes: today's detector against an older one.

Times ``predict_image`` (RetinaFace, alignment, the model; everything loaded and warm) on photos
made from the public-domain astronaut sample: a 640x480 photo with five faces, and close-up
portraits (the head filling half the photo) of 1024, 2048 and 4000x3000 pixels. With
``--old-tree`` the detector of an older checkout (``git worktree add /tmp/maskmtl-old COMMIT``)
runs on the same photos in the same process, alternating with today's, so both see the same
load. The 4000x3000 photo is also timed from its JPEG file (decoding included) and cold, in a
fresh ``maskmtl predict`` process.

Usage (repository root):

    python benchmarks/bench_photo_sizes.py [--old-tree /tmp/maskmtl-old] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "assets" / "samples" / "astronaut.jpg"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def portrait(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """The astronaut's head filling about half the height of a ``width`` x ``height`` photo."""
    import cv2

    canvas = cv2.resize(photo[300:512, 0:512], (width, height), interpolation=cv2.INTER_CUBIC)
    head = photo[10:330, 66:386]
    side = height // 2 * 320 // 190
    head = cv2.resize(head, (side, side), interpolation=cv2.INTER_CUBIC)
    x, y = (width - side) // 2, (height - side) // 2
    canvas[max(0, y):y + side, max(0, x):x + side] = head[max(0, -y):, max(0, -x):][
        :height - max(0, y), :width - max(0, x)]
    return canvas


def photos() -> dict[str, np.ndarray]:
    from bench_predict import five_face_canvas

    from maskmtl_cli.prediction.inputs import read_image

    photo = read_image(ASTRONAUT)
    return {"640x480, 5 faces": five_face_canvas(photo),
            "512x512 astronaut": photo,
            "1024x768 portrait": portrait(photo, 1024, 768),
            "2048x1536 portrait": portrait(photo, 2048, 1536),
            "4000x3000 portrait": portrait(photo, 4000, 3000)}


def timed(function, repeats: int) -> tuple[float, float]:
    """Median and min milliseconds of ``function()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", type=Path, help="An older checkout to compare with.")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from detection_photos import old_detector

    import maskmtl_cli.prediction.predict as predict
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.inference import load_model

    print(f"cpus {os.cpu_count()}, load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    model = load_model(predict.DEFAULT_MODEL)
    detectors = {"current": get_detector("retinaface")}
    if args.old_tree:
        detectors["old"] = old_detector(args.old_tree)
    for label, image in photos().items():
        cells = []
        for name, detector in detectors.items():
            predict.get_detector = lambda *_, detector=detector: detector
            found = len(predict.predict_image(image, model))
            median, best = timed(lambda: predict.predict_image(image, model), args.repeats)
            cells.append(f"{name} {median:.1f} ms (min {best:.1f}), {found} faces")
        print(f"{label:<20} " + "; ".join(cells))
    predict.get_detector = get_detector
    big = photos()["4000x3000 portrait"]
    with tempfile.TemporaryDirectory() as folder:
        import cv2

        path = Path(folder) / "portrait_4000.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        median, best = timed(lambda: predict.predict_image(predict.read_image(path), model),
                             args.repeats)
        print(f"4000x3000 JPEG file (decode + predict, current): {median:.1f} ms (min {best:.1f})")
        command = [sys.executable, "-m", "maskmtl_cli", "predict", str(path)]
        times = []
        for _ in range(args.cold_runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=REPO)
            times.append(time.perf_counter() - start)
        print(f"4000x3000 JPEG cold (`maskmtl predict FILE`, fresh process): median "
              f"{statistics.median(times):.2f} s, min {min(times):.2f} s")
    print(f"load at end {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
