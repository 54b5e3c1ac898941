"""Procedural fabric textures: seamless tiles drawn by maskmtl's own code.

Each texture is a square tile that repeats seamlessly. It is drawn once per variant as "colour
slot" weights (rows, columns, slots) that sum to 1 per pixel, area-averaged down to the size a
face needs and cached; a mask then only paints its colours into the slots. Tiles are mapped in
the mask's surface (u, v) coordinates, so patterns bend with the face and fold into pleats.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from maskmtl_cli.masking.palette import (
    PALETTE,
    PALETTE_LUMINANCE,
    contrasting,
    luminance,
    mix,
    to_unit,
)

TEXTURE_NAMES: tuple[str, ...] = ("plain", "weave", "check", "stripes", "dots", "floral",
                                  "camouflage")
#: Width of one tile in canonical units (the jaw is 2 units wide).
PERIOD: dict[str, float] = {"weave": 0.24, "check": 0.3, "stripes": 0.24, "dots": 0.2,
                            "floral": 0.7, "camouflage": 1.5}
VARIANTS = 4
_FLOWER_COLOURS = ("pink", "red", "yellow", "white", "lilac", "orange", "light-blue", "purple")
MASTER = 256  # master tile size in pixels


@dataclass(frozen=True)
class TextureTile:
    """One mask's texture: an RGB tile (0..1) and how it sits on the mask surface."""

    tile: np.ndarray
    period: float  # tile width in canonical units
    angle: float  # radians, rotation of the pattern on the mask
    offset: tuple[float, float]  # tile pixels


def _one_hot(labels: np.ndarray, slots: int) -> np.ndarray:
    return (labels[..., None] == np.arange(slots)).astype(np.float32)


def _ramp(values: np.ndarray) -> np.ndarray:
    """Weights of three slots (dark, mid, light) interpolating a 0..1 value."""
    values = np.clip(values, 0.0, 1.0)
    dark = np.clip(1.0 - 2.0 * values, 0.0, 1.0)
    light = np.clip(2.0 * values - 1.0, 0.0, 1.0)
    return np.dstack([dark, 1.0 - dark - light, light]).astype(np.float32)


def _periodic_noise(rng: np.random.Generator, size: int, blur: float) -> np.ndarray:
    """Smooth noise that wraps around the tile edges, scaled to unit variance."""
    frequency = np.fft.fftfreq(size)
    radius2 = frequency[:, None] ** 2 + frequency[None, :] ** 2
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    noise = np.fft.ifft2(spectrum * np.exp(-2.0 * (np.pi * blur) ** 2 * radius2)).real
    return ((noise - noise.mean()) / max(float(noise.std()), 1e-9)).astype(np.float32)


def _weave(variant: int) -> np.ndarray:
    rng = np.random.default_rng(100 + variant)
    threads = 8
    cell = MASTER // threads
    pos = (np.arange(MASTER) + 0.5) / cell
    across_x = np.cos(np.pi * (np.mod(pos, 1.0) - 0.5))[None, :]  # 1 at a thread's centre
    across_y = np.cos(np.pi * (np.mod(pos, 1.0) - 0.5))[:, None]
    col, row = np.meshgrid(np.floor(pos).astype(int), np.floor(pos).astype(int))
    if variant < 2:  # plain weave
        weft_on_top = (col + row) % 2 == 0
    else:  # 2/2 twill
        weft_on_top = (col - row) % 4 < 2
    weft_tone = 1.0 + 0.08 * rng.standard_normal(threads)[row]
    warp_tone = 1.0 + 0.08 * rng.standard_normal(threads)[col]
    value = np.where(weft_on_top, across_y * weft_tone, across_x * warp_tone) ** 0.6
    return _ramp(0.15 + 0.75 * value)


