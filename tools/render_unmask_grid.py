"""Render docs/unmask_astronaut.png: the astronaut masked by every template, unmasked.

Only the public-domain astronaut portrait goes into the picture (UTKFace images and anything
made from them stay out of the repository; `maskmtl eval --reconstruction` writes their grid to
its output folder). Each row: the photo masked by `maskmtl mask --mask-type T --save-masks`,
the mask the unmasking model found (red), its reconstruction, OpenCV's Telea inpainting given
the exact mask, and the bare photo; aligned face crops as `unmask` sees them, enlarged.

Usage (repository root):

    python tools/render_unmask_grid.py [--model runs/unmask] [--out docs/unmask_astronaut.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "assets" / "samples" / "astronaut.jpg"
TEMPLATES = ("surgical", "n95", "kn95", "cloth", "valved", "duckbill")


def masked_versions(folder: Path) -> dict[str, tuple[Path, Path]]:
    """(masked photo, exact mask PNG) per template, made by the real `maskmtl mask`."""
    photos = folder / "bare"
    photos.mkdir(parents=True)
    (photos / "astronaut.png").write_bytes(_png(ASTRONAUT))
    made = {}
    for index, template in enumerate(TEMPLATES):
        out = folder / template
        subprocess.run([sys.executable, "-m", "maskmtl_cli", "mask", str(photos), str(out),
                        "--mask-type", template, "--seed", str(index), "--save-masks",
                        "--workers", "1"], check=True, capture_output=True)
        made[template] = (out / "astronaut.png", out / "_masks" / "astronaut.png.png")
    return made


def _png(path: Path) -> bytes:
    import cv2

    return cv2.imencode(".png", cv2.imread(str(path)))[1].tobytes()


def main() -> None:
    import cv2

    from maskmtl_cli.faces.alignment import align_face, alignment_matrix, to_model_input
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.prediction.crops import select_faces
    from maskmtl_cli.prediction.inputs import read_image
    from maskmtl_cli.unmasking.grid import overlay_mask
    from maskmtl_cli.unmasking.metrics import telea
    from maskmtl_cli.unmasking.model import UnmaskModel, resolve_unmask_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "unmask_astronaut.png")
    args = parser.parse_args()
    model = UnmaskModel(resolve_unmask_model(args.model))
    size, scale = model.image_size, 3
    bare = read_image(ASTRONAUT)
    face = select_faces(get_detector("retinaface").detect(bare, 20), "largest")[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for template, (masked_path, mask_path) in masked_versions(Path(folder)).items():
            masked = read_image(masked_path)
            exact = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            # everything aligned by the bare photo's face, so the columns line up
            crop = to_model_input(align_face(masked, face), size, "rgb")
            matrix = alignment_matrix(face, size)
            hole = cv2.warpAffine(exact, matrix, (size, size), flags=cv2.INTER_NEAREST)
            out = model.run(crop[None])
            found = overlay_mask(crop, out["used_mask"][0, :, :, 0] >= 0.5)
            ours = np.clip(np.rint(out["face"][0]), 0, 255).astype(np.uint8)
            floor = telea(crop, hole)
            original = to_model_input(align_face(bare, face), size, "rgb")
            cells = [cv2.resize(image, (size * scale, size * scale),
                                interpolation=cv2.INTER_NEAREST)
                     for image in (crop, found, ours, floor, original)]
            gap = np.full((size * scale, 6, 3), 255, np.uint8)
            row = np.concatenate([part for cell in cells for part in (cell, gap)][:-1], axis=1)
            rows.append(row)
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    for column, title in enumerate(("masked", "mask found", "maskmtl unmask", "Telea",
                                    "bare photo")):
        cv2.putText(header, title, (column * (size * scale + 6) + 4, 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    spacer = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([header] + [part for row in rows for part in (row, spacer)][:-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}), model {model.path}")


if __name__ == "__main__":
    main()
