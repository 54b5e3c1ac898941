"""The NumPy MTCNN port: parity with the TensorFlow ``mtcnn`` package, edge cases, no TensorFlow.

Parity tests build the package's ``MTCNN`` (they import TensorFlow, ~6 s, so they are marked
slow) and skip when it is not installed. The masked photo is the astronaut with a solid
polygon drawn from the nose down to below the chin, like a surgical mask.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskmtl_cli.prediction.mtcnn_numpy import (KEYPOINT_KEYS, NumpyMtcnn, crop_and_resize,
                                                 mtcnn_weights_dir, nms, pyramid_scales,
                                                 resize_area)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Nose-to-chin polygon over the astronaut's lower face (face box about x 180-264, y 65-172).
MASK_POLYGON = np.array([(182, 118), (268, 118), (262, 170), (225, 188), (188, 170)], np.int32)
MASK_COLOUR = (150, 190, 230)


@pytest.fixture(scope="module")
def detector() -> NumpyMtcnn:
    return NumpyMtcnn()


@pytest.fixture(scope="module")
def astronaut(astronaut_path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(astronaut_path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def masked_astronaut(astronaut: np.ndarray) -> np.ndarray:
    masked = astronaut.copy()
    cv2.fillPoly(masked, [MASK_POLYGON], MASK_COLOUR)
    return masked


@pytest.fixture(scope="module")
def tf_mtcnn():
    """The package's own detector (TensorFlow); skips when tensorflow or mtcnn is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("tensorflow")
    mtcnn = pytest.importorskip("mtcnn")
    return mtcnn.MTCNN()


def parity_images(astronaut: np.ndarray, masked: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "astronaut": astronaut,
        "masked": masked,
        # Two faces (bare and masked, mirrored): checks order and NMS across faces.
        "two_faces": np.hstack([astronaut, masked[:, ::-1]]),
        "640x480": cv2.resize(astronaut, (640, 480), interpolation=cv2.INTER_AREA),
    }


# === Parity with the TensorFlow package ===

@pytest.mark.slow
@pytest.mark.parametrize("name", ["astronaut", "masked", "two_faces", "640x480"])
def test_same_detections_as_the_mtcnn_package(tf_mtcnn, detector, astronaut, masked_astronaut,
                                              name):
    image = parity_images(astronaut, masked_astronaut)[name]
    expected = tf_mtcnn.detect_faces(image)
    found = detector.detect_faces(image)

    assert len(found) == len(expected) >= 1
    for ours, theirs in zip(found, expected):
        assert set(ours) == set(theirs) == {"box", "confidence", "keypoints"}
        assert np.abs(np.subtract(ours["box"], theirs["box"])).max() <= 1
        assert ours["confidence"] == pytest.approx(float(theirs["confidence"]), abs=1e-4)
        assert list(ours["keypoints"]) == list(theirs["keypoints"])
        for key in KEYPOINT_KEYS:
            assert np.abs(np.subtract(ours["keypoints"][key], theirs["keypoints"][key])).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize(("name", "min_face_size"), [
    ("astronaut", 20), ("masked", 20), ("two_faces", 20),
    ("astronaut", 10),  # first pyramid level upscaled (12 / 10 > 1)
    ("astronaut", 15),
])
def test_unrounded_outputs_match_the_package(tf_mtcnn, detector, astronaut, masked_astronaut,
                                             name, min_face_size):
    image = parity_images(astronaut, masked_astronaut)[name]
    expected = tf_mtcnn.detect_faces(image, min_face_size=min_face_size, output_type="numpy",
                                     box_format="xyxy")[:, 1:]  # drop the image-index column
    found = detector.detect_array(image, min_face_size=min_face_size)

    assert found.shape == expected.shape
    np.testing.assert_allclose(found[:, :4], expected[:, :4], atol=0.05)  # pixels
    np.testing.assert_allclose(found[:, 4], expected[:, 4], atol=1e-4)  # confidence
    np.testing.assert_allclose(found[:, 5:], expected[:, 5:], atol=0.05)  # keypoints, pixels


@pytest.mark.slow
def test_sampling_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    image = rng.random((37, 53, 3), dtype=np.float32)
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    for height, width in [(20, 31), (11, 12), (50, 70)]:  # down, far down, up
        expected = tf.image.resize(image[None], (height, width), method="area").numpy()[0]
        # Same kernel; float32 sums in a different order differ by a few 1e-6.
        np.testing.assert_allclose(resize_area(chw, height, width).transpose(1, 2, 0), expected,
                                   atol=2e-5)
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [-0.2, -0.1, 0.4, 0.3], [0.7, 0.8, 1.2, 1.1]])
    expected = tf.image.crop_and_resize(image[None], boxes, np.zeros(3, np.int32), (24, 24)).numpy()
    np.testing.assert_allclose(crop_and_resize(chw, boxes, 24).transpose(1, 2, 3, 0), expected,
                               atol=1e-6)


# === Behaviour without TensorFlow ===

