"""Image decoding and encoding for the mask batch: keep each file's format, channels and alpha.

* JPEG is decoded with OpenCV's EXIF orientation applied, so the output (written without EXIF)
  shows the photo the way a viewer showed the input.
* Other formats are decoded unchanged: a grayscale PNG stays grayscale, an RGBA PNG keeps its
  alpha channel, 16-bit images become 8-bit.
* A colour JPEG whose three channels are identical is treated as grayscale and written back
  as grayscale (a coloured mask on a black-and-white photo would be out of place).
* Writes are atomic: bytes go to a hidden temporary file in the target's folder, then
  ``os.replace`` puts it in place, so an interrupted run never leaves a half-written file.
* A write that fails because of the place, not the image (no permission, a read-only file
  system, a full disk), becomes an ``OutputError`` (``output_writes``): it stops the batch.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskmtl_cli.data.files import IMAGE_SUFFIXES  # noqa: F401  (outputs keep the input's suffix)
from maskmtl_cli.errors import FULL_DISK, PLACE_ERRORS, DataError, OutputError
from maskmtl_cli.io import TEMP_SUFFIX, temp_path_for  # noqa: F401  (re-exported)
from maskmtl_cli.io import write_bytes_atomic as write_atomic  # noqa: F401  (re-exported)

#: Suffix of the temporary files behind atomic writes (hidden: they start with a dot).
_JPEG_SUFFIXES = (".jpg", ".jpeg")


class ImageReadError(DataError):
    """One image cannot be used; ``reason`` is a short code for masks.csv and the summary."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image ready for masking.

    Attributes:
        bgr: Pixels (H, W, 3) uint8 in OpenCV's BGR order.
        alpha: The alpha channel (H, W) uint8, or None.
        grayscale: True when the source had one channel (or three identical ones).
    """

    bgr: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])


def _is_truncated_jpeg(data: bytes) -> bool:
    # The last scan (SOS marker FF DA) must be followed by the end-of-image marker FF D9. In
    # entropy-coded data FF is always followed by 00 or a restart marker, so FF D9 cannot appear
    # by chance inside a scan; an EXIF thumbnail's own FF D9 comes before the main image's scans.
    last_scan = data.rfind(b"\xff\xda")
    return last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0


def read_image(path: Path) -> DecodedImage:
    """Decode ``path`` for masking.

    Raises:
        ImageReadError: With reason ``unreadable`` (cannot be opened, empty, not an image) or
            ``truncated`` (a JPEG cut short).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageReadError("unreadable", f"cannot read the file: {error.strerror}") from None
    if not data:
        raise ImageReadError("unreadable", "empty file (0 bytes)")
    buffer = np.frombuffer(data, dtype=np.uint8)
    suffix = Path(path).suffix.lower()
    is_jpeg = data[:2] == b"\xff\xd8"
    if is_jpeg and _is_truncated_jpeg(data):
        raise ImageReadError(
            "truncated", "truncated JPEG (no end-of-image marker after the last scan)"
        )
    flags = cv2.IMREAD_COLOR if (is_jpeg or suffix in _JPEG_SUFFIXES) else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(buffer, flags)
    if image is None or image.size == 0:
        raise ImageReadError("unreadable", "not a decodable image (corrupt, or not an image file)")
    if image.dtype != np.uint8:
        image = _to_uint8(image)
    alpha = None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        gray = image.reshape(image.shape[:2])
        return DecodedImage(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), None, True)
    if image.shape[2] == 4:
        alpha = np.ascontiguousarray(image[:, :, 3])
        image = np.ascontiguousarray(image[:, :, :3])
    return DecodedImage(image, alpha, _channels_equal(image[::7, ::7]) and _channels_equal(image))


def _channels_equal(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1])
                and np.array_equal(image[:, :, 1], image[:, :, 2]))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    info = np.iinfo(image.dtype)
    scaled = (image.astype(np.float64) - info.min) / (info.max - info.min) * 255.0
    return (scaled + 0.5).astype(np.uint8)


def encode_image(
    bgr: np.ndarray,
    suffix: str,
    *,
    alpha: np.ndarray | None = None,
    grayscale: bool = False,
    jpeg_quality: int = 95,
) -> bytes:
    """Encode BGR pixels in the format named by ``suffix`` (``.jpg``, ``.png``, ...).

    Args:
        bgr: (H, W, 3) uint8 pixels.
        suffix: The target file's suffix; decides the format.
        alpha: Alpha channel to put back (formats that support it).
        grayscale: Write one channel.
        jpeg_quality: JPEG/WebP quality, 1-100.
    """
    suffix = suffix.lower()
    if grayscale:
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        pixels = bgr
    if alpha is not None and suffix not in _JPEG_SUFFIXES:
        if grayscale:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
        pixels = np.dstack([pixels, alpha])
    params: list[int] = []
    if suffix in _JPEG_SUFFIXES:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(jpeg_quality)]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, encoded = cv2.imencode(suffix, pixels, params)
    if not ok:
        raise DataError(f"OpenCV could not encode an image as {suffix!r}.")
    return encoded.tobytes()


def encode_png(image: np.ndarray) -> bytes:
    """Encode a (H, W) or (H, W, 3) uint8 array as PNG (no channel reordering)."""
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DataError("OpenCV could not encode a PNG image.")
    return encoded.tobytes()


@contextmanager
def output_writes(output_root: Path, target: Path):
    """Turn an OSError of the output place inside the block into an ``OutputError``.

    Its message says what failed, where and what to do; the parts are kept as ``error.what``
    and ``error.advice`` so the batch can add what finished before. Other OSErrors pass
    through unchanged.

    Args:
        output_root: The output folder of the run.
        target: The file (or folder) being written.
    """
    try:
        yield
    except OSError as error:
        reason = PLACE_ERRORS.get(error.errno)
        if reason is None:
            raise
        raise place_error(output_root, target, error.errno, reason) from None


def place_error(output_root: Path, target: Path, code: int, reason: str) -> OutputError:
    """The ``OutputError`` for ``reason`` (errno ``code``) while writing ``target``."""
    if target == output_root or output_root.is_relative_to(target):
        parent = next((folder for folder in output_root.parents if folder.exists()),
                      output_root.parent)
        message = f"Cannot create the output folder {output_root}: {reason} in {parent}."
        folder = parent
    else:
        name = target.relative_to(output_root) if target.is_relative_to(output_root) else target
        message = f"Cannot write in the output folder {output_root}: {reason} (writing {name})."
        folder = output_root
    if code in FULL_DISK:
        advice = "Free some space, or choose an output folder on another disk"
    elif code == errno.EROFS:
        advice = "Choose an output folder on a writable disk"
    else:
        advice = f"Make {folder} writable (chmod u+w), or choose another output folder"
    error = OutputError(f"{message} {advice}, then rerun.")
    error.what, error.advice = message, advice
    return error


def remove_temp_files(folders) -> int:
    """Delete leftover temporary files (``.*.maskmtl-tmp``) in ``folders``; returns the count."""
    removed = 0
    for folder in folders:
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except OSError:
                        pass
    return removed
