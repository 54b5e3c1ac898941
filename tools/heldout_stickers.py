"""A held-out way of covering the lower face, for validation only (issue 21).

Training never sees it: ``maskmtl mask`` renders shaded, warped mask templates and ``train``
adds random occluders filled with flat colours, stripes, checks, noise or patches of other
faces of the batch. These stickers are flat crops of *photographed textures* (brick, grass,
gravel tinted with a random colour; coffee, a cat's fur, a rocket, stained tissue, a retina, a
deep-sky field: scikit-image's sample photographs) cut to a hexagon with hard edges, unshaded,
placed from the eye and mouth positions every UTKFace aligned crop shares
(``faces.alignment.UTKFACE_GEOMETRY``): a peak over the nose half-way between eyes and mouth,
shoulders beside the nostrils, sides down to the jaw and a point under the chin.

    python -m tools.heldout_stickers MANIFEST OUT_DIR [--split val] [--seed 0]

reads a manifest of *bare* aligned crops (e.g. ``maskmtl split utkface64 --strategy random
--seed 0``), writes each chosen row's photo with a sticker to ``OUT_DIR/images/`` (same size
and name) and ``OUT_DIR/manifest.csv``: the same rows, labels and split column, paths changed,
so ``maskmtl eval MODEL -m OUT_DIR/manifest.csv --split val`` scores the very faces of the
other manifests. The output is derived from the data set: keep it out of the repository.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

_EYE_Y, _MOUTH_Y = 0.3009, 0.7083  # dlib68 means in UTKFace crops (faces.alignment)


def sticker_polygon(size: int, rng: np.random.Generator) -> np.ndarray:
    """Vertices (x, y) in pixels of one sticker, from the shared crop geometry, with a little
    seeded variation (+-2% of the crop) per vertex."""
    from maskmtl_cli.faces.alignment import UTKFACE_GEOMETRY

    geometry = UTKFACE_GEOMETRY["dlib68"]
    eye_y = 0.5 * (geometry["eye_left"][1] + geometry["eye_right"][1])
    mouth_y = geometry["mouth"][1]
    nose = eye_y + 0.45 * (mouth_y - eye_y)
    points = np.array([
        (0.50, nose - 0.03), (0.80, nose + 0.04), (0.93, 0.74), (0.72, 0.93),
        (0.50, 1.00), (0.28, 0.93), (0.07, 0.74), (0.20, nose + 0.04),
    ])
    points = points + rng.uniform(-0.02, 0.02, size=points.shape)
    return np.round(points * size).astype(np.int32)


def texture_bank() -> list[np.ndarray]:
    """The photographed textures (RGB uint8): scikit-image's bundled sample photographs."""
    import skimage.data as samples

    bank = [np.repeat(getattr(samples, name)()[..., None], 3, axis=2)
            for name in ("brick", "grass", "gravel")]
    bank += [getattr(samples, name)()[..., :3] for name in
             ("coffee", "chelsea", "rocket", "immunohistochemistry", "retina",
              "hubble_deep_field")]
    return bank


def texture_patch(bank: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a random texture at ``size`` x ``size`` (gray ones tinted)."""
    import cv2

    index = int(rng.integers(len(bank)))
    texture = bank[index]
    side = int(rng.integers(min(texture.shape[:2]) // 6, min(texture.shape[:2]) // 2))
    top = int(rng.integers(texture.shape[0] - side))
    left = int(rng.integers(texture.shape[1] - side))
    patch = cv2.resize(texture[top:top + side, left:left + side], (size, size),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    if index < 3:  # brick, grass, gravel: gray photographs, tinted
        patch = patch * rng.uniform(0.4, 1.2, size=3)
    return np.clip(patch, 0, 255).astype(np.uint8)


def apply_sticker(image: np.ndarray, bank: list[np.ndarray],
                  rng: np.random.Generator) -> np.ndarray:
    """``image`` (RGB uint8, an aligned crop) with one hard-edged flat sticker."""
    import cv2

    size = image.shape[0]
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [sticker_polygon(size, rng)], 1)
    patch = texture_patch(bank, size, rng)
    return np.where(inside[..., None] == 1, patch, image)


def write_sticker_set(manifest: Path, out_dir: Path, splits: tuple[str, ...], seed: int) -> int:
    """Write the sticker copies of ``splits`` and their manifest; returns the rows written."""
    import cv2

    from maskmtl_cli.data.manifest import read_manifest, write_manifest

    table = read_manifest(manifest)
    if splits:
        table = table[table["split"].isin(splits)].copy()
    bank = texture_bank()
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    paths = []
    for path, filename in zip(table["path"], table["filename"]):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        rng = np.random.default_rng([seed, zlib.crc32(str(filename).encode())])
        covered = apply_sticker(bgr[..., ::-1], bank, rng)[..., ::-1]
        target = images / Path(str(filename)).name
        cv2.imwrite(str(target), np.ascontiguousarray(covered), [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(str(target.resolve()))
    table["path"] = paths
    write_manifest(table, out_dir / "manifest.csv", overwrite=True)
    return len(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="Manifest of bare aligned crops")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", action="append", default=None,
                        help="Split(s) to cover (repeatable; default: val)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    count = write_sticker_set(args.manifest, args.out_dir, tuple(args.split or ["val"]),
                              args.seed)
    print(f"{count} sticker-covered faces in {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
