"""How far the aligned crop of a masked face moves against the same face bare (issue 20, item 4).

Pairs of one photo bare and masked: ``--realphotos DIR`` takes ``DIR/bare/N.jpg`` and
``DIR/sticker_masked/N-with-mask.jpg`` where both files have the same size (the same photo with
a mask picture pasted on); as a control, each bare photo against itself re-encoded. (The masked
canvases of bench_detection.py do not serve: their largest face is the blurred background.)

Both versions go through ``predict``'s detection (largest face) and alignment. The masked crop's
framing is compared with the bare one's by mapping the bare photo's eye centres into both crops
(200x200): the shift of their midpoint (pixels), the scale ratio (masked / bare crop scale) and
the roll difference (degrees). A masked crop framed like the bare one has shift 0, ratio 1, roll
0. The model was trained on crops of masked faces aligned from the bare face's landmarks
(``mask`` draws masks on aligned UTKFace crops), so the bare framing is the target.

Usage (repository root):

    python benchmarks/measure_mask_framing.py --realphotos ../shared/data/realphotos
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def framing(bare_face, masked_face) -> tuple[float, float, float]:
    """(shift px, scale ratio, roll degrees) of the masked crop against the bare one."""
    from maskmtl_cli.faces.alignment import alignment_matrix

    bare_m, masked_m = alignment_matrix(bare_face), alignment_matrix(masked_face)
    eyes = np.array([bare_face.keypoints["eye_left"], bare_face.keypoints["eye_right"]])
    in_bare = eyes @ bare_m[:, :2].T + bare_m[:, 2]
    in_masked = eyes @ masked_m[:, :2].T + masked_m[:, 2]
    shift = float(np.hypot(*(in_masked.mean(axis=0) - in_bare.mean(axis=0))))
    ratio = float(np.hypot(*masked_m[:, 0]) / np.hypot(*bare_m[:, 0]))
    roll = float(np.degrees(np.arctan2(masked_m[1, 0], masked_m[0, 0])
                            - np.arctan2(bare_m[1, 0], bare_m[0, 0])))
    return shift, ratio, roll


def largest(image):
    from maskmtl_cli.faces.detection import get_detector

    faces = get_detector("retinaface").detect(image, 20)
    return max(faces, key=lambda face: face.area) if faces else None


def report(label: str, rows: list[tuple[float, float, float]], missing: int) -> None:
    if not rows:
        print(f"{label}: no pair with a face in both versions")
        return
    shift, ratio, roll = (np.array(column) for column in zip(*rows))
    print(f"{label}: {len(rows)} pairs ({missing} without a face in one version)\n"
          f"  eye-midpoint shift (px of 200): median {np.median(shift):.2f}, mean "
          f"{shift.mean():.2f}, 90th pct {np.percentile(shift, 90):.2f}\n"
          f"  scale masked/bare: median {np.median(ratio):.4f}, mean {ratio.mean():.4f}, "
          f"10th-90th pct {np.percentile(ratio, 10):.4f}-{np.percentile(ratio, 90):.4f}\n"
          f"  roll difference (deg): mean {roll.mean():+.2f}, mean |roll| "
          f"{np.abs(roll).mean():.2f}")


def reencoded_pairs(folder: Path):
    """The control: each bare photo against itself re-encoded as JPEG at quality 70 (what
    detection noise alone moves the crop)."""
    import cv2

    from maskmtl_cli.prediction.inputs import read_image

    for path in sorted((folder / "bare").glob("*.jpg")):
        bare = read_image(path)
        _, data = cv2.imencode(".jpg", bare[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
        yield bare, cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]


def real_pairs(folder: Path):
    from maskmtl_cli.prediction.inputs import read_image

    for masked_path in sorted((folder / "sticker_masked").glob("*-with-mask.jpg")):
        bare_path = folder / "bare" / masked_path.name.replace("-with-mask", "")
        if not bare_path.is_file():
            continue
        bare, masked = read_image(bare_path), read_image(masked_path)
        if bare.shape == masked.shape:
            yield bare, masked


def measure(pairs) -> tuple[list, int]:
    rows, missing = [], 0
    for bare, masked in pairs:
        bare_face, masked_face = largest(bare), largest(masked)
        if bare_face is None or masked_face is None:
            missing += 1
            continue
        rows.append(framing(bare_face, masked_face))
    return rows, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realphotos", type=Path)
    args = parser.parse_args()
    if args.realphotos:
        report("realphotos, same photo bare and sticker-masked",
               *measure(real_pairs(args.realphotos)))
        report("control: realphotos/bare against itself re-encoded (JPEG 70)",
               *measure(reencoded_pairs(args.realphotos)))


if __name__ == "__main__":
    main()
