"""Face detection on masked faces pasted into photos: RetinaFace against MTCNN, same canvases.

Every image of a `maskmtl mask` output folder of UTKFace's 200x200 crops (``--masked``, e.g.
``maskmtl mask utkface200_part1 masked200 --seed 0``) is pasted at a random position and size
(face 40-200 px) into a 640x480 canvas made of another crop, blurred and enlarged; a third of
them are rotated by up to +-20 degrees first. Canvases are made on the fly from ``--seed`` (the
same canvases for every detector) and never written.

Canvases are made again for each pass (a few ms each) rather than held in memory.

A face counts as found when a detection's centre lies inside the true face box and its width
is 0.5-2x the true face width; other detections are false positives. Each detector runs at its
own defaults (RetinaFace's pyramid merges its passes at its threshold, so thresholds cannot be
swept after the fact). `--photos` and `--portraits` measure ordinary photos and one-face
portraits instead (``detection_photos.py``). Then, with
``--model``, the same faces are pasted against a canvas edge, found by RetinaFace at its
default threshold, aligned with each border mode (``alignment.py``) and scored against their
UTKFace labels, on the faces whose aligned crop reaches past the edge (where the mode matters)
and on all of them.

Usage (repository root; a full run of 9,780 canvases takes about half an hour for MTCNN):

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_detection.py --masked ../data/masked200 \\
        [--step N] [--detectors retinaface,mtcnn] [--model maskmtl_cli/assets/models/...]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CANVAS = (640, 480)
FACE_RANGE = (40, 200)
#: The face of an aligned UTKFace crop, as fractions of the crop (the box `mask --aligned` uses).
FACE_IN_CROP = (0.075, 0.075, 0.97, 0.97)


@dataclass
class Canvas:
    """One canvas: the image, the true face box (x0, y0, x1, y1), labels and how it was made."""

    image: np.ndarray
    box: tuple[float, float, float, float]
    name: str
    rotated: bool
    face_size: float


def make_canvas(files: list[Path], index: int, seed: int, edge: bool = False) -> Canvas:
    """Canvas ``index``: face ``files[index]`` on a background made of another file (with
    ``edge``, pasted against one of the four canvas edges)."""
    import cv2

    rng = np.random.default_rng([seed, index])
    face = cv2.cvtColor(cv2.imread(str(files[index])), cv2.COLOR_BGR2RGB)
    other = files[(index + 1 + int(rng.integers(len(files) - 1))) % len(files)]
    background = cv2.cvtColor(cv2.imread(str(other)), cv2.COLOR_BGR2RGB)
    background = cv2.resize(background, CANVAS, interpolation=cv2.INTER_LINEAR)
    background = cv2.GaussianBlur(background, (0, 0), 12)
    face_size = float(rng.uniform(*FACE_RANGE))
    side = max(8, round(face_size / (FACE_IN_CROP[2] - FACE_IN_CROP[0])))
    crop = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    alpha = np.full((side, side), 255, np.uint8)
    rotated = index % 3 == 0
    if rotated:
        angle = float(rng.uniform(-20, 20))
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        crop = cv2.warpAffine(crop, matrix, (side, side), borderMode=cv2.BORDER_REFLECT_101)
        alpha = cv2.warpAffine(alpha, matrix, (side, side))
    width, height = CANVAS
    x = int(rng.integers(0, width - side + 1))
    y = int(rng.integers(0, height - side + 1))
    if edge:
        side_index = index % 4
        x = 0 if side_index == 0 else width - side if side_index == 1 else x
        y = 0 if side_index == 2 else height - side if side_index == 3 else y
    weight = (alpha.astype(np.float32) / 255)[:, :, None]
    region = background[y:y + side, x:x + side].astype(np.float32)
    background[y:y + side, x:x + side] = (weight * crop + (1 - weight) * region).astype(np.uint8)
    left, top, right, bottom = (v * side for v in FACE_IN_CROP)
    return Canvas(background, (x + left, y + top, x + right, y + bottom), files[index].name,
                  rotated, face_size)


def match(box: tuple[float, ...], detections: list) -> tuple[object | None, int]:
    """The detection that finds the true face (best score first) and the false positives."""
    x0, y0, x1, y1 = box
    width = x1 - x0
    hit, false = None, 0
    for face in sorted(detections, key=lambda f: -(f.score or 0)):
        fx, fy, fw, fh = face.box
        centre_x, centre_y = fx + fw / 2, fy + fh / 2
        if hit is None and x0 <= centre_x <= x1 and y0 <= centre_y <= y1 and \
                0.5 * width <= fw <= 2 * width:
            hit = face
        else:
            false += 1
    return hit, false


def canvases_of(files: list[Path], seed: int, edge: bool = False):
    """Every canvas, made one at a time."""
    for index in range(len(files)):
        yield make_canvas(files, index, seed, edge)


def run_detector(name: str, files: list[Path], seed: int, detector=None):
    """Detections per canvas for one detector (by name, or the object given), the canvases
    (without their pixels) and the time spent detecting."""
    from maskmtl_cli.faces.detection import get_detector

    detector = detector or get_detector(name)
    found, canvases, seconds = [], [], 0.0
    for canvas in canvases_of(files, seed):
        start = time.perf_counter()
        faces = detector.detect(canvas.image, 20)
        seconds += time.perf_counter() - start
        found.append(faces)
        canvas.image = None
        canvases.append(canvas)
    return {"faces": found, "seconds": seconds, "canvases": canvases}


def report(name: str, canvases, detections) -> None:
    """Recall overall, for rotated faces and per face-size band; false positives per canvas."""
    hits, false = [], 0
    for canvas, faces in zip(canvases, detections):
        hit, wrong = match(canvas.box, faces)
        hits.append(hit is not None)
        false += wrong
    hits = np.array(hits)
    rotated = np.array([c.rotated for c in canvases])
    sizes = np.array([c.face_size for c in canvases])
    bands = [(40, 80), (80, 120), (120, 160), (160, 201)]
    by_size = ", ".join(f"{lo}-{hi - 1 if hi == 201 else hi} px {hits[(sizes >= lo) & (sizes < hi)].mean():.1%}"
                        for lo, hi in bands)
    print(f"  {name:<20} found {hits.mean():.2%} ({hits.sum()}/{len(hits)}), upright "
          f"{hits[~rotated].mean():.2%}, rotated {hits[rotated].mean():.2%}; "
          f"false detections {false / len(canvases):.3f} per canvas; by face size: {by_size}")


def score_borders(model_path: Path, files: list[Path], seed: int, labels) -> None:
    """Model metrics on RetinaFace's aligned faces with each border mode, on canvases whose
    face touches an edge (so most aligned crops reach past it)."""
    from maskmtl_cli.inference import input_spec, load_model, predict_arrays
    from maskmtl_cli.faces.alignment import BORDER_MODES, align_face, alignment_matrix
    from maskmtl_cli.faces.alignment import to_model_input

    from maskmtl_cli.faces.detection import get_detector

    model = load_model(model_path)
    size, colour = input_spec(model)
    detector = get_detector("retinaface")
    inputs = {border: [] for border in BORDER_MODES}
    truth, past_edge = [], []
    for canvas in canvases_of(files, seed, edge=True):
        hit, _ = match(canvas.box, detector.detect(canvas.image, 20))
        if hit is None or canvas.name not in labels:
            continue
        matrix = alignment_matrix(hit, 200)
        inverse = np.vstack([matrix, [0, 0, 1]])
        corners = np.linalg.inv(inverse) @ np.array([[0, 200, 0, 200], [0, 0, 200, 200],
                                                     [1, 1, 1, 1]], float)
        height, width = canvas.image.shape[:2]
        past_edge.append(bool((corners[0] < 0).any() or (corners[0] > width).any()
                              or (corners[1] < 0).any() or (corners[1] > height).any()))
        truth.append(labels[canvas.name])
        for border in BORDER_MODES:
            inputs[border].append(to_model_input(align_face(canvas.image, hit, border), size,
                                                 colour))
    past_edge, truth = np.array(past_edge), np.array(truth, float)
    print(f"\nBorder modes, the same faces pasted against a canvas edge: {len(truth)} found "
          f"and labelled, {past_edge.sum()} of them with an aligned crop that reaches past the "
          f"edge (model {model_path}):")
    for border in BORDER_MODES:
        outputs = predict_arrays(model, np.stack(inputs[border]))
        gender = (outputs["gender"] >= 0.5).astype(int) == truth[:, 1]
        race = outputs["race"].argmax(axis=1) == truth[:, 2]
        error = np.abs(outputs["age"] - truth[:, 0])
        for label, rows_selected in (("past the edge", past_edge), ("all faces", slice(None))):
            print(f"  {border:<10} {label:<14} gender {gender[rows_selected].mean():.4f}, "
                  f"ethnicity {race[rows_selected].mean():.4f}, age MAE "
                  f"{error[rows_selected].mean():.2f}")


def read_labels(files: list[Path]) -> dict[str, tuple[int, int, int]]:
    """UTKFace labels (age, gender, race) from the file names that parse."""
    from maskmtl_cli.data.labels import parse_utkface_name

    labels = {}
    for path in files:
        parsed = parse_utkface_name(path.name)
        if parsed.status == "ok":
            labels[path.name] = (int(parsed.age), parsed.gender, parsed.race)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masked", type=Path,
                        help="Output folder of `maskmtl mask` on utkface200_part1: canvases.")
    parser.add_argument("--photos", type=Path, action="append", default=[],
                        help="A folder of ordinary photos (e.g. ../shared/data/realphotos/bare): "
                             "faces per photo, parts of faces, time by size. Repeatable.")
    parser.add_argument("--portraits", type=Path,
                        help="A folder of face crops: one-face portraits of 200-4,000 px.")
    parser.add_argument("--old-tree", type=Path,
                        help="An older checkout whose RetinaFace is measured in the same run "
                             "(photos and portraits modes).")
    parser.add_argument("--annotate", type=Path, help="Photos mode: write an annotated sample "
                        "and contact sheets here (outside the repository).")
    parser.add_argument("--sample", type=int, default=100, help="Photos in that sample.")
    parser.add_argument("--min-face", type=int, default=20)
    parser.add_argument("--step", type=int, default=1, help="Every N-th crop or photo only.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detectors", default="retinaface,mtcnn")
    parser.add_argument("--model", type=Path, help="Also compare the alignment border modes.")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    from detection_photos import run_photos, run_portraits

    for index, folder in enumerate(args.photos):
        annotate = args.annotate / folder.name if args.annotate else None
        run_photos(folder, args.old_tree, args.min_face, annotate, args.sample, args.step)
    if args.portraits:
        run_portraits(args.portraits, args.old_tree, args.min_face, args.step)
    if args.masked:
        run_canvases(args)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def run_canvases(args: argparse.Namespace) -> None:
    """Recall and false detections on masked canvases, per detector."""
    files = sorted(p for p in args.masked.iterdir() if p.suffix.lower() == ".jpg")
    files = files[::args.step]
    print(f"{len(files)} masked crops from {args.masked}; canvases {CANVAS[0]}x{CANVAS[1]}, "
          f"faces {FACE_RANGE[0]}-{FACE_RANGE[1]} px, a third rotated by up to 20 degrees, "
          f"seed {args.seed}")
    results = {}
    for name in [part.strip() for part in args.detectors.split(",") if part.strip()]:
        results[name] = run_detector(name, files, args.seed)
        canvases = results[name]["canvases"]
        per_canvas = 1000 * results[name]["seconds"] / len(canvases)
        print(f"\n{name}: {per_canvas:.1f} ms per canvas")
        report(name, canvases, results[name]["faces"])
    if args.old_tree:
        from detection_photos import old_detector

        result = run_detector("retinaface", files, args.seed, detector=old_detector(args.old_tree))
        print(f"\nretinaface (old tree): "
              f"{1000 * result['seconds'] / len(result['canvases']):.1f} ms per canvas")
        report("retinaface-old", result["canvases"], result["faces"])
    if args.model:
        score_borders(args.model, files, args.seed, read_labels(files))


if __name__ == "__main__":
    main()
