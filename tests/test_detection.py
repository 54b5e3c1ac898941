"""RetinaFace, the default detector of `maskmtl predict`: photos as users send them."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.faces.detection import RETINAFACE_THRESHOLD, get_detector
from maskmtl_cli.prediction.inputs import read_image

runner = CliRunner()
#: The astronaut's eye centres (image left, image right), checked by eye on the photo.
EYES = ((205, 100), (248, 104))


@pytest.fixture(scope="module")
def photo(astronaut_path) -> np.ndarray:
    return read_image(astronaut_path)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from maskmtl_cli.models import build_network
    from maskmtl_cli.models.export import export_onnx

    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(build_network("hierarchical", preset="tiny", image_size=32), path)
    return path


def eyes_of(face) -> np.ndarray:
    return np.array([face.keypoints["eye_left"], face.keypoints["eye_right"]])


def test_astronaut_has_one_face_with_eyes_in_place(photo):
    faces = get_detector("retinaface").detect(photo)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks == "retinaface" and face.score >= 0.99
    assert np.abs(eyes_of(face) - np.array(EYES)).max() < 6
    x, y, w, h = face.box
    assert x < EYES[0][0] and EYES[1][0] < x + w and y < EYES[0][1] < y + h
    assert {"nose", "mouth_left", "mouth_right", "mouth"} <= set(face.keypoints)


def test_gray_and_rotated_photos(photo):
    detector = get_detector("retinaface")
    gray = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert len(detector.detect(gray)) == 1
    # Rotated by 25 degrees about the face: the eyes rotate with it.
    centre = (226.0, 120.0)
    matrix = cv2.getRotationMatrix2D(centre, 25, 1.0)
    rotated = cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT_101)
    faces = detector.detect(rotated)
    assert len(faces) == 1
    expected = cv2.transform(np.array([EYES], float), matrix)[0]
    assert np.abs(eyes_of(faces[0]) - expected).max() < 8


def test_several_faces_of_different_sizes_and_none_in_a_wall(photo):
    head = photo[20:260, 130:330]
    canvas = np.full((480, 640, 3), 120, np.uint8)
    for x, y, side in ((10, 20, 200), (260, 60, 110), (420, 300, 70)):
        canvas[y:y + round(side * 1.2), x:x + side] = cv2.resize(
            head, (side, round(side * 1.2)), interpolation=cv2.INTER_AREA)
    faces = sorted(get_detector("retinaface").detect(canvas), key=lambda f: f.box[0])
    assert len(faces) == 3
    assert [f.box[0] // 100 for f in faces] == [0, 2, 4]
    wall = np.full((300, 400, 3), 200, np.uint8)
    assert get_detector("retinaface").detect(wall) == []


def test_a_tight_face_crop_is_found_by_the_padded_pass(photo):
    from maskmtl_cli.faces.alignment import align_face

    face = get_detector("retinaface").detect(photo)[0]
    crop = align_face(photo, face)  # 200x200, the face fills it like a UTKFace crop
    found = get_detector("retinaface").detect(crop)
    assert len(found) == 1 and found[0].box[2] > 120


def test_min_face_and_threshold(photo):
    detector = get_detector("retinaface")
    assert detector.threshold == RETINAFACE_THRESHOLD
    assert detector.detect(photo, min_face=200) == []  # the face is about 95 px wide
    strict = get_detector("retinaface", 0.9999)
    assert strict is not detector and strict.threshold == 0.9999


def test_rgba_masked_and_exif_photos_through_the_cli(photo, astronaut_path, tiny_model,
                                                     tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    stored = Image.open(astronaut_path).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: rotate 90 degrees clockwise to display
    stored.save(folder / "phone.jpg", exif=exif, quality=95)
    source = tmp_path / "bare"
    source.mkdir()
    shutil.copy(astronaut_path, source / "masked.jpg")
    masked = runner.invoke(app, ["mask", str(source), str(folder), "--mask-type", "kn95",
                                 "--workers", "1"], catch_exceptions=False)
    assert masked.exit_code == 0, masked.output
    result = runner.invoke(app, ["predict", str(folder), "--model", str(tiny_model), "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    by_file = {record["file"].split("/")[-1]: record for record in records}
    assert len(records) == 3 and set(by_file) == {"rgba.png", "phone.jpg", "masked.jpg"}
    for record in records:
        assert record["detector"] == "retinaface" and record["detector_score"] >= 0.9
        x, y, w, h = record["box"]
        assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200  # upright, where the face is


def test_no_face_in_a_crop_shaped_image_suggests_aligned(tiny_model, tmp_path):
    blank = tmp_path / "crop.jpg"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    result = runner.invoke(app, ["predict", str(blank), "--model", str(tiny_model)])
    assert result.exit_code == 0
    assert "look like aligned face crops" in " ".join(result.stderr.split())
    assert "--aligned" in result.stderr


def portrait_of(photo: np.ndarray, side: int, masked: bool = False) -> np.ndarray:
    """A close-up portrait: the astronaut's head filling about half of a ``side`` px photo
    (from 200 px, a small upload, to 4,000 px, a phone camera), optionally with a flat mask."""
    head = photo[10:330, 66:386].copy()  # 320x320 around the 95 px face
    if masked:
        cv2.ellipse(head, (157, 150), (62, 45), 0, 0, 360, (170, 200, 230), -1)
    interpolation = cv2.INTER_AREA if side < 320 else cv2.INTER_CUBIC
    return cv2.resize(head[60:250, 60:250], (side, side), interpolation=interpolation)


@pytest.mark.parametrize("side", [200, 400, 800, 1600, 2400, 4000])
@pytest.mark.parametrize("masked", [False, True])
def test_one_face_in_a_close_up_portrait_of_any_size(photo, side, masked):
    """Enlarged beyond the network's largest anchors a face fell apart into parts (an eye and
    a cheek, half a face) that were reported as faces of their own (issue 20)."""
    image = portrait_of(photo, side, masked)
    faces = get_detector("retinaface").detect(image)
    assert len(faces) == 1, [(f.box, round(f.score, 3)) for f in faces]
    x, y, w, h = faces[0].box
    assert 0.35 * side < w < 0.9 * side  # the whole face, not a part of it


@pytest.mark.parametrize("side", [256, 1024, 2048, 3072])
def test_the_astronaut_at_several_sizes_is_one_face(photo, side):
    image = cv2.resize(photo, (side, side), interpolation=cv2.INTER_CUBIC)
    faces = get_detector("retinaface").detect(image)
    assert len(faces) == 1
    assert np.abs(eyes_of(faces[0]) * 512 / side - np.array(EYES)).max() < 8


def test_small_and_large_faces_in_one_photo_are_each_found_once(photo):
    """One head filling half the photo and five small ones (faces of about 24-52 px): exact
    count, the small faces found by the enlarged pass and the large one by the coarse pass."""
    head = photo[20:260, 130:330]
    canvas = np.full((960, 1280, 3), 110, np.uint8)
    canvas[100:820, 60:660] = cv2.resize(head, (600, 720), interpolation=cv2.INTER_CUBIC)
    spots = ((760, 80, 50), (900, 220, 70), (1050, 80, 90), (800, 600, 110), (1100, 700, 80))
    for x, y, side in spots:
        canvas[y:y + round(side * 1.2), x:x + side] = cv2.resize(
            head, (side, round(side * 1.2)), interpolation=cv2.INTER_AREA)
    faces = get_detector("retinaface").detect(canvas)
    assert len(faces) == 6, [(f.box, round(f.score, 3)) for f in faces]
    largest = max(faces, key=lambda face: face.area)
    assert largest.box[2] > 250 and largest.box[0] < 300


def test_pyramid_scales_fit_the_largest_and_the_smallest_faces():
    from maskmtl_cli.faces.retinaface import pyramid_scales

    scales = pyramid_scales(640, 480, 20)
    assert len(scales) == 2 and scales[0] * 480 <= 400 and scales[-1] == pytest.approx(2.4)
    big = pyramid_scales(4000, 3000, 20)
    assert big[0] * 4000 <= 640 and big[-1] * 4000 == pytest.approx(1536)
    assert pyramid_scales(640, 480, 100) == [pytest.approx(0.48)]  # one pass, shrunk
    for width, height in ((200, 200), (512, 512), (1024, 768), (3000, 4000)):
        scales = pyramid_scales(width, height, 20)
        assert all(b / a <= 4.0 + 1e-6 for a, b in zip(scales, scales[1:]))


def test_a_part_of_a_face_is_not_a_second_face():
    from maskmtl_cli.faces.retinaface import drop_contained

    corners = np.array([[100, 100, 300, 340],    # the face
                        [120, 120, 200, 200],    # an eye and a cheek, inside it
                        [150, 330, 250, 420],    # the chin line, eyes just below the box
                        [290, 150, 400, 290],    # a neighbour overlapping the edge
                        [102, 102, 298, 336]],   # the same face again, a tighter box
                       dtype=float)
    eyes = np.array([[[150, 180], [250, 180]], [[140, 150], [180, 150]],
                     [[175, 355], [225, 355]], [[320, 200], [370, 200]],
                     [[150, 180], [250, 180]]], dtype=float)
    scores = np.array([0.999, 0.9, 0.9, 0.95, 0.9995])
    assert drop_contained(corners, scores, eyes, np.arange(5)) == [4, 3]
    # A face in front of a poster of a blurred giant face stays, and so does a confident one
    # in front of a confident larger face.
    assert drop_contained(corners[:2], np.array([0.7, 0.9]), eyes[:2], np.arange(2)) == [0, 1]
    assert drop_contained(corners[:2], np.array([0.995, 0.97]), eyes[:2],
                          np.arange(2)) == [0, 1]