def test_astronaut_face_and_keypoints(detector, astronaut):
    faces = detector.detect_faces(astronaut)

    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face["box"]
    assert all(isinstance(v, int) for v in face["box"])
    assert 170 <= x <= 190 and 55 <= y <= 75 and 75 <= w <= 100 and 95 <= h <= 120
    assert isinstance(face["confidence"], float) and face["confidence"] > 0.99
    assert list(face["keypoints"]) == list(KEYPOINT_KEYS)
    points = face["keypoints"]
    assert points["left_eye"][0] < points["right_eye"][0]  # left/right as seen in the image
    assert points["left_eye"][1] < points["nose"][1] < points["mouth_left"][1]


def test_masked_face_is_found(detector, masked_astronaut):
    faces = detector.detect_faces(masked_astronaut)

    assert len(faces) == 1 and faces[0]["confidence"] > 0.9


def test_faces_sorted_by_confidence_and_repeatable(detector, astronaut, masked_astronaut):
    image = np.hstack([astronaut, masked_astronaut[:, ::-1]])
    faces = detector.detect_faces(image)

    assert len(faces) == 2
    assert faces[0]["confidence"] >= faces[1]["confidence"]
    assert detector.detect_faces(image) == faces


@pytest.mark.parametrize("image", [
    np.zeros((240, 320, 3), np.uint8),
    np.full((200, 200, 3), 255, np.uint8),
    np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8),
], ids=["black", "white", "noise"])
def test_no_face_in_blank_or_noise_images(detector, image):
    assert detector.detect_faces(image) == []
    assert detector.detect_array(image).shape == (0, 15)


@pytest.mark.parametrize("shape", [(0, 0, 3), (1, 1, 3), (11, 11, 3), (11, 200, 3), (200, 5, 3),
                                   (12, 12, 3), (13, 40, 3)])
def test_tiny_images_give_no_faces(detector, shape):
    assert detector.detect_faces(np.full(shape, 90, np.uint8)) == []


def test_large_min_face_size_does_not_fail(detector, astronaut):
    # mtcnn 1.0 shrinks its last pyramid levels below PNet's input here; those levels are skipped.
    faces = detector.detect_faces(astronaut, min_face_size=60)

    assert len(faces) == 1


def test_grayscale_and_rgba_are_converted(detector, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    expected = detector.detect_faces(np.repeat(gray[:, :, None], 3, axis=2))

    assert len(expected) == 1
    assert detector.detect_faces(gray) == expected
    assert detector.detect_faces(gray[:, :, None]) == expected
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert detector.detect_faces(rgba) == detector.detect_faces(astronaut)


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((50, 50, 2), np.uint8), "shape=(50, 50, 2)"),
    (np.zeros((2, 50, 50, 3), np.uint8), "shape=(2, 50, 50, 3)"),
    (np.full((50, 50, 3), "a"), "dtype"),
])
def test_bad_images_raise_clear_errors(detector, image, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        detector.detect_faces(image)


def test_min_face_size_must_be_positive(detector, astronaut):
    with pytest.raises(ValueError, match="min_face_size=0"):
        detector.detect_faces(astronaut, min_face_size=0)


# === Building blocks ===

def test_pyramid_matches_the_package_formula():
    scales = pyramid_scales(512, 512, 20)

    assert len(scales) == 10  # round(-(log(512 / 12) / log(0.709) + 1))
    np.testing.assert_allclose(scales[:2], [0.6, 0.6 * 0.709])
    assert len(pyramid_scales(11, 500, 20)) == 0


def test_nms_drops_boxes_overlapping_any_earlier_box():
    # B overlaps A, C overlaps B but not A: greedy NMS would keep C; the package drops it too.
    boxes = np.array([[0, 0, 10, 10, 0.9], [2, 0, 12, 10, 0.8], [4, 0, 14, 10, 0.7]], float)

    kept = nms(boxes, threshold=0.5)

    assert kept[:, 4].tolist() == [0.9]
    assert nms(boxes, threshold=0.9)[:, 4].tolist() == [0.9, 0.8, 0.7]
    assert nms(boxes[::-1], threshold=0.5, sort=True)[:, 4].tolist() == [0.9]


def test_resize_area_averages_blocks():
    image = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)

    result = resize_area(image, 2, 3)

    expected = image.reshape(2, 2, 2, 3, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_crop_of_whole_image_is_identity_and_outside_is_zero():
    image = np.random.default_rng(1).random((3, 24, 24), dtype=np.float32)

    crops = crop_and_resize(image, np.array([[0, 0, 1, 1], [2, 2, 3, 3]], float), 24)

    np.testing.assert_allclose(crops[:, 0], image, atol=1e-6)
    assert not crops[:, 1].any()


def test_weights_folder_is_found(detector):
    assert sorted(path.name for path in mtcnn_weights_dir().glob("*.lz4")) == [
        "onet.lz4", "pnet.lz4", "rnet.lz4"]


def test_missing_weights_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="pnet.lz4"):
        NumpyMtcnn(weights_dir=tmp_path)


def test_detection_never_imports_tensorflow(astronaut_path):
    probe = (
        "import json, sys, cv2\n"
        "from maskmtl_cli.prediction.mtcnn_numpy import NumpyMtcnn\n"
        f"image = cv2.cvtColor(cv2.imread({str(astronaut_path)!r}), cv2.COLOR_BGR2RGB)\n"
        "faces = NumpyMtcnn().detect_faces(image)\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('tensorflow', 'keras', 'mtcnn'))\n"
        "print(json.dumps({'faces': len(faces), 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"faces": 1, "heavy": []}
