"""How much predictions move when a mask is pasted on the same photo (issue 21).

``../shared/data/realphotos`` holds web photos bare (``bare/N.jpg``) and with a flat surgical-
mask picture pasted on by another project's tool (``sticker_masked/N-with-mask.jpg``); N.jpg and
N-with-mask.jpg are often, not always, the same photo. Both folders go through the full
``predict`` path (RetinaFace, alignment, the model; ``--faces largest``, ``--min-face``), pairs
are matched by N, and a pair counts as the *same photo* when the two images have the same aspect
ratio (within 2%) and the two face boxes, as fractions of their image, agree within 4% of the
image in centre and size. On those pairs it prints: how often gender and ethnicity agree, the
mean and median absolute age change, the share of faces called female in each folder, and with
a model that has the ``masked`` output the mean probability of a mask in each.

    python benchmarks/realphotos_agreement.py [--model M] [--data DIR] [--min-face 40] [--json]

No labels exist for these photos: agreement is a consistency check, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "realphotos"


def _largest_faces(folder: Path, model: Path | None, min_face: int) -> dict[str, dict]:
    """File stem -> the record (dict) of its largest face, and the image's size."""
    from PIL import Image, ImageOps

    from maskmtl_cli.prediction.config import PredictConfig
    from maskmtl_cli.prediction.predict import run_predict

    result = run_predict(PredictConfig(inputs=(folder,), model=model, faces="largest",
                                       min_face=min_face))
    found = {}
    for record in result.records:
        data = record.to_dict()
        with Image.open(record.file) as image:
            data["image_size"] = ImageOps.exif_transpose(image).size
        found[Path(record.file).stem] = data
    return found


def _same_photo(bare: dict, masked: dict) -> bool:
    (bw, bh), (mw, mh) = bare["image_size"], masked["image_size"]
    if abs(bw / bh - mw / mh) > 0.02 * (bw / bh):
        return False
    def relative(record, width, height):
        x, y, w, h = record["box"]
        return np.array([(x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
    return bool(np.abs(relative(bare, bw, bh) - relative(masked, mw, mh)).max() <= 0.04)


def agreement(model: Path | None, data: Path, min_face: int) -> dict:
    """The figures of the module docstring."""
    bare = _largest_faces(data / "bare", model, min_face)
    masked = {re.sub(r"-with-mask$", "", stem): record
              for stem, record in _largest_faces(data / "sticker_masked", model,
                                                 min_face).items()}
    both = sorted(set(bare) & set(masked))
    same = [n for n in both if _same_photo(bare[n], masked[n])]
    figures = {"bare_faces": len(bare), "masked_faces": len(masked),
               "pairs_by_number": len(both), "same_photo_pairs": len(same)}
    for name, numbers in (("same_photo", same), ("by_number", both)):
        figures[name] = _pair_figures([(bare[n], masked[n]) for n in numbers])
    return figures


def _pair_figures(pairs: list[tuple[dict, dict]]) -> dict:
    """Agreement figures over (bare, masked) record pairs."""
    if not pairs:
        return {}
    figures = {
        "gender_agreement": float(np.mean([b["gender"] == m["gender"] for b, m in pairs])),
        "ethnicity_agreement": float(np.mean([b["ethnicity"] == m["ethnicity"]
                                              for b, m in pairs])),
        "age_abs_change_mean": float(np.mean([abs(b["age"] - m["age"]) for b, m in pairs])),
        "age_abs_change_median": float(np.median([abs(b["age"] - m["age"]) for b, m in pairs])),
        "p_female_abs_change_mean": float(np.mean([abs(b["p_female"] - m["p_female"])
                                                   for b, m in pairs])),
        "female_share_bare": float(np.mean([b["gender"] == "female" for b, _ in pairs])),
        "female_share_masked": float(np.mean([m["gender"] == "female" for _, m in pairs])),
    }
    if "masked_probabilities" in pairs[0][0]:
        figures["p_masked_mean_bare"] = float(np.mean(
            [b["masked_probabilities"]["yes"] for b, _ in pairs]))
        figures["p_masked_mean_masked"] = float(np.mean(
            [m["masked_probabilities"]["yes"] for _, m in pairs]))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="Model file or run folder (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON")
    args = parser.parse_args(argv)
    if not (args.data / "bare").is_dir() or not (args.data / "sticker_masked").is_dir():
        print(f"No realphotos data at {args.data} (bare/ and sticker_masked/).", file=sys.stderr)
        return 1
    figures = agreement(args.model, args.data, args.min_face)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            if isinstance(value, dict):
                for inner, number in value.items():
                    print(f"{key}.{inner:28s} {number:.4f}")
            else:
                print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
