"""Manifest -> in-memory uint8 arrays at a chosen size and colour mode, with an on-disk cache.

The cache holds every row of a manifest (all splits) at one size and colour mode, keyed by the
manifest's content (paths and hashes) so that any edit of the manifest invalidates it. A second
run of ``train`` or ``eval`` on the same manifest then starts in about a second.

The cache never serves stale pixels: it stores each file's (size, modification time, change
time) as seen when it was read, and every load compares them with the files on disk. Files that
changed, appeared or vanished since are read again (only those), and the cache is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.io import atomic_path, default_cache_dir  # noqa: F401  (re-exported)
from maskmtl_cli.schema import COLOR_MODES

CACHE_VERSION = 2  # 2: per-file signatures, changed files re-read


@dataclass(frozen=True)
class SplitArrays:
    """Images and labels of one split. Unknown labels: NaN age, -1 gender/race."""

    images: np.ndarray  # uint8 (N, size, size, C); C = 1 gray, 3 RGB
    age: np.ndarray  # float32 years
    gender: np.ndarray  # int8: 0 male, 1 female
    race: np.ndarray  # int8: 0-4
    paths: list[str]
    failures: list[tuple[str, str]]  # (path, reason), excluded from the arrays
    rows: object = None  # pandas.DataFrame: the manifest rows of the loaded images, in order

    def __len__(self) -> int:
        return len(self.paths)


def load_image(path: str, size: int, color_mode: str) -> tuple[np.ndarray | None, str]:
    """Decode one image (RGB or gray), resize to size x size with INTER_AREA. (image, problem)."""
    import cv2

    if not os.path.isfile(path):
        return None, "file not found"
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        return None, f"cannot read the file: {error.strerror or error}"
    if not data.size:
        return None, "empty file, 0 bytes"
    flag = cv2.IMREAD_GRAYSCALE if color_mode == "gray" else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(data, flag)
    except cv2.error:
        image = None
    if image is None:
        return None, "not a decodable image"
    if image.shape[0] != size or image.shape[1] != size:
        shrinking = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if color_mode == "gray":
        return image[:, :, None], ""
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), ""


def file_signatures(paths: list[str]) -> np.ndarray:
    """(size, mtime_ns, ctime_ns) of each file as int64 (N, 3); -1s for a missing file.

    Replacing a file's content changes its change time even when size and modification time
    are copied over (``cp -p``, ``touch -r``), so the triple catches every rewrite.
    """
    signatures = np.full((len(paths), 3), -1, dtype=np.int64)
    for index, path in enumerate(paths):
        try:
            stat = os.stat(path)
        except OSError:
            continue
        signatures[index] = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return signatures


def _cache_key(paths: list[str], hashes: list[str], size: int, color_mode: str) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{color_mode}".encode())
    for path, sha in zip(paths, hashes):
        digest.update(f"{path}\t{sha}\n".encode())
    return digest.hexdigest()[:20]


def load_all(paths: list[str], hashes: list[str], size: int, color_mode: str,
             cache_dir: Path | None, threads: int = 4) -> tuple[np.ndarray, np.ndarray, dict]:
    """Images for every path (zeros where loading failed), an ok mask, and failure reasons.

    With a ``cache_dir``, files whose signature (``file_signatures``) matches the cache are
    not read again; the others are, and the cache is updated.
    """
    channels = 1 if color_mode == "gray" else 3
    signatures = file_signatures(paths)  # before reading: a file changed meanwhile is re-read
    cache_file, stored = None, None
    if cache_dir is not None:
        key = _cache_key(paths, hashes, size, color_mode)
        cache_file = Path(cache_dir) / f"images-{key}-{size}-{color_mode}.npz"
        stored = _read_cache(cache_file, len(paths))
    if stored is not None:
        images, ok, failures, cached_signatures = stored
        stale = np.flatnonzero((cached_signatures != signatures).any(axis=1))
        if not len(stale):
            return images, ok, failures
        images, ok = np.require(images, requirements="W"), np.require(ok, requirements="W")
    else:
        images = np.zeros((len(paths), size, size, channels), dtype=np.uint8)
        ok = np.zeros(len(paths), dtype=bool)
        failures, stale = {}, np.arange(len(paths))

    def work(index: int) -> None:
        image, problem = load_image(paths[index], size, color_mode)
        if image is None:
            images[index], ok[index] = 0, False
            failures[paths[index]] = problem
        else:
            images[index], ok[index] = image, True
            failures.pop(paths[index], None)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, stale.tolist(), chunksize=256))
    if cache_file is not None:
        _write_cache(cache_file, images, ok, failures, signatures)
    return images, ok, failures


def _read_cache(cache_file: Path, rows: int):
    """(images, ok, failures, signatures) from a cache file, or None when absent or unusable."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as stored:
            images, ok = stored["images"], stored["ok"]
            failures = json.loads(str(stored["failures"]))
            signatures = np.array(stored["signatures"], dtype=np.int64)
    except (OSError, ValueError, KeyError):
        cache_file.unlink(missing_ok=True)  # corrupt cache: rebuilt by the caller
        return None
    if len(images) != rows or signatures.shape != (rows, 3):
        return None
    return images, ok, failures, signatures


