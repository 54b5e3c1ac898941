"""Align and crop faces the way UTKFace's "aligned & cropped" training images are.

UTKFace's crops have a fixed geometry: eyes level, at a fixed height, a fixed distance apart and
centred. ``benchmarks/measure_utkface_alignment.py`` measured it on 300 of the 200x200 crops
(seed 0) with each landmark source used at prediction time; the means are below (x, y as a
fraction of the crop's width and height; spread across faces: 0.012-0.017 of the crop for the
eyes, eye distance 0.394 +- 0.026 (dlib) / 0.389 +- 0.022 (MTCNN) / 0.394 +- 0.024
(RetinaFace), roll -0.1 +- 2.4 degrees).

A detected face is mapped onto those positions by the similarity transform (rotation, uniform
scale, shift) that takes its two eye centres onto the targets of its own landmark source, at
UTKFace's 200x200 resolution; that crop is then resized to the model's input like the training
images (area interpolation when shrinking) and converted to its colour mode.
"""

from __future__ import annotations

import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.faces.detection import Face

#: Side of UTKFace's aligned crops, in pixels.
CROP_SIZE = 200
#: How an aligned crop is filled where it reaches past the photo (OpenCV border modes by name).
BORDER_MODES = ("reflect", "replicate", "constant")
#: The default, measured on faces pasted near the edges of canvases (docs/predict.md):
#: replicating the edge smears it into streaks that the model reads as part of the face.
DEFAULT_BORDER = "reflect"

#: Mean eye and mouth centres in UTKFace's 200x200 crops, normalised to 0..1, per landmark
#: source. Measured by benchmarks/measure_utkface_alignment.py (--count 300 --seed 0) with
#: predict's own detectors: dlib68 (HOG) found 297 of the 300 faces, MTCNN 298, RetinaFace 300.
UTKFACE_GEOMETRY: dict[str, dict[str, tuple[float, float]]] = {
    "dlib68": {
        "eye_left": (0.2941, 0.3009),
        "eye_right": (0.6882, 0.3005),
        "mouth": (0.4904, 0.7083),
    },
    "mtcnn": {
        "eye_left": (0.2965, 0.2922),
        "eye_right": (0.6856, 0.2929),
        "mouth": (0.4892, 0.6849),
    },
    "retinaface": {
        "eye_left": (0.3007, 0.2864),
        "eye_right": (0.6948, 0.2860),
        "mouth": (0.4946, 0.6768),
    },
}


def alignment_matrix(face: Face, size: int = CROP_SIZE) -> np.ndarray:
    """The 2x3 similarity transform from photo pixels to an aligned ``size`` x ``size`` crop.

    Args:
        face: A face with ``eye_left``/``eye_right`` keypoints and a known landmark source.
        size: Side of the crop in pixels.

    Returns:
        A float64 matrix ``M`` with ``crop_xy = M[:, :2] @ photo_xy + M[:, 2]``.

    Raises:
        InputError: The face has no eye keypoints or both eyes coincide.
    """
    targets = UTKFACE_GEOMETRY.get(face.landmarks)
    if targets is None or "eye_left" not in face.keypoints or "eye_right" not in face.keypoints:
        raise InputError(f"Face at {face.box} has no eye keypoints to align it by.")
    source_left = np.asarray(face.keypoints["eye_left"], dtype=np.float64)
    source_right = np.asarray(face.keypoints["eye_right"], dtype=np.float64)
    target_left = np.asarray(targets["eye_left"], dtype=np.float64) * size
    target_right = np.asarray(targets["eye_right"], dtype=np.float64) * size
    source_vector, target_vector = source_right - source_left, target_right - target_left
    source_length = float(np.hypot(*source_vector))
    if source_length < 1e-6:
        raise InputError(f"Face at {face.box} has both eyes at the same point; cannot align it.")
    scale = float(np.hypot(*target_vector)) / source_length
    angle = np.arctan2(target_vector[1], target_vector[0]) - np.arctan2(source_vector[1],
                                                                        source_vector[0])
    a, b = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[a, -b], [b, a]])
    shift = target_left - linear @ source_left
    return np.hstack([linear, shift[:, None]])