def _check(variant: int) -> np.ndarray:
    pos = (np.arange(MASTER) + 0.5) / MASTER
    width = (0.5, 0.5, 0.16, 0.3)[variant]
    stripe = (np.mod(pos * (1, 1, 2, 1)[variant], 1.0) < width).astype(np.float32)
    h, v = stripe[:, None], stripe[None, :]
    if variant == 3:  # tartan-like: a thin line through each band
        thin = (np.abs(np.mod(pos, 1.0) - 0.65) < 0.02).astype(np.float32)
        h, v = np.maximum(h, thin[:, None]), np.maximum(v, thin[None, :])
    return np.dstack([(1 - h) * (1 - v), h * (1 - v) + v * (1 - h), h * v]).astype(np.float32)


def _stripes(variant: int) -> np.ndarray:
    pos = (np.arange(MASTER) + 0.5) / MASTER
    pattern = {0: [(0.0, 0.5, 1)], 1: [(0.0, 0.08, 1)], 2: [(0.0, 0.3, 1), (0.5, 0.62, 2)],
               3: [(0.0, 0.25, 1), (0.4, 0.45, 2), (0.6, 0.65, 2)]}[variant]
    labels = np.zeros(MASTER, np.int64)
    for start, end, slot in pattern:
        labels[(pos >= start) & (pos < end)] = slot
    return np.repeat(_one_hot(labels, 3)[:, None, :], MASTER, axis=1)


def _dots(variant: int) -> np.ndarray:
    radius = (0.14, 0.2, 0.09, 0.25)[variant]
    pos = (np.arange(MASTER * 2) + 0.5) / (MASTER * 2)
    x, y = pos[None, :], pos[:, None]
    inside = np.zeros((MASTER * 2, MASTER * 2), bool)
    for cx, cy in ((0.25, 0.25), (0.75, 0.75)):  # staggered rows
        inside |= (np.minimum(np.abs(x - cx), 1 - np.abs(x - cx)) ** 2
                   + np.minimum(np.abs(y - cy), 1 - np.abs(y - cy)) ** 2) < radius**2
    weights = _one_hot(inside.astype(np.int64), 2)
    return cv2.resize(weights, (MASTER, MASTER), interpolation=cv2.INTER_AREA)


def _floral(variant: int) -> np.ndarray:
    """Five-petal flowers in two colours with leaves, scattered with wrap-around."""
    rng = np.random.default_rng(200 + variant)
    big = MASTER * 2
    labels = np.zeros((big, big), np.uint8)  # 0 ground, 1/2 petals, 3 centre, 4 leaf
    flowers = 6
    for i in range(flowers):
        centre = rng.random(2) * big
        size = big * rng.uniform(0.07, 0.11)
        turn = rng.uniform(0, 2 * np.pi)
        for dx in (-big, 0, big):
            for dy in (-big, 0, big):
                c = centre + (dx, dy)
                for leaf in range(2):
                    a = turn + np.pi * (0.3 + leaf)
                    p = c + 1.55 * size * np.array([np.cos(a), np.sin(a)])
                    cv2.ellipse(labels, (int(p[0]), int(p[1])), (int(size * 0.8), int(size * 0.32)),
                                np.degrees(a), 0, 360, 4, -1, cv2.LINE_8)
                for petal in range(5):
                    a = turn + petal * 2 * np.pi / 5
                    p = c + 0.75 * size * np.array([np.cos(a), np.sin(a)])
                    axes = (int(size * 0.72), int(size * 0.42))
                    cv2.ellipse(labels, (int(p[0]), int(p[1])), axes, np.degrees(a), 0, 360,
                                1 + i % 2, -1, cv2.LINE_8)
                cv2.circle(labels, (int(c[0]), int(c[1])), int(size * 0.35), 3, -1, cv2.LINE_8)
    return cv2.resize(_one_hot(labels, 5), (MASTER, MASTER), interpolation=cv2.INTER_AREA)


def _camouflage(variant: int) -> np.ndarray:
    """Woodland-style blobs: three thresholded layers of wrapped smooth noise."""
    rng = np.random.default_rng(300 + variant)
    labels = np.zeros((MASTER, MASTER), np.uint8)
    for slot, (blur, threshold) in enumerate(((17, 0.1), (13, 0.45), (8, 1.0)), start=1):
        field = _periodic_noise(rng, MASTER, blur) + 0.35 * _periodic_noise(rng, MASTER, blur / 3)
        labels[field > threshold] = slot
    return _one_hot(labels, 4)