def _write_cache(cache_file: Path, images: np.ndarray, ok: np.ndarray, failures: dict,
                 signatures: np.ndarray) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file) as temp, open(temp, "wb") as stream:
            np.savez(stream, images=images, ok=ok, failures=np.array(json.dumps(failures)),
                     signatures=signatures)
    except OSError:
        pass  # a cache we cannot write only costs time on the next run (no partial file stays)


def load_split(manifest, split: str | None = None, size: int = 48, color_mode: str = "gray",
               cache_dir: Path | None | str = "default") -> SplitArrays:
    """Load the images and labels of one split of a manifest (``split=None``: every row).

    Args:
        manifest: path of a manifest CSV, or a DataFrame from ``read_manifest``.
        split: "train", "val", "test" or None.
        size: output height and width in pixels.
        color_mode: "gray" (1 channel) or "rgb" (3 channels, RGB order).
        cache_dir: where cached arrays live; "default" = ``default_cache_dir()``, None = no cache.
    """
    from maskmtl_cli.data.manifest import read_manifest

    if color_mode not in COLOR_MODES:
        raise InputError(f"Unknown colour mode {color_mode!r}. Choose one of: "
                         f"{', '.join(COLOR_MODES)}.")
    if size < 8:
        raise InputError(f"Image size {size} is too small; use at least 8 pixels (default 48).")
    table = read_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest
    if cache_dir == "default":
        cache_dir = default_cache_dir()
    hashes = table["sha1"].fillna("").astype(str).tolist() if "sha1" in table else [""] * len(table)
    images, ok, failures = load_all(table["path"].tolist(), hashes, size, color_mode,
                                    Path(cache_dir) if cache_dir else None)
    selected = (np.ones(len(table), dtype=bool) if split is None
                else (table["split"] == split).to_numpy())
    if split is not None and not selected.any():
        present = sorted(s for s in table["split"].unique() if s)
        raise DataError(f"The manifest has no rows in split {split!r} (splits present: "
                        f"{', '.join(present) or 'none'}). Re-run `maskmtl split`, or choose "
                        "another split.")
    keep = selected & ok
    return split_arrays(images[keep], table[keep],
                        [(p, failures[p]) for p in table["path"][selected & ~ok]])


def split_arrays(images: np.ndarray, rows, failures: list[tuple[str, str]]) -> SplitArrays:
    """``SplitArrays`` of loaded ``images`` and their manifest ``rows`` (same order), with the
    labels in the arrays' conventions (unknown: NaN age, -1 gender/race)."""
    return SplitArrays(
        images=images,
        age=rows["age"].to_numpy(dtype="float32", na_value=np.nan),
        gender=rows["gender"].astype("float64").fillna(-1).to_numpy().astype(np.int8),
        race=rows["race"].astype("float64").fillna(-1).to_numpy().astype(np.int8),
        paths=rows["path"].tolist(),
        failures=failures,
        rows=rows.reset_index(drop=True),
    )


def load_masks(paths: list[str], size: int, cache_dir: Path | None | str = "default"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth mask PNGs (255 = covered) at ``size`` x ``size``, binarised at 128.

    Args:
        paths: One mask file per image; "" where an image has none.
        size: Output height and width (the model's input size).
        cache_dir: As for ``load_split``.

    Returns:
        uint8 masks (N, size, size, 1) of 0 and 255 (zeros where there is none), and which
        images have a usable mask (N,) bool.
    """
    if cache_dir == "default":
        cache_dir = default_cache_dir()
    wanted = [index for index, path in enumerate(paths) if path]
    masks = np.zeros((len(paths), size, size, 1), dtype=np.uint8)
    have = np.zeros(len(paths), dtype=bool)
    if wanted:
        images, ok, _ = load_all([paths[i] for i in wanted], [""] * len(wanted), size, "gray",
                                 Path(cache_dir) if cache_dir else None)
        masks[wanted] = np.where(images >= 128, 255, 0).astype(np.uint8)
        have[wanted] = ok
    return masks, have