def crop_bounds(matrix: np.ndarray, width: int, height: int, size: int = CROP_SIZE,
                margin: int = 2) -> tuple[int, int, int, int]:
    """The photo pixels ``(x0, y0, x1, y1)`` a ``size`` x ``size`` crop of ``matrix`` (photo ->
    crop) covers, ``margin`` pixels wider, clipped to the photo (at least one pixel)."""
    import cv2

    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]],
                       dtype=np.float64) @ cv2.invertAffineTransform(matrix).T
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - margin, 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - margin, 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + margin, x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + margin, y0 + 1, height))
    return x0, y0, x1, y1


def align_face(image: np.ndarray, face: Face, border: str = DEFAULT_BORDER) -> np.ndarray:
    """Warp a detected face onto UTKFace's geometry as a 200x200 RGB crop.

    Faces much larger than the crop are first shrunk with area interpolation (only the region the
    crop covers), so the bilinear warp does not alias.

    Args:
        image: The photo, RGB uint8 (H, W, 3).
        face: The detected face (see ``alignment_matrix``).
        border: How pixels outside the photo are filled: ``"reflect"`` (mirrored at the edge),
            ``"replicate"`` (the edge pixel repeated) or ``"constant"`` (black).

    Returns:
        uint8 array (200, 200, 3).
    """
    import cv2

    modes = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
             "constant": cv2.BORDER_CONSTANT}
    if border not in modes:
        raise InputError(f"Unknown border '{border}'. Choose one of: {', '.join(BORDER_MODES)}.")

    matrix = alignment_matrix(face, CROP_SIZE)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    source = image
    if scale < 0.9:
        x0, y0, x1, y1 = crop_bounds(matrix, image.shape[1], image.shape[0])
        region = image[y0:y1, x0:x1]
        new_width = max(1, round((x1 - x0) * scale))
        new_height = max(1, round((y1 - y0) * scale))
        source = cv2.resize(region, (new_width, new_height), interpolation=cv2.INTER_AREA)
        factor_x, factor_y = new_width / (x1 - x0), new_height / (y1 - y0)
        # photo = (x0, y0) + small / factor, so crop = M[:, :2] @ (small / factor) + M @ (x0, y0, 1)
        adjusted = matrix.copy()
        adjusted[:, 0] = matrix[:, 0] / factor_x
        adjusted[:, 1] = matrix[:, 1] / factor_y
        adjusted[:, 2] = matrix @ np.array([x0, y0, 1.0])
        matrix = adjusted
    return cv2.warpAffine(np.ascontiguousarray(source), matrix, (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR, borderMode=modes[border])


def square_crop(image: np.ndarray) -> np.ndarray:
    """The centred square of an already aligned face image (``--aligned``); squares pass as is."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def to_model_input(crop: np.ndarray, size: int, color_mode: str) -> np.ndarray:
    """Resize a square RGB face crop to a model's input, as the training images were loaded.

    Matches ``maskmtl_cli.data.dataset``: grayscale conversion first (ITU-R 601 luma, what
    OpenCV's grayscale decoding gives), then area interpolation when shrinking and bilinear when
    enlarging.

    Args:
        crop: Square RGB uint8 (S, S, 3).
        size: The model's input side.
        color_mode: ``"gray"`` or ``"rgb"``.

    Returns:
        uint8 (size, size, 1) for gray, (size, size, 3) for rgb.
    """
    import cv2

    if color_mode not in ("gray", "rgb"):
        raise InputError(f"Unknown colour mode '{color_mode}'. Choose one of: gray, rgb.")
    image = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if color_mode == "gray" else crop
    if image.shape[0] != size or image.shape[1] != size:
        shrinking = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image[:, :, None] if image.ndim == 2 else image


def landmark_error(face: Face, point: str = "mouth") -> float | None:
    """Distance (fraction of the crop side) between where ``point`` lands after alignment and
    UTKFace's mean position for it: a check that a face was aligned like the training crops.

    Returns None when the face has no such keypoint.
    """
    if point not in face.keypoints:
        return None
    matrix = alignment_matrix(face, 1)
    x, y = face.keypoints[point]
    landed = matrix[:, :2] @ np.array([x, y]) + matrix[:, 2]
    target = np.asarray(UTKFACE_GEOMETRY[face.landmarks][point])
    return float(np.hypot(*(landed - target)))
