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

from maskmtl_cli.faces.alignment import CROP_SIZE, alignment_matrix, to_model_input
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


def unmask_photo(image: np.ndarray, model, faces: list[Face], file: str = "",
                 aligned: bool = False) -> tuple[np.ndarray, list[FaceResult]]:
    """Unmask the given faces of one photo.

    Args:
        image: RGB uint8 (H, W, 3).
        model: An ``UnmaskModel``.
        faces: The faces to unmask (from a detector); with ``aligned``, ignored: the photo's
            centred square is the face.
        file: Name to put in the records.
        aligned: The photo is an aligned face crop.

    Returns:
        The photo with every masked face reconstructed (a new array), and one result per face.
    """
    from maskmtl_cli.faces.alignment import align_face, square_crop

    size = model.image_size
    if aligned:
        crop = square_crop(image)
        height, width = image.shape[:2]
        side = crop.shape[0]
        left, top = (width - side) // 2, (height - side) // 2
        scale = side / CROP_SIZE
        # crop = (photo - (left, top)) / scale
        matrices = [np.array([[1 / scale, 0, -left / scale], [0, 1 / scale, -top / scale]])]
        boxes, scores = [(left, top, side, side)], [None]
        crops = [_resize(crop, CROP_SIZE)]
    else:
        matrices = [alignment_matrix(face, CROP_SIZE) for face in faces]
        boxes = [tuple(int(v) for v in face.box) for face in faces]
        scores = [face.score for face in faces]
        crops = [align_face(image, face) for face in faces]
    if not crops:
        return image.copy(), []
    inputs = np.stack([to_model_input(crop, size, "rgb") for crop in crops])
    outputs = model.run(inputs)
    result = image.copy()
    done = []
    for index, matrix in enumerate(matrices):
        used = outputs["used_mask"][index, :, :, 0] >= 0.5
        fraction = float(used.mean())
        probability = outputs["mask_probability"][index, :, :, 0]
        has_mask = fraction >= MIN_MASK_FRACTION
        painted = np.clip(np.rint(outputs["face"][index]), 0, 255).astype(np.uint8)
        record = UnmaskedFace(
            file=file, face=index, box=boxes[index],
            score=None if scores[index] is None else round(float(scores[index]), 4),
            status=UNMASKED if has_mask else NO_MASK, mask_fraction=round(fraction, 4),
            mask_confidence=round(float(probability[used].mean()) if used.any() else 0.0, 4))
        if has_mask:
            result = blend_into(result, painted, used, matrix)
        done.append(FaceResult(record=record, before=inputs[index], mask=used,
                               after=painted if has_mask else inputs[index]))
    return result, done


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
    height, width = photo.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [CROP_SIZE, 0, 1], [0, CROP_SIZE, 1],
                        [CROP_SIZE, CROP_SIZE, 1]], dtype=np.float64) @ inverse.T
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 1, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 1, 0, height))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 1, 0, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 1, 0, height))
    if x1 <= x0 or y1 <= y0:
        return photo.copy()
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

    size = result.before.shape[0] * scale
    shown = result.before.copy()
    shown[result.mask] = (0.5 * shown[result.mask] + 0.5 * np.array([230, 40, 40])).astype(
        np.uint8)
    parts = [cv2.resize(part, (size, size), interpolation=cv2.INTER_NEAREST)
             for part in (result.before, shown, result.after)]
    gap = np.full((size, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1)


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if crop.shape[0] == size:
        return crop
    shrinking = crop.shape[0] > size
    return cv2.resize(crop, (size, size),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
