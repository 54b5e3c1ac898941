"""Mild photometric jitter of training faces: colour, contrast, gray, sepia, blur, noise, JPEG.

Numpy and OpenCV on uint8 crops, one image at a time, every draw from the caller's seeded
generator. ``strength`` scales every probability and range (1: the shipped recipe's "mild"
level, 0: off), so photos from other cameras, scanners and eras look less foreign to the model.
"""

from __future__ import annotations

import numpy as np

#: Sepia toning matrix (RGB in, RGB out).
_SEPIA = np.array([[0.393, 0.769, 0.189],
                   [0.349, 0.686, 0.168],
                   [0.272, 0.534, 0.131]], dtype=np.float32)
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: At strength 1: probability of each change and its range.
P_GRAY, P_SEPIA, P_BLUR, P_NOISE, P_JPEG = 0.10, 0.05, 0.15, 0.15, 0.25
CONTRAST, SATURATION, CHANNEL_GAIN = 0.25, 0.3, 0.08
BLUR_SIGMA, NOISE_SIGMA, JPEG_QUALITY = (0.4, 1.1), (2.0, 7.0), (25, 90)


def jitter(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """``image`` (uint8 (size, size, C), RGB or gray) with random photometric changes."""
    import cv2

    if strength <= 0:
        return image
    out = image.astype(np.float32)
    rgb = out.shape[2] == 3
    mean = out.mean()
    out = (out - mean) * (1 + rng.uniform(-CONTRAST, CONTRAST) * strength) + mean
    if rgb:
        gray = out @ _GRAY
        out = gray[..., None] + (out - gray[..., None]) * (
            1 + rng.uniform(-SATURATION, SATURATION) * strength)
        out = out * (1 + rng.uniform(-CHANNEL_GAIN, CHANNEL_GAIN, size=3) * strength)
        roll = rng.random(2)
        if roll[0] < P_GRAY * strength:
            out = np.repeat((out @ _GRAY)[..., None], 3, axis=2)
        elif roll[1] < P_SEPIA * strength:
            out = out @ _SEPIA.T
    draws = rng.random(3)
    if draws[0] < P_BLUR * strength:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*BLUR_SIGMA)).reshape(out.shape)
    if draws[1] < P_NOISE * strength:
        out = out + rng.normal(0, rng.uniform(*NOISE_SIGMA), size=out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if draws[2] < P_JPEG * strength:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        flag = cv2.IMREAD_COLOR if rgb else cv2.IMREAD_GRAYSCALE
        ok, data = cv2.imencode(".jpg", out[..., ::-1] if rgb else out,
                                [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            decoded = cv2.imdecode(data, flag)
            out = (decoded[..., ::-1] if rgb else decoded[..., None]).reshape(out.shape)
    return np.ascontiguousarray(out)