_MASTERS = {"weave": _weave, "check": _check, "stripes": _stripes, "dots": _dots,
            "floral": _floral, "camouflage": _camouflage}


@lru_cache(maxsize=None)
def _master(name: str, variant: int) -> np.ndarray:
    return _MASTERS[name](variant)


@lru_cache(maxsize=256)
def pattern_weights(name: str, variant: int, size: int) -> np.ndarray:
    """Slot weights (size, size, slots) of a texture variant, area-averaged from the master."""
    master = _master(name, variant)
    if size == MASTER:
        weights = master.copy()
    else:
        interpolation = cv2.INTER_AREA if size < MASTER else cv2.INTER_LINEAR
        weights = cv2.resize(master, (size, size), interpolation=interpolation)
    weights.flags.writeable = False  # cached and shared by every call
    return weights


def _slot_colours(name: str, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colours for the texture's slots; slot 0 is always (a shade of) the base colour."""
    if name == "weave":
        return np.stack([base * 0.55, base, mix(base, np.ones(3), 0.18) * 1.05])
    if name == "check":
        second = contrasting(base, rng)
        return np.stack([base, mix(base, second, 0.5), second])
    if name == "stripes":
        return np.stack([base, contrasting(base, rng), contrasting(base, rng)])
    if name == "dots":
        return np.stack([base, contrasting(base, rng)])
    if name == "floral":
        brightness = luminance(base)
        brights = [n for n in _FLOWER_COLOURS if abs(PALETTE_LUMINANCE[n] - brightness) > 0.12]
        brights = brights or ["white", "black"]
        chosen = [PALETTE[brights[int(rng.integers(len(brights)))]] for _ in range(2)]
        centre = PALETTE["yellow"] if rng.random() < 0.6 else PALETTE["white"]
        leaf = mix(to_unit(PALETTE["green"]), base, 0.25)
        return np.stack([base, to_unit(chosen[0]), to_unit(chosen[1]), to_unit(centre), leaf])
    if name == "camouflage":
        if rng.random() < 0.5:  # woodland
            woodland = [to_unit(rgb) for rgb in ((78, 92, 52), (96, 72, 48), (34, 34, 28))]
            return np.stack([base, *woodland])
        return np.stack([base, mix(base, np.zeros(3), 0.35), mix(base, np.ones(3), 0.35),
                         mix(base, np.zeros(3), 0.7)])
    raise ValueError(f"unknown texture {name!r}")


def make_texture(name: str, base: np.ndarray, rng: np.random.Generator,
                 pixels_per_unit: float) -> TextureTile:
    """A coloured tile of texture ``name`` sized for a mask drawn at ``pixels_per_unit``.

    Args:
        name: one of TEXTURE_NAMES except "plain".
        base: base colour, 0..1 RGB.
        rng: source of the variant, colours, scale, angle and offset.
        pixels_per_unit: rendering scale (pixels per canonical unit).
    """
    variant = int(rng.integers(VARIANTS))
    scale = 0.85 + 0.35 * rng.random()
    if name == "stripes":
        angle = (0.0, 0.0, 90.0, 45.0, -45.0)[int(rng.integers(5))]
    elif name == "check":
        angle = (0.0, 0.0, 0.0, 45.0)[int(rng.integers(4))]
    else:
        angle = 20.0 * rng.random() - 10.0
    period = PERIOD[name] * scale * (1.6 if name == "check" and variant == 2 else 1.0)
    wanted = period * pixels_per_unit
    size = int(np.clip(2 ** np.round(np.log2(max(wanted, 1.0))), 8, MASTER * 2))
    weights = pattern_weights(name, variant, size)
    colours = np.clip(_slot_colours(name, np.asarray(base, np.float32), rng), 0.0, 1.0)
    tile = (weights.reshape(-1, weights.shape[2]) @ colours.astype(np.float32))
    offset = (size * rng.random(), size * rng.random())
    return TextureTile(tile.reshape(size, size, 3), period, np.radians(angle), offset)
