"""Reconstruction quality: PSNR and SSIM over the hidden region and the whole face, and the floor.

PSNR (peak 255) over a region is ``10 log10(255^2 / MSE)`` with the MSE taken over the region's
pixels and the three channels. SSIM is the mean-SSIM of Wang, Bovik, Sheikh and Simoncelli
("Image Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004):
an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, per channel;
the SSIM map is averaged over the region's pixels and the channels. (scikit-image's
``structural_similarity`` with ``gaussian_weights=True, use_sample_covariance=False,
data_range=255`` computes the same map; ``tests/test_unmask_metrics.py`` checks it.)

The floor every learned model must clear is OpenCV's classical inpainting,
``cv2.inpaint(..., cv2.INPAINT_TELEA)`` (Telea, "An Image Inpainting Technique Based on the Fast
Marching Method", JGT 2004), given the same mask.
"""

from __future__ import annotations

import numpy as np

#: Radius (pixels) of the neighbourhood Telea's method fills each pixel from (OpenCV's example).
TELEA_RADIUS = 3
_SSIM_SIGMA, _SSIM_WINDOW = 1.5, 11
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def psnr(reference: np.ndarray, image: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR (dB, peak 255) of ``image`` against ``reference`` over ``region`` (None: all).

    Args:
        reference, image: (H, W, C) arrays in 0..255.
        region: (H, W) or (H, W, 1) bool/0-1 array; the pixels to score.

    Returns:
        The PSNR; ``inf`` for identical pixels, NaN for an empty region.
    """
    error = (np.asarray(reference, np.float64) - np.asarray(image, np.float64)) ** 2
    if region is not None:
        region = np.asarray(region).reshape(error.shape[:2]).astype(bool)
        if not region.any():
            return float("nan")
        error = error[region]
    mse = float(error.mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim_map(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The SSIM map (H, W, C) of two (H, W, C) images in 0..255 (Gaussian window, sigma 1.5)."""
    import cv2

    x = np.asarray(reference, np.float64)
    y = np.asarray(image, np.float64)

    def blur(values):
        out = cv2.GaussianBlur(values, (_SSIM_WINDOW, _SSIM_WINDOW), _SSIM_SIGMA,
                               borderType=cv2.BORDER_REFLECT)
        return out.reshape(values.shape)

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x ** 2
    var_y = blur(y * y) - mean_y ** 2
    covariance = blur(x * y) - mean_x * mean_y
    return (((2 * mean_x * mean_y + _C1) * (2 * covariance + _C2))
            / ((mean_x ** 2 + mean_y ** 2 + _C1) * (var_x + var_y + _C2)))


def ssim(reference: np.ndarray, image: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM over ``region`` (None: the whole image) and the channels."""
    values = ssim_map(reference, image)
    if region is None:
        return float(values.mean())
    region = np.asarray(region).reshape(values.shape[:2]).astype(bool)
    return float(values[region].mean()) if region.any() else float("nan")


def telea(masked: np.ndarray, hole: np.ndarray, radius: int = TELEA_RADIUS) -> np.ndarray:
    """OpenCV's Telea inpainting of an RGB uint8 face inside ``hole`` ((H, W[, 1]), nonzero)."""
    import cv2

    hole = (np.asarray(hole).reshape(masked.shape[:2]) > 0).astype(np.uint8) * 255
    return cv2.inpaint(np.ascontiguousarray(masked, dtype=np.uint8), hole, radius,
                       cv2.INPAINT_TELEA)


def face_scores(bare: np.ndarray, result: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of one reconstructed face over the hidden region and the whole face."""
    return {"psnr_hole": psnr(bare, result, hole), "psnr_face": psnr(bare, result),
            "ssim_hole": ssim(bare, result, hole), "ssim_face": ssim(bare, result)}


def summarise(scores: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each score over faces (finite values only), plus the number of faces."""
    summary: dict[str, float] = {"faces": len(scores)}
    for key in ("psnr_hole", "psnr_face", "ssim_hole", "ssim_face"):
        values = np.array([row[key] for row in scores], dtype=np.float64)
        values = values[np.isfinite(values)]
        summary[key] = float(values.mean()) if len(values) else float("nan")
    return summary
