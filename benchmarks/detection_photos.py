"""Face detection on ordinary photos and on one-face portraits of every size (issue 20).

Used by ``bench_detection.py --photos DIR`` and ``--portraits DIR``; every figure is printed for
the current detector and, with ``--old-tree``, for the detector of an older checkout in the same
run (``git worktree add /tmp/maskmtl-old <commit>``).

- photos: faces per photo (distribution), photos without a face, photos holding a box that lies
  mostly inside another face box (a part of a face reported as a face), and time per photo by
  photo size; ``--annotate DIR`` writes annotated copies and contact sheets to look at.
- portraits: each face crop of ``DIR`` (e.g. UTKFace's 200x200 crops) with an edge-repeated
  border (the face fills half the photo) scaled to 200 ... 4,000 px: photos with exactly one
  face.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

#: Longest-side bands for the time table (pixels).
SIZE_BANDS = ((0, 400), (400, 800), (800, 1600), (1600, 10**6))
#: Portrait sizes (longest side, pixels).
PORTRAIT_SIDES = (200, 400, 800, 1600, 3200, 4000)
#: A box with this share of its area inside a larger box counts as "inside another face box".
INSIDE_SHARE = 0.6


def old_detector(tree: Path, threshold: float | None = None):
    """RetinaFace as the checkout at ``tree`` built it (its detection module, loaded by path)."""
    path = tree / "maskmtl_cli" / "faces" / "detection.py"
    spec = importlib.util.spec_from_file_location("old_detection", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_detection"] = module
    spec.loader.exec_module(module)
    return module.RetinaFaceDetector(module.RETINAFACE_THRESHOLD if threshold is None
                                     else threshold)


def detectors(old_tree: Path | None) -> dict[str, object]:
    """The current RetinaFace detector and, with ``old_tree``, the older one."""
    from maskmtl_cli.faces.detection import get_detector

    found = {"current": get_detector("retinaface")}
    if old_tree is not None:
        found["old"] = old_detector(old_tree)
    return found


def inside_pairs(faces) -> int:
    """How many boxes lie mostly inside a larger box of the same photo."""
    count = 0
    for small in faces:
        sx, sy, sw, sh = small.box
        for large in faces:
            lx, ly, lw, lh = large.box
            if large is small or lw * lh <= sw * sh:
                continue
            width = min(sx + sw, lx + lw) - max(sx, lx)
            height = min(sy + sh, ly + lh) - max(sy, ly)
            if width > 0 and height > 0 and width * height >= INSIDE_SHARE * sw * sh:
                count += 1
                break
    return count


def photo_files(folder: Path) -> list[Path]:
    """The photos of ``folder`` and its sub-folders, sorted."""
    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)


def run_photos(folder: Path, old_tree: Path | None, min_face: int, annotate: Path | None,
               sample: int, step: int = 1) -> None:
    """Faces per photo, photos without a face, parts of faces and time, per detector."""
    from maskmtl_cli.prediction.inputs import read_image

    files = photo_files(folder)[::step]
    images = [read_image(path) for path in files]
    print(f"\nPhotos: {len(files)} from {folder} (min_face {min_face})")
    for name, detector in detectors(old_tree).items():
        detector.detect(images[0], min_face)  # warm up
        counts, inside, seconds = [], 0, []
        results = []
        for image in images:
            start = time.perf_counter()
            faces = detector.detect(image, min_face)
            seconds.append(time.perf_counter() - start)
            counts.append(len(faces))
            inside += inside_pairs(faces) > 0
            results.append(faces)
        counts = np.array(counts)
        histogram = ", ".join(f"{k}: {(counts == k).sum()}" for k in range(4))
        print(f"  {name:<8} faces per photo {counts.mean():.3f} ({histogram}, 4+: "
              f"{(counts >= 4).sum()}); a face in {(counts > 0).mean():.2%}; more than one in "
              f"{(counts > 1).mean():.1%}; photos with a box mostly inside another: {inside}")
        sides = np.array([max(image.shape[:2]) for image in images])
        times = np.array(seconds) * 1000
        bands = []
        for lo, hi in SIZE_BANDS:
            inside = (sides >= lo) & (sides < hi)
            if inside.any():
                bands.append(f"{lo}-{hi if hi < 10**6 else 'max'} px: "
                             f"{np.median(times[inside]):.1f} ms (n={inside.sum()})")
        print(f"           median time by longest side: {'; '.join(bands)}")
        missing = [path.name for path, count in zip(files, counts) if count == 0]
        if missing:
            print(f"           no face: {', '.join(missing)}")
        if annotate is not None and name == "current":
            write_sample(files, images, results, annotate, sample)


def write_sample(files, images, results, out: Path, sample: int) -> None:
    """Annotated copies of every ``len(files) // sample``-th photo and contact sheets of them."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    chosen = list(range(0, len(files), max(1, len(files) // sample)))[:sample]
    tiles = []
    for index in chosen:
        image = cv2.cvtColor(images[index], cv2.COLOR_RGB2BGR)
        scale = 320 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for face in results[index]:
            x, y, w, h = (round(v * scale) for v in face.box)
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 255, 0), 2)
            cv2.putText(image, f"{face.score:.2f}", (x, max(10, y - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
        tile = np.zeros((340, 320, 3), np.uint8)
        tile[:image.shape[0], :image.shape[1]] = image
        cv2.putText(tile, f"{files[index].parent.name}/{files[index].name} "
                    f"({len(results[index])})", (4, 334), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1)
        tiles.append(tile)
    for sheet in range(0, len(tiles), 20):
        group = tiles[sheet:sheet + 20]
        group += [np.zeros_like(tiles[0])] * (20 - len(group))
        rows = [np.hstack(group[row:row + 5]) for row in range(0, 20, 5)]
        cv2.imwrite(str(out / f"sheet_{sheet // 20:02d}.jpg"), np.vstack(rows))
    (out / "sample.txt").write_text("\n".join(f"{files[i].parent.name}/{files[i].name}\t"
                                              f"{len(results[i])}" for i in chosen) + "\n")
    print(f"           annotated sample of {len(chosen)} photos: {out}/sheet_*.jpg")


def portrait(crop: np.ndarray, side: int) -> np.ndarray:
    """``crop`` with a border of half its size on every side (its edge pixels repeated),
    scaled to ``side``. A mirrored border would not do: mirrored at its edge, half a face and
    its mirror image make a whole (symmetric) face, which a detector rightly reports."""
    import cv2

    pad = crop.shape[0] // 2
    framed = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side < framed.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(framed, (side, side), interpolation=interpolation)


def run_portraits(folder: Path, old_tree: Path | None, min_face: int, step: int) -> None:
    """Photos with exactly one face, per portrait size and detector."""
    from maskmtl_cli.prediction.inputs import read_image

    files = photo_files(folder)[::step]
    crops = [read_image(path) for path in files]
    print(f"\nOne-face portraits: {len(files)} crops from {folder}, edge-repeated border, "
          "scaled")
    for name, detector in detectors(old_tree).items():
        cells = []
        for side in PORTRAIT_SIDES:
            counts, start = [], time.perf_counter()
            for crop in crops:
                counts.append(len(detector.detect(portrait(crop, side), min_face)))
            per_photo = 1000 * (time.perf_counter() - start) / len(crops)
            counts = np.array(counts)
            cells.append(f"{side} px: one face {(counts == 1).mean():.1%}, none "
                         f"{(counts == 0).sum()}, mean {counts.mean():.2f}, {per_photo:.0f} ms")
        print(f"  {name:<8} " + "\n           ".join(cells))
