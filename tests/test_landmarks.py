"""dlib face boxes and 68-point landmarks on the public-domain astronaut photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskmtl_cli.errors import InputError
from maskmtl_cli.faces.landmarks import (
    ALIGNED_BOX,
    LANDMARK_FACE_SIZE,
    DlibLandmarker,
    FaceBox,
    aligned_box,
)


@pytest.fixture(scope="module")
def astronaut_gray(astronaut_path) -> np.ndarray:
    return cv2.imread(str(astronaut_path), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def astronaut_face(astronaut_gray) -> tuple[FaceBox, np.ndarray]:
    landmarker = DlibLandmarker("hog")
    boxes = landmarker.find_boxes(astronaut_gray)
    assert len(boxes) == 1
    return boxes[0], landmarker.landmarks(astronaut_gray, boxes[0])


def eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))


def test_unknown_detector_lists_the_valid_ones():
    with pytest.raises(InputError, match="auto, hog, retinaface, cnn"):
        DlibLandmarker("yolo")


def test_aligned_box_is_the_calibrated_inset_of_the_crop():
    box = aligned_box(200, 200)
    assert (box.left, box.top, box.right, box.bottom) == (15, 15, 194, 194)
    assert box.source == "aligned" and box.detector == ""
    small = aligned_box(64, 48)
    assert small.left == round(ALIGNED_BOX[0] * 64) and small.bottom == round(ALIGNED_BOX[3] * 48)
    assert DlibLandmarker(aligned=True).find_boxes(np.zeros((48, 64), np.uint8)) == [small]


@pytest.mark.slow
def test_hog_finds_the_astronaut_and_landmarks_are_anatomical(astronaut_gray, astronaut_face):
    box, points = astronaut_face
    assert box.source == "detected" and box.detector == "hog"
    height, width = astronaut_gray.shape
    assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
    assert points.shape == (68, 2) and points.dtype == np.float32
    eyes_y = points[36:48, 1].mean()
    # Eyes above the nose tip (33), above the mouth (48-67), above the chin (8).
    assert eyes_y < points[33, 1] < points[48:68, 1].mean() < points[8, 1]
    # The right eye of the subject (36-41) is on the image's left.
    assert points[36:42, 0].mean() < points[42:48, 0].mean()
    assert 40 < eye_distance(points) < 120


@pytest.mark.slow
def test_small_crops_are_upscaled_and_huge_images_downscaled(astronaut_gray, astronaut_face):
    box, reference = astronaut_face
    landmarker = DlibLandmarker("hog")
    tolerance = 0.08 * eye_distance(reference)
    for factor in (64 / box.width, 6.0):  # a 64 px wide face, and one six times the size
        size = (round(astronaut_gray.shape[1] * factor), round(astronaut_gray.shape[0] * factor))
        scaled = cv2.resize(astronaut_gray, size, interpolation=cv2.INTER_AREA
                            if factor < 1 else cv2.INTER_CUBIC)
        scaled_box = FaceBox(round(box.left * factor), round(box.top * factor),
                             round(box.right * factor), round(box.bottom * factor), "detected")
        assert abs(scaled_box.width - LANDMARK_FACE_SIZE) > 0.5 * LANDMARK_FACE_SIZE
        points = landmarker.landmarks(scaled, scaled_box)
        back = (points + 0.5) / factor - 0.5
        error = np.linalg.norm(back - reference, axis=1).mean()
        assert error < tolerance, (factor, error)


@pytest.mark.slow
def test_big_photos_are_downscaled_for_detection(astronaut_gray, astronaut_face):
    box, _ = astronaut_face
    big = cv2.resize(astronaut_gray, (3000, 3000), interpolation=cv2.INTER_LINEAR)
    found = DlibLandmarker("hog").find_boxes(big)
    assert len(found) == 1
    scale = 3000 / astronaut_gray.shape[1]
    assert abs(found[0].left - box.left * scale) < 0.15 * box.width * scale
    assert abs(found[0].width - box.width * scale) < 0.25 * box.width * scale


@pytest.mark.slow
def test_no_face_in_noise_and_auto_runs_retinaface_where_hog_finds_nothing(astronaut_gray):
    noise = np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8)
    assert DlibLandmarker("hog").find_boxes(noise) == []
    assert DlibLandmarker("auto").find_boxes(noise) == []
    # The astronaut's head, rolled 50 degrees: beyond the HOG frontal detector, found by
    # RetinaFace (and by dlib's CNN).
    head = astronaut_gray[40:240, 120:320]
    rolled = cv2.warpAffine(head, cv2.getRotationMatrix2D((100, 100), 50, 1.0), (200, 200))
    assert DlibLandmarker("hog").find_boxes(rolled) == []
    for detector, expected in (("auto", "retinaface"), ("retinaface", "retinaface"),
                               ("cnn", "cnn")):
        found = DlibLandmarker(detector).find_boxes(rolled)
        assert len(found) == 1 and found[0].detector == expected, (detector, found)
        assert found[0].left < 100 < found[0].right and found[0].top < 100 < found[0].bottom
