"""Contact sheets: input beside output with a caption, so a person can judge masks at a glance."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maskmtl_cli.data.files import PREVIEW_PNG
from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.records import MASKED

#: The contact sheet ``maskmtl mask --preview`` writes into the output folder.
BACKGROUND = (30, 30, 32)
CAPTION_COLOUR = (235, 235, 235)
GAP = 6
CAPTION_HEIGHT = 20
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"contact_sheet needs uint8 images, got {image.dtype}.")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise InputError(f"contact_sheet needs RGB images of shape (H, W, 3), got {image.shape}.")


def _fit(image: np.ndarray, cell: int) -> np.ndarray:
    """``image`` scaled to fit a ``cell`` x ``cell`` square, centred on the background."""
    image = _as_rgb(image)
    rows, cols = image.shape[:2]
    ratio = cell / max(rows, cols)
    size = (max(1, round(cols * ratio)), max(1, round(rows * ratio)))
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(image, size, interpolation=interpolation)
    square = np.empty((cell, cell, 3), np.uint8)
    square[:] = BACKGROUND
    top, left = (cell - size[1]) // 2, (cell - size[0]) // 2
    square[top:top + size[1], left:left + size[0]] = scaled
    return square


def _caption(text: str, width: int) -> np.ndarray:
    """A caption strip with ``text`` shortened (with "...") until it fits ``width`` pixels."""
    strip = np.empty((CAPTION_HEIGHT, width, 3), np.uint8)
    strip[:] = BACKGROUND
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    scale = 0.42
    while text and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > width - 6:
        text = text[:-4] + "..." if len(text) > 4 else text[:-1]
    cv2.putText(strip, text, (3, CAPTION_HEIGHT - 6), _FONT, scale, CAPTION_COLOUR, 1,
                cv2.LINE_AA)
    return strip


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray, str]], columns: int = 4,
                  cell: int = 160) -> np.ndarray:
    """Lay out (input, output, caption) triples as a grid: each input beside its output.

    Args:
        pairs: (input RGB, output RGB, caption) per example; images of any size (each is fitted
            into a ``cell`` square), uint8 RGB (grey and RGBA are accepted too).
        columns: examples per row.
        cell: side of each image's square, in pixels.

    Returns:
        The sheet as an RGB uint8 image.

    Raises:
        InputError: no pairs, a bad image, or ``columns``/``cell`` out of range.
    """
    if not pairs:
        raise InputError("contact_sheet got no images; pass at least one (input, output, "
                         "caption) triple.")
    if columns < 1 or cell < 16:
        raise InputError(f"contact_sheet needs columns >= 1 and cell >= 16, got columns="
                         f"{columns} and cell={cell}.")
    columns = min(columns, len(pairs))
    rows = -(-len(pairs) // columns)
    tile_w, tile_h = 2 * cell + GAP, cell + CAPTION_HEIGHT
    sheet = np.empty((GAP + rows * (tile_h + GAP), GAP + columns * (tile_w + GAP), 3), np.uint8)
    sheet[:] = BACKGROUND
    for index, (before, after, text) in enumerate(pairs):
        top = GAP + (index // columns) * (tile_h + GAP)
        left = GAP + (index % columns) * (tile_w + GAP)
        sheet[top:top + cell, left:left + cell] = _fit(before, cell)
        sheet[top:top + cell, left + cell + GAP:left + tile_w] = _fit(after, cell)
        sheet[top + cell:top + tile_h, left:left + tile_w] = _caption(text, tile_w)
    return sheet


def captioned_grid(items: list[tuple[np.ndarray, str]], columns: int = 4,
                   cell: int = 160) -> np.ndarray:
    """Lay out (image, caption) pairs as a grid of ``cell`` squares, each captioned below.

    Raises:
        InputError: no items, a bad image, or ``columns``/``cell`` out of range.
    """
    if not items:
        raise InputError("captioned_grid got no images; pass at least one (image, caption).")
    if columns < 1 or cell < 16:
        raise InputError(f"captioned_grid needs columns >= 1 and cell >= 16, got columns="
                         f"{columns} and cell={cell}.")
    columns = min(columns, len(items))
    rows = -(-len(items) // columns)
    tile_h = cell + CAPTION_HEIGHT
    sheet = np.empty((GAP + rows * (tile_h + GAP), GAP + columns * (cell + GAP), 3), np.uint8)
    sheet[:] = BACKGROUND
    for index, (image, text) in enumerate(items):
        top = GAP + (index // columns) * (tile_h + GAP)
        left = GAP + (index % columns) * (cell + GAP)
        sheet[top:top + cell, left:left + cell] = _fit(image, cell)
        sheet[top + cell:top + tile_h, left:left + cell] = _caption(text, cell)
    return sheet


def write_preview(input_root: Path, output_root: Path, rows: list[dict], count: int) -> str | None:
    """Write ``preview.png``: ``count`` masked images spread evenly over masks.csv ``rows``.

    Returns:
        The written file, or None when no row is masked.
    """
    from maskmtl_cli.masking.io import encode_png, output_writes, read_image, write_atomic

    masked = [row for row in rows if row["status"] == MASKED]
    if not masked:
        return None
    count = min(count, len(masked))
    step = len(masked) / count
    picks = [masked[int(i * step)] for i in range(count)]
    pairs = []
    for row in picks:
        before = read_image(input_root / row["source"])
        after = read_image(output_root / row["output"])
        parts = (row["template"], row["colour"], row["texture"])
        caption = " ".join(part for part in parts if part)
        pairs.append((cv2.cvtColor(before.bgr, cv2.COLOR_BGR2RGB),
                      cv2.cvtColor(after.bgr, cv2.COLOR_BGR2RGB), caption))
    sheet = contact_sheet(pairs)
    target = output_root / PREVIEW_PNG
    with output_writes(output_root, target):
        write_atomic(target, encode_png(cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)))
    return str(target)
