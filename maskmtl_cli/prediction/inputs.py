"""Inputs and outputs of `maskmtl predict` on disk: finding images, reading them upright,
and checking that output folders never overwrite or mix with the inputs.

An input given as ``-`` is one image read from standard input (``maskmtl predict - <
photo.jpg``): its bytes are read once by ``collect_images``, it is listed as ``-`` in the results
and named ``stdin.png`` in the output folders.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

import numpy as np

#: File suffixes read from folders (case-insensitive). Files named explicitly are always tried.
from maskmtl_cli.data.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, scan_image_files
from maskmtl_cli.errors import DataError, ImageTooLargeError, InputError
from maskmtl_cli.faces.alignment import square_crop, to_model_input

#: The input that stands for standard input, and its name in output folders.
STDIN = Path("-")
STDIN_NAME = PurePath("stdin.png")
#: An aligned crop smaller than this on a side carries too little of a face to trust.
MIN_ALIGNED_SIDE = 24
_stdin: dict[str, bytes] = {}


@dataclass(frozen=True)
class InputImage:
    """One file to process: its path and its output name relative to the output folders."""

    path: Path
    relative: PurePath

    @property
    def is_video(self) -> bool:
        """A video file (by its suffix, ``VIDEO_SUFFIXES``); everything else is read as a
        photo."""
        return self.path != STDIN and self.path.suffix.lower() in VIDEO_SUFFIXES

    @property
    def annotated_name(self) -> PurePath:
        """Its annotated copy's name in ``--annotate``: the same for photos; for videos an
        .mp4 (``clip.mp4``, ``clip.avi.mp4``)."""
        relative = self.relative
        if not self.is_video or relative.suffix.lower() == ".mp4":
            return relative
        return relative.with_name(f"{relative.name}.mp4")


def read_image(path: Path) -> np.ndarray:
    """Read a photo as RGB uint8 (H, W, 3), turned upright per its EXIF orientation tag.

    Raises:
        DataError: The file cannot be opened or decoded as an image (``ImageTooLargeError``
            for one over Pillow's decompression-bomb limit).
    """
    source = io.BytesIO(stdin_bytes()) if Path(path) == STDIN else path
    return _decode(source, f"'{path}'")


def decode_image(data: bytes, name: str = "upload", max_pixels: int | None = None,
                 formats: tuple[str, ...] | None = None) -> np.ndarray:
    """Decode an encoded photo held in memory, as ``read_image`` reads one from disk.

    Args:
        data: The encoded file (JPEG, PNG, ...).
        name: What to call it in error messages.
        max_pixels: Refuse images with more pixels than this, before decoding them (their
            size comes from the header), so a small file cannot expand into gigabytes.
        formats: Pillow format names to accept (e.g. ``("JPEG", "PNG")``); None: any.

    Returns:
        RGB uint8 (H, W, 3), upright per the EXIF orientation tag.

    Raises:
        ImageTooLargeError: More than ``max_pixels`` pixels, or over Pillow's own limit.
        DataError: The bytes are not an image in ``formats``, or cannot be decoded (truncated,
            corrupt).
    """
    return _decode(io.BytesIO(data), f"'{name}'", max_pixels, formats)


def _decode(source, label: str, max_pixels: int | None = None,
            formats: tuple[str, ...] | None = None) -> np.ndarray:
    """Open ``source`` (a path or file object) with Pillow and return its upright RGB pixels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source, formats=formats) as opened:
            width, height = opened.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{label} is {width}x{height} pixels ({width * height / 1e6:.1f} "
                    f"megapixels), over the limit of {max_pixels / 1e6:g} megapixels")
            upright = ImageOps.exif_transpose(opened)
            return np.asarray(upright.convert("RGB"))
    except UnidentifiedImageError:
        raise DataError(f"{label} is not an image format Pillow can read") from None
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{label} is too large to decode safely: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{label} cannot be decoded: {error}") from None


