"""Face detection and UTKFace-style alignment (`maskmtl_cli.prediction`), on synthetic geometry
and the public-domain astronaut photo, including an EXIF-rotated copy."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskmtl_cli.data.dataset import load_image
from maskmtl_cli.errors import InputError
from maskmtl_cli.faces.alignment import (
    CROP_SIZE,
    UTKFACE_GEOMETRY,
    align_face,
    alignment_matrix,
    landmark_error,
    square_crop,
    to_model_input,
)
from maskmtl_cli.faces.detection import Face, get_detector
from maskmtl_cli.prediction.predict import read_image

#: Where the astronaut's face is (x, y, w, h), checked by eye on the photo.
ASTRONAUT_FACE = (170, 60, 100, 115)


def apply(matrix: np.ndarray, point) -> np.ndarray:
    return matrix[:, :2] @ np.asarray(point, dtype=np.float64) + matrix[:, 2]


def face_with_eyes(left, right, source="mtcnn") -> Face:
    return Face((0, 0, 10, 10), 1.0, {"eye_left": left, "eye_right": right}, source)


def inside(box, region, slack=10) -> bool:
    x, y, w, h = box
    rx, ry, rw, rh = region
    return (x >= rx - slack and y >= ry - slack and x + w <= rx + rw + slack
            and y + h <= ry + rh + slack)


def test_measured_geometry_is_level_and_centred():
    for points in UTKFACE_GEOMETRY.values():
        (lx, ly), (rx, ry) = points["eye_left"], points["eye_right"]
        assert abs(ly - ry) < 0.01  # eyes level
        assert 0.45 < (lx + rx) / 2 < 0.53  # centred
        assert 0.35 < rx - lx < 0.43  # eye distance measured at ~0.39 of the crop
        assert points["mouth"][1] > ly + 0.3


@pytest.mark.parametrize("source", sorted(UTKFACE_GEOMETRY))
@pytest.mark.parametrize("angle", [-35.0, 0.0, 20.0])
def test_eyes_land_on_the_utkface_targets(source, angle):
    centre, half = np.array([300.0, 200.0]), 40.0
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    face = face_with_eyes(tuple(centre - half * direction), tuple(centre + half * direction),
                          source)
    matrix = alignment_matrix(face, CROP_SIZE)
    targets = UTKFACE_GEOMETRY[source]
    np.testing.assert_allclose(apply(matrix, face.keypoints["eye_left"]),
                               np.array(targets["eye_left"]) * CROP_SIZE, atol=1e-6)
    np.testing.assert_allclose(apply(matrix, face.keypoints["eye_right"]),
                               np.array(targets["eye_right"]) * CROP_SIZE, atol=1e-6)
    # A similarity transform: orthogonal rows of equal length.
    assert abs(matrix[0, 0] - matrix[1, 1]) < 1e-9 and abs(matrix[0, 1] + matrix[1, 0]) < 1e-9


def test_alignment_needs_two_distinct_eyes():
    with pytest.raises(InputError, match="same point"):
        alignment_matrix(face_with_eyes((5.0, 5.0), (5.0, 5.0)))
    with pytest.raises(InputError, match="no eye keypoints"):
        alignment_matrix(Face((0, 0, 5, 5), None, {}, "none"))


def test_large_faces_are_shrunk_before_warping_without_moving_them():
    """The area-shrink path for big faces gives the same crop as a plain warp (up to blur)."""
    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    big = cv2.resize(small, (1600, 1200), interpolation=cv2.INTER_CUBIC)
    face_small = face_with_eyes((60.0, 50.0), (100.0, 52.0))
    face_big = face_with_eyes((600.0, 500.0), (1000.0, 520.0))
    crop_small, crop_big = align_face(small, face_small), align_face(big, face_big)
    assert crop_big.shape == crop_small.shape == (CROP_SIZE, CROP_SIZE, 3)
    assert np.abs(crop_big.astype(int) - crop_small.astype(int)).mean() < 6


def test_model_input_matches_the_training_loader(tmp_path: Path):
    """A 200x200 crop becomes the same 48x48 input as `maskmtl train` loads from disk."""
    rng = np.random.default_rng(1)
    crop = cv2.GaussianBlur(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), (0, 0), 2)
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    for mode in ("gray", "rgb"):
        expected, problem = load_image(str(path), 48, mode)
        assert problem == ""
        ours = to_model_input(crop, 48, mode)
        assert ours.shape == expected.shape == (48, 48, 1 if mode == "gray" else 3)
        assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1
    assert square_crop(np.zeros((30, 50, 3), np.uint8)).shape == (30, 30, 3)


@pytest.mark.parametrize("detector", ["mtcnn", "hog"])
def test_astronaut_is_detected_and_aligned_like_utkface(astronaut_path: Path, detector):
    photo = read_image(astronaut_path)
    faces = get_detector(detector).detect(photo, 20)
    face = max(faces, key=lambda f: f.area)
    assert inside(face.box, ASTRONAUT_FACE)
    assert face.landmarks == ("mtcnn" if detector == "mtcnn" else "dlib68")
    left, right = face.keypoints["eye_left"], face.keypoints["eye_right"]
    assert left[0] < right[0] and abs(left[1] - right[1]) < 10
    crop = align_face(photo, face)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
    # The mouth, not used for the transform, lands where UTKFace's mouths are.
    assert landmark_error(face, "mouth") < 0.06


def test_exif_orientation_is_respected(astronaut_path: Path, tmp_path: Path):
    """A phone-style file: pixels stored rotated, with an EXIF tag saying how to turn them."""
    upright = read_image(astronaut_path)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # sideways pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    restored = read_image(path)
    assert restored.shape == upright.shape
    assert np.abs(restored.astype(int) - upright.astype(int)).mean() < 4
    faces = get_detector("mtcnn").detect(restored, 20)
    assert len(faces) == 1 and inside(faces[0].box, ASTRONAUT_FACE)
