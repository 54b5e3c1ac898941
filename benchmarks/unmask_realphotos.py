"""`maskmtl unmask` on ordinary photos: is a mask found where there is one, and only there?

Runs the real `unmask` pipeline (RetinaFace, alignment, the model's own mask, blending) on every
``--step``-th photo of ``realphotos/bare`` (no masks: every face should be left alone) and
``realphotos/sticker_masked`` (a pasted surgical mask: every masked face should be unmasked), and
prints per folder: photos, faces, the share of faces unmasked and left alone, and the mean share
of the aligned crop taken for mask. The side-by-side outputs go to ``--out`` (outside the
repository: the photos are for research use only) to be looked at.

Usage (repository root):

    python benchmarks/unmask_realphotos.py --realphotos ../shared/data/realphotos \\
        [--model runs/unmask] [--model other.onnx] [--step 4] [--out /tmp/unmask_realphotos]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def run(folder: Path, model: Path | None, step: int, out: Path) -> dict:
    from maskmtl_cli.data.files import IMAGE_SUFFIXES
    from maskmtl_cli.unmasking.config import UnmaskConfig
    from maskmtl_cli.unmasking.pipeline import run_unmask

    photos = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    photos = photos[::step]
    started = time.perf_counter()
    result = run_unmask(UnmaskConfig(inputs=tuple(photos), out_dir=out, model=model,
                                     side_by_side=True, overwrite=True))
    seconds = time.perf_counter() - started
    faces = result.faces
    unmasked = [face for face in faces if face["status"] == "unmasked"]
    return {"photos": len(result.photos), "faces": len(faces),
            "unmasked": len(unmasked) / max(len(faces), 1),
            "left alone": 1 - len(unmasked) / max(len(faces), 1),
            "photos with one unmasked": sum(photo["status"] == "unmasked"
                                            for photo in result.photos) / len(result.photos),
            "mask share": (sum(face["mask_fraction"] for face in faces) / max(len(faces), 1)),
            "s/photo": seconds / len(result.photos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realphotos", type=Path, required=True)
    parser.add_argument("--model", type=Path, action="append", default=None,
                        help="Unmasking model(s) to compare (default: the shipped one).")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/unmask_realphotos"))
    args = parser.parse_args()
    models = args.model or [None]
    print(f"{'model':40s} {'folder':15s} {'photos':>6s} {'faces':>5s} {'unmasked':>8s} "
          f"{'alone':>6s} {'photo hit':>9s} {'mask':>5s} {'s/photo':>7s}")
    for index, model in enumerate(models):
        for name in ("bare", "sticker_masked"):
            row = run(args.realphotos / name, model, args.step,
                      args.out / f"model{index}" / name)
            print(f"{str(model or 'shipped'):40.40s} {name:15s} {row['photos']:6d} "
                  f"{row['faces']:5d} {row['unmasked']:8.3f} {row['left alone']:6.3f} "
                  f"{row['photos with one unmasked']:9.3f} {row['mask share']:5.3f} "
                  f"{row['s/photo']:7.3f}", flush=True)
    print(f"side-by-side outputs: {args.out}")


if __name__ == "__main__":
    main()
