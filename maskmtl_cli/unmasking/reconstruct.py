"""Unmask the faces of one photo: find, align, inpaint the crop, warp it back, blend it in.

Each face is found and aligned as ``maskmtl predict`` does (RetinaFace, UTKFace's 200x200
geometry), shrunk to the unmasking model's crop size, and unmasked there (the model estimates
the mask). The painted crop is enlarged back to 200x200 and warped into the photo by the inverse
of the alignment; it replaces the photo inside the mask the model used and fades out over
``BLEND_FEATHER`` pixels of the 200x200 crop past it, so pixels farther than a few pixels from
the mask are left exactly as they were. A face whose estimated mask covers less than
``MIN_MASK_FRACTION`` of its crop has no mask: it is left as it is and reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from maskmtl_cli.faces.alignment import (
    CROP_SIZE,
    alignment_matrix,
    crop_bounds,
    to_model_input,
)
from maskmtl_cli.faces.detection import Face

#: A face whose estimated mask covers less of its aligned crop than this has no mask.
#: (Masked UTKFace crops: 0.39 of the 64x64 crop on average; see docs/unmask.md.)
MIN_MASK_FRACTION = 0.05
#: Pixels of the 200x200 crop over which the reconstruction fades out past the mask the model
#: used (that mask is already grown by ``network.ESTIMATE_GROWTH`` pixels of the model's crop).
BLEND_FEATHER = 4

UNMASKED, NO_MASK = "unmasked", "no mask"


@dataclass
class UnmaskedFace:
    """What was done to one face."""

    file: str
    face: int
    box: tuple[int, int, int, int]
    score: float | None
    status: str  # UNMASKED or NO_MASK
    mask_fraction: float  # of the aligned crop the model took for mask
    mask_confidence: float  # mean probability inside the mask it used (0 without one)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["box"] = list(self.box)
        return data


@dataclass
class FaceResult:
    """One face's aligned crops, for ``--crops`` and tests."""

    record: UnmaskedFace
    before: np.ndarray  # model-size crop, uint8
    mask: np.ndarray  # (S, S) bool, the mask used
    after: np.ndarray  # model-size reconstruction, uint8


def unmask_photo(image: np.ndarray, model, pairs: list[tuple[Face, np.ndarray]],
                 file: str = "") -> tuple[np.ndarray, list[FaceResult]]:
    """Unmask the given faces of one photo.

    Args:
        image: RGB uint8 (H, W, 3).
        model: An ``UnmaskModel``.
        pairs: ``(face, crop)`` pairs from ``prediction.crops.face_crops`` (detected and
            aligned faces, or the photo's centred square for an aligned crop).
        file: Name to put in the records.

    Returns:
        The photo with every masked face reconstructed (a new array), and one result per face.
    """
    result = image.copy()
    if not pairs:
        return result, []
    inputs = np.stack([to_model_input(crop, model.image_size, "rgb") for _, crop in pairs])
    outputs = model.run(inputs)
    done = []
    for index, (face, _) in enumerate(pairs):
        used = outputs["used_mask"][index, :, :, 0] >= 0.5
        fraction = float(used.mean())
        probability = outputs["mask_probability"][index, :, :, 0]
        has_mask = fraction >= MIN_MASK_FRACTION
        painted = np.clip(np.rint(outputs["face"][index]), 0, 255).astype(np.uint8)
        record = UnmaskedFace(
            file=file, face=index, box=tuple(int(v) for v in face.box),
            score=None if face.score is None else round(float(face.score), 4),
            status=UNMASKED if has_mask else NO_MASK, mask_fraction=round(fraction, 4),
            mask_confidence=round(float(probability[used].mean()) if used.any() else 0.0, 4))
        if has_mask:
            result = blend_into(result, painted, used, _crop_matrix(face))
        done.append(FaceResult(record=record, before=inputs[index], mask=used,
                               after=painted if has_mask else inputs[index]))
    return result, done


def _crop_matrix(face: Face) -> np.ndarray:
    """Photo -> 200x200 crop: the alignment of a detected face; for an aligned crop (no
    keypoints) the scaling of its square box."""
    if face.keypoints:
        return alignment_matrix(face, CROP_SIZE)
    left, top, side, _ = face.box
    scale = CROP_SIZE / side
    return np.array([[scale, 0.0, -left * scale], [0.0, scale, -top * scale]])


def blend_into(photo: np.ndarray, painted: np.ndarray, used: np.ndarray,
               matrix: np.ndarray) -> np.ndarray:
    """Put the painted pixels of one face back into ``photo`` (a new array).

    Args:
        photo: RGB uint8 (H, W, 3).
        painted: The model's reconstruction at its own size (S, S, 3) uint8.
        used: (S, S) bool, the mask the model painted under.
        matrix: The alignment, photo -> 200x200 crop.
    """
    import cv2

    painted_200 = cv2.resize(painted, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)
    hole = cv2.resize(used.astype(np.uint8), (CROP_SIZE, CROP_SIZE),
                      interpolation=cv2.INTER_NEAREST)
    distance = cv2.distanceTransform((hole == 0).astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(1.0 - distance / BLEND_FEATHER, 0.0, 1.0).astype(np.float32)
    layer = painted_200
    x0, y0, x1, y1 = crop_bounds(matrix, photo.shape[1], photo.shape[0])
    shifted = matrix.copy()
    shifted[:, 2] = matrix @ np.array([x0, y0, 1.0])  # region pixel -> crop pixel
    region_size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    layer_photo = cv2.warpAffine(layer, shifted, region_size, flags=flags,
                                 borderMode=cv2.BORDER_CONSTANT)
    weight_photo = cv2.warpAffine(weight, shifted, region_size, flags=flags,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)[:, :, None]
    out = photo.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    mixed = weight_photo * layer_photo.astype(np.float32) + (1.0 - weight_photo) * region
    touched = weight_photo[:, :, 0] > 0
    region_u8 = out[y0:y1, x0:x1]
    region_u8[touched] = np.clip(np.rint(mixed[touched]), 0, 255).astype(np.uint8)
    return out


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8) -> np.ndarray:
    """``before`` and ``after`` next to each other on white, ``gap`` pixels apart."""
    height, width = before.shape[:2]
    canvas = np.full((height, 2 * width + gap, 3), 255, dtype=np.uint8)
    canvas[:, :width], canvas[:, width + gap:] = before, after
    return canvas


def crop_strip(result: FaceResult, scale: int = 3) -> np.ndarray:
    """One face's aligned crop, the mask the model used (red) and the reconstruction, enlarged."""
    import cv2

    from maskmtl_cli.unmasking.grid import overlay_mask

    size = result.before.shape[0] * scale
    shown = overlay_mask(result.before, result.mask)
    parts = [cv2.resize(part, (size, size), interpolation=cv2.INTER_NEAREST)
             for part in (result.before, shown, result.after)]
    gap = np.full((size, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1)

