"""Random lower-face occluders for aligned face crops: numpy only, seeded by the caller.

Each occluder covers the face from a top edge between just under the eyes and the nose tip
down to the chin, in UTKFace's aligned geometry (``faces.alignment.UTKFACE_GEOMETRY``: eyes at
30% of the crop's height, mouth at 71%). Its outline (straight, tilted or curved top edge;
square or rounded lower corners; width), fill (a flat colour, stripes, checks, noise, or a
patch of another photo of the batch), shading (a linear light gradient) and edge (hard, or
softened over 1-2 pixels) are drawn at random, so that no single look of a mask can be learned.
"""

from __future__ import annotations

import numpy as np

from maskmtl_cli.faces.alignment import UTKFACE_GEOMETRY

_EYE_Y = UTKFACE_GEOMETRY["dlib68"]["eye_left"][1]
_MOUTH_Y = UTKFACE_GEOMETRY["dlib68"]["mouth"][1]
#: Top edge of an occluder, as a fraction of the crop's height: from just under the eyes
#: (a fifth of the way from the eyes to the mouth) to the nose tip (about 60% of the way).
TOP_RANGE = (_EYE_Y + 0.2 * (_MOUTH_Y - _EYE_Y), _EYE_Y + 0.6 * (_MOUTH_Y - _EYE_Y))
FILLS = ("flat", "stripes", "checks", "noise", "photo")


def occluder_alpha(size: int, rng: np.random.Generator) -> np.ndarray:
    """Coverage (size, size) float32 in 0..1 of one random lower-face occluder."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    top = rng.uniform(*TOP_RANGE)
    tilt = rng.uniform(-0.08, 0.08)
    curve = rng.uniform(-0.25, 0.35) * (rng.random() < 0.6)
    left, right = rng.uniform(0.0, 0.18), rng.uniform(0.82, 1.0)
    centre = 0.5 * (left + right)
    edge = top + tilt * (x - centre) + curve * (x - centre) ** 2
    inside = (y >= edge) & (x >= left) & (x <= right)
    if rng.random() < 0.5:  # rounded lower corners: an ellipse through the sides and chin
        bottom = rng.uniform(0.92, 1.1)
        half = 0.5 * (right - left)
        depth = max(bottom - top, 1e-3)
        ellipse = ((x - centre) / half) ** 2 + ((y - top) / depth) ** 2 <= 1.0
        inside &= (y < top + depth / 2) | ellipse
    alpha = inside.astype(np.float32)
    if rng.random() < 0.5:  # a soft edge of 1-2 pixels
        alpha = _box_blur(alpha, int(rng.integers(1, 3)))
    return alpha


def occluder_fill(size: int, channels: int, rng: np.random.Generator,
                  donor: np.ndarray | None) -> np.ndarray:
    """What an occluder looks like (size, size, channels) float32 0..255, before shading."""
    kind = FILLS[int(rng.integers(len(FILLS) - (donor is None)))]
    colour = rng.uniform(0, 255, size=channels).astype(np.float32)
    if kind == "flat":
        return np.broadcast_to(colour, (size, size, channels)).copy()
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind in ("stripes", "checks"):
        other = rng.uniform(0, 255, size=channels).astype(np.float32)
        period = rng.uniform(2.0, size / 5)
        angle = rng.uniform(0, np.pi)
        u = x * np.cos(angle) + y * np.sin(angle)
        band = np.floor(u / period).astype(int) % 2
        if kind == "checks":
            band = (band + np.floor((-x * np.sin(angle) + y * np.cos(angle)) / period)
                    .astype(int)) % 2
        return np.where(band[..., None] == 1, colour, other)
    if kind == "noise":
        grain = rng.normal(0, rng.uniform(10, 40), size=(size, size, 1)).astype(np.float32)
        return np.clip(colour + grain, 0, 255)
    shift = rng.integers(-size // 4, size // 4 + 1, size=2)
    return np.roll(donor.astype(np.float32), tuple(int(s) for s in shift), axis=(0, 1))


def occlude(image: np.ndarray, rng: np.random.Generator,
            donor: np.ndarray | None = None) -> np.ndarray:
    """``image`` (uint8 (size, size, C)) under one random lower-face occluder.

    Args:
        image: An aligned face crop.
        rng: The random stream (the caller's: seeded per batch).
        donor: Another photo of the same size, for photo-patch fills; None leaves them out.
    """
    size, channels = image.shape[0], image.shape[2]
    alpha = occluder_alpha(size, rng)[..., None]
    fill = occluder_fill(size, channels, rng, donor)
    y = np.linspace(0.0, 1.0, size, dtype=np.float32)
    direction = rng.uniform(-1, 1, size=2)
    light = 1.0 + rng.uniform(0, 0.35) * (direction[0] * (y[:, None] - 0.5)
                                          + direction[1] * (y[None, :] - 0.5))
    fill = fill * light[..., None]
    out = image.astype(np.float32) * (1.0 - alpha) + fill * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def _box_blur(alpha: np.ndarray, radius: int) -> np.ndarray:
    """A (2 radius + 1)-wide box blur, edges repeated."""
    padded = np.pad(alpha, radius, mode="edge")
    width = 2 * radius + 1
    rows = sum(padded[i:i + alpha.shape[0], :] for i in range(width)) / width
    return sum(rows[:, i:i + alpha.shape[1]] for i in range(width)) / width