def read_aligned_input(path: Path, size: int, color_mode: str
                       ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Read an already aligned face crop straight into a model input (``--aligned``).

    Decodes like the training loader (``maskmtl_cli.data.dataset``: OpenCV, grayscale decoding
    for gray models, EXIF orientation applied by OpenCV), takes the centred square and resizes
    it. Files OpenCV cannot decode go through ``read_image``.

    Returns:
        The model input (size, size, C) and the square's box in the image.

    Raises:
        DataError: The file cannot be read as an image.
    """
    import cv2

    try:
        data = (np.frombuffer(stdin_bytes(), dtype=np.uint8) if Path(path) == STDIN
                else np.fromfile(path, dtype=np.uint8))
    except OSError as error:
        raise DataError(f"'{path}' cannot be read: {error}") from None
    reduction, full_size = _jpeg_reduction(data, size)
    decoded = cv2.imdecode(data, _decode_flag(color_mode, reduction)) if data.size else None
    if decoded is None:
        photo = read_image(path)
        crop = square_crop(photo)
        decoded_shape, model_input = photo.shape, to_model_input(crop, size, color_mode)
    else:
        if decoded.ndim == 3:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        crop = square_crop(decoded)
        decoded_shape = decoded.shape if full_size is None else (full_size[1], full_size[0])
        if crop.shape[0] != size:
            shrinking = crop.shape[0] > size
            crop = cv2.resize(crop, (size, size),
                              interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        model_input = crop[:, :, None] if crop.ndim == 2 else crop
    height, width = decoded_shape[:2]
    side = min(height, width)
    return model_input, ((width - side) // 2, (height - side) // 2, side, side)


def _jpeg_reduction(data: np.ndarray, size: int) -> tuple[int, tuple[int, int] | None]:
    """How much smaller (1, 2, 4 or 8) libjpeg may decode a JPEG that only feeds a ``size``
    input, and the JPEG's full (width, height) when it is decoded smaller.

    DCT-domain downscaling is several times faster than decoding the whole image, and the
    result stays at least ``size`` pixels a side, so the area resize after it still averages
    (on 200x200 UTKFace crops at 48x48 the pixels differ by 1.1/255 on average). EXIF-rotated
    and unreadable headers decode whole.
    """
    from PIL import Image, UnidentifiedImageError

    if data.size < 4 or not (data[0] == 0xFF and data[1] == 0xD8):
        return 1, None
    try:
        with Image.open(io.BytesIO(data[:65536].tobytes())) as opened:
            if opened.getexif().get(0x0112, 1) != 1:
                return 1, None
            width, height = opened.size
    except (UnidentifiedImageError, OSError, ValueError):
        return 1, None
    for factor in (8, 4, 2):
        if min(width, height) // factor >= size:
            return factor, (width, height)
    return 1, None


def _decode_flag(color_mode: str, reduction: int) -> int:
    """OpenCV's imread flag for a colour mode and a JPEG reduction factor."""
    import cv2

    if color_mode == "gray":
        return {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
                4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduction]
    return {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduction]


def stdin_bytes(refresh: bool = False) -> bytes:
    """The bytes of standard input, read once (again with ``refresh``).

    Raises:
        InputError: Standard input is a terminal or empty: nothing was piped in.
    """
    if refresh or "data" not in _stdin:
        stream = sys.stdin
        if stream is None or stream.isatty():
            raise InputError("`-` reads one image from standard input, but nothing is piped "
                             "in. Pipe a file, e.g. maskmtl predict - < photo.jpg.")
        _stdin["data"] = getattr(stream, "buffer", stream).read()
    if not _stdin["data"]:
        raise InputError("`-` reads one image from standard input, but it was empty. Pipe a "
                         "file, e.g. maskmtl predict - < photo.jpg.")
    return _stdin["data"]


def prefetch(function: Callable, items: list, ahead: int):
    """Yield ``(item, future of function(item))`` in order, computing up to ``ahead`` items in
    two background threads (image decoding and resizing release the GIL)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        queue: deque = deque()
        iterator = iter(items)
        for item in iterator:
            queue.append((item, pool.submit(function, item)))
            if len(queue) >= ahead:
                break
        while queue:
            item, future = queue.popleft()
            following = next(iterator, None)
            if following is not None:
                queue.append((following, pool.submit(function, following)))
            yield item, future


def collect_images(inputs: tuple[Path, ...], exclude: tuple[Path, ...] = ()) -> list[InputImage]:
    """Expand files and folders (recursive, image and video suffixes only, hidden entries
    skipped).

    Args:
        inputs: Files and folders as the user gave them; ``-`` is standard input (read here).
        exclude: Folders whose files are never inputs (the output folders).

    Returns:
        Unique files in input order (folders sorted), each with a unique output name.

    Raises:
        InputError: No inputs, a path that does not exist, a folder with no images, or ``-``
            with nothing piped in.
    """
    if not inputs:
        raise InputError("No input given. Pass image files or folders, e.g. maskmtl predict "
                         "photo.jpg.")
    excluded = {folder.resolve() for folder in exclude}
    found: list[tuple[Path, PurePath]] = []
    if STDIN in inputs:
        stdin_bytes(refresh=True)
    for given in inputs:
        if given == STDIN:
            found.append((STDIN, STDIN_NAME))
        elif given.is_dir():
            files = scan_image_files(given, excluded, IMAGE_SUFFIXES + VIDEO_SUFFIXES)[0]
            if not files:
                raise InputError(
                    f"No images in folder '{given}' (searched recursively for "
                    f"{', '.join(IMAGE_SUFFIXES)} and videos {', '.join(VIDEO_SUFFIXES)}). "
                    "Pass another folder or image files.")
            found.extend((path, path.relative_to(given)) for path in files)
        elif given.is_file():
            found.append((given, PurePath(given.name)))
        else:
            raise InputError(f"Input '{given}' does not exist. Pass image files or folders.")
    images, seen_files, used_names = [], set(), set()
    for path, relative in found:
        key = path.absolute()
        if key in seen_files:
            continue
        seen_files.add(key)
        name, counter = relative, 2
        while name in used_names:  # Same name from two inputs: photo.jpg, photo-2.jpg, ...
            name = relative.with_name(f"{relative.stem}-{counter}{relative.suffix}")
            counter += 1
        used_names.add(name)
        images.append(InputImage(path, name))
    return images


def check_output_dirs(inputs: tuple[Path, ...], annotate_dir: Path | None, cam_dir: Path | None,
                      images: list[InputImage] | None = None,
                      masks_dir: Path | None = None) -> None:
    """Refuse output folders that are files or input folders, or that would overwrite an input.

    Args:
        inputs: Files and folders as the user gave them.
        annotate_dir: Folder for annotated copies (``--annotate``), or None.
        cam_dir: Folder for Grad-CAM images (``--cam``), or None.
        images: The collected inputs; when given, also check no annotated copy lands on one.
        masks_dir: Folder for predicted masks (``--masks``), or None.

    Raises:
        InputError: Naming the option, the folder and what to do instead.
    """
    input_dirs = {given.resolve() for given in inputs if given.is_dir()}
    for option, folder in (("--annotate", annotate_dir), ("--cam", cam_dir),
                           ("--masks", masks_dir)):
        if folder is None:
            continue
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{option} '{folder}' is a file; pass a folder to write into.")
        if folder.resolve() in input_dirs:
            raise InputError(f"{option} '{folder}' is an input folder; its images would be "
                             "overwritten or mixed with outputs. Pass another folder.")
    if annotate_dir is not None and images:
        input_files = {image.path.resolve() for image in images}
        for image in images:
            if (annotate_dir / image.annotated_name).resolve() in input_files:
                raise InputError(f"--annotate '{annotate_dir}' would overwrite the input "
                                 f"'{image.path}'. Pass another folder.")
