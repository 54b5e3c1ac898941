"""Training and evaluation triples for unmasking: masked face, its exact mask, the bare face.

A manifest made by ``maskmtl split`` of a ``maskmtl mask --save-masks`` output lists version 0
of each masked face and its mask PNG (column ``mask``). The mask output knows the rest
(``maskmtl_cli.training.versions``): the bare source photo of each face and, with ``mask
--variants K``, versions 1..K-1 at ``_variants/<k>/``, each with its own mask under
``_variants/<k>/_masks/``. All of them are pixel-aligned with the bare face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import DataError

#: Manifest column of the mask PNGs (``maskmtl split`` of a ``mask --save-masks`` output).
MASK_COLUMN = "mask"


@dataclass(frozen=True)
class Triples:
    """Aligned faces of one split, in manifest order (rows without all three are left out).

    Attributes:
        masked: uint8 (N, V, S, S, 3) masked versions (a missing version repeats version 0).
        masks: uint8 (N, V, S, S, 1), 1 where the mask covers the face.
        bare: uint8 (N, S, S, 3) the bare faces.
        versions: bool (N, V) which versions were read (version 0 always).
        rows: The manifest rows kept (a DataFrame, same order).
        dropped: ``(path, reason)`` of the rows left out.
    """

    masked: np.ndarray
    masks: np.ndarray
    bare: np.ndarray
    versions: np.ndarray
    rows: object
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.bare)


def load_triples(manifest, split: str | None, size: int,
                 cache_dir: Path | None | str = "default", versions: bool = True) -> Triples:
    """Read the masked faces, masks and bare faces of one split of ``manifest``.

    Args:
        manifest: A manifest CSV of a ``maskmtl mask --save-masks`` output (or its DataFrame).
        split: "train", "val", "test" or None (every row).
        size: Side of the arrays (images are resized as the attribute model's are).
        cache_dir: As for ``maskmtl_cli.data.dataset.load_split``.
        versions: Also read the other masked versions (``mask --variants``).

    Raises:
        DataError: The manifest has no mask column, or no row has all three images.
    """
    from maskmtl_cli.data.dataset import default_cache_dir, load_masks, load_split
    from maskmtl_cli.training.versions import load_versions, version_mask_paths

    loaded = load_split(manifest, split, size, "rgb", cache_dir)
    rows = loaded.rows
    if MASK_COLUMN not in rows:
        raise DataError("The manifest has no 'mask' column, so the faces' masks are unknown. "
                        "Mask the bare faces with `maskmtl mask IN OUT --save-masks`, then "
                        "`maskmtl split OUT`, and use that manifest.")
    dropped = list(loaded.failures)
    if cache_dir == "default":
        cache_dir = default_cache_dir()
    faces = load_versions(rows, loaded.images, size, "rgb", cache_dir, with_versions=versions)
    masked, present = faces.masked, faces.versions
    mask_lists = [rows[MASK_COLUMN].fillna("").astype(str).tolist()]
    if masked.shape[1] > 1:
        others = version_mask_paths(rows)
        mask_lists += [[row[k - 1] for row in others] for k in range(1, masked.shape[1])]
    masks = np.zeros((*masked.shape[:4], 1), dtype=np.uint8)
    for k, paths in enumerate(mask_lists):
        read, have = load_masks(paths, size, cache_dir)
        masks[:, k] = read // 255
        if k == 0:
            keep = have & faces.has_bare
        else:
            present[:, k] &= have
            masked[~present[:, k], k] = masked[~present[:, k], 0]
            masks[~present[:, k], k] = masks[~present[:, k], 0]
    for path, kept, has_bare in zip(rows["path"], keep, faces.has_bare):
        if not has_bare:
            dropped.append((str(path), "its bare source photo was not found"))
        elif not kept:
            dropped.append((str(path), "its mask PNG was not found"))
    if not keep.any():
        raise DataError(f"No row of split {split!r} has a masked face, its mask and its bare "
                        "source photo. Make the manifest with `maskmtl split` from a `maskmtl "
                        "mask --save-masks` output whose input folder is still in place.")
    return Triples(masked=masked[keep], masks=masks[keep], bare=faces.bare[keep],
                   versions=present[keep], rows=rows[keep].reset_index(drop=True),
                   dropped=dropped)

