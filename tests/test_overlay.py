"""apply_mask and contact_sheet on synthetic landmarks (and, marked slow, dlib on a real photo)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.overlay import apply_mask
from maskmtl_cli.masking.preview import contact_sheet
from tools.render_synthetic import synthetic_landmarks
from maskmtl_cli.masking.style import TEMPLATE_NAMES, MaskStyle, choose_style

EYES = list(range(36, 48))
MUST_COVER = [8, 30, 33, *range(48, 68)]
POSES = {  # name: (image size, synthetic_landmarks keyword arguments)
    "frontal_200": (200, {}),
    "frontal_64": (64, {}),
    "tilted_left": (200, {"roll": -20.0}),
    "tilted_right": (200, {"roll": 25.0}),
    "turned_left": (200, {"yaw": -30.0}),
    "turned_right_64": (64, {"yaw": 30.0, "roll": 8.0}),
    "looking_down": (200, {"pitch": 15.0}),
    "mouth_open": (200, {"mouth_open": 0.25}),
    "small_face": (200, {"face_width": 40.0, "centre": (60.0, 70.0)}),
}


def _photo(size: int, seed: int = 0) -> np.ndarray:
    """A skin-toned image with some texture, so shading and light estimates see real values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size, 1)
    image = np.dstack([190 - 40 * yy, 150 - 30 * yy + 10 * xx, 120 - 20 * xx])
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def _style(template: str, texture: str = "plain", colour: str = "light-blue") -> MaskStyle:
    return choose_style(np.random.default_rng(0), template, colour=colour, texture=texture,
                        texture_weight=0.9)


def _jaw_hull(landmarks: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """Pixels inside the convex hull of the jaw line, grown by ``margin`` pixels."""
    hull = np.zeros(shape, np.uint8)
    points = np.round(landmarks[:17] * 16).astype(np.int32)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 255, cv2.LINE_8, 4)
    size = 2 * int(np.ceil(margin)) + 1
    return cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0


def _eye_area(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    area = np.zeros(shape, np.uint8)
    for eye in (landmarks[36:42], landmarks[42:48]):
        cv2.fillConvexPoly(area, np.round(eye * 16).astype(np.int32), 255, cv2.LINE_8, 4)
    return area > 0


def _pixel(landmarks: np.ndarray, index: int) -> tuple[int, int]:
    x, y = np.round(landmarks[index]).astype(int)
    return y, x


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
@pytest.mark.parametrize("pose", list(POSES))
def test_mask_covers_nose_mouth_chin_but_not_eyes(template, pose):
    size, kwargs = POSES[pose]
    landmarks = synthetic_landmarks(size, **kwargs)
    image = _photo(size)
    _, covered = apply_mask(image, landmarks, _style(template), np.random.default_rng(1))

    for index in MUST_COVER:
        assert covered[_pixel(landmarks, index)] == 255, f"landmark {index} not covered"
    for index in EYES:
        assert covered[_pixel(landmarks, index)] == 0, f"eye landmark {index} covered"
    assert not (covered > 0)[_eye_area(landmarks, covered.shape)].any()
    face_width = np.linalg.norm(landmarks[16] - landmarks[0])
    inside = _jaw_hull(landmarks, covered.shape, margin=0.07 * face_width)
    outside = (covered > 0) & ~inside
    assert outside.sum() == 0, f"{outside.sum()} covered pixels outside the jaw line"


def test_mask_scales_with_the_face():
    image = _photo(400)
    areas = []
    for width in (60.0, 240.0):
        landmarks = synthetic_landmarks(400, face_width=width, centre=(200.0, 150.0))
        _, covered = apply_mask(image, landmarks, _style("surgical"), np.random.default_rng(0))
        areas.append((covered > 0).sum())
    assert 16 * 0.8 < areas[1] / areas[0] < 16 * 1.2


def test_output_is_a_new_image_of_the_same_shape_and_input_is_untouched():
    image = _photo(120)
    before = image.copy()
    landmarks = synthetic_landmarks(120)
    masked, covered = apply_mask(image, landmarks, _style("cloth", "floral"),
                                 np.random.default_rng(3))
    assert masked.shape == image.shape and masked.dtype == np.uint8
    assert covered.shape == image.shape[:2] and covered.dtype == np.uint8
    assert set(np.unique(covered)) <= {0, 255}
    assert np.array_equal(image, before)
    assert not np.shares_memory(masked, image)
    # Pixels far from the face are never touched (the shadow only darkens next to the mask).
    assert np.array_equal(masked[:20], image[:20])
    assert np.abs(masked.astype(int) - image.astype(int))[covered > 0].mean() > 10


def test_same_rng_state_gives_identical_output():
    image = _photo(200)
    landmarks = synthetic_landmarks(200, yaw=12.0)
    style = _style("kn95", "camouflage")
    first = apply_mask(image, landmarks, style, np.random.default_rng([7, 42]))
    second = apply_mask(image, landmarks, style, np.random.default_rng([7, 42]))
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
@pytest.mark.parametrize("texture", ["plain", "weave", "check", "stripes", "dots", "floral",
                                     "camouflage"])
def test_every_template_renders_every_texture(template, texture):
    image = _photo(64)
    landmarks = synthetic_landmarks(64, yaw=-10.0)
    masked, covered = apply_mask(image, landmarks, _style(template, texture, "navy"),
                                 np.random.default_rng(5))
    covered_share = (covered > 0).mean()
    assert 0.15 < covered_share < 0.6
    # A navy mask is dark where it covers the face.
    assert masked[covered > 0].mean() < image[covered > 0].mean() - 40


def test_texture_weight_zero_matches_plain():
    image = _photo(100)
    landmarks = synthetic_landmarks(100)
    plain = choose_style(np.random.default_rng(0), "cloth", colour="red", texture="plain")
    unweighted = choose_style(np.random.default_rng(0), "cloth", colour="red", texture="check",
                              texture_weight=0.0)
    first = apply_mask(image, landmarks, plain, np.random.default_rng(1))[0]
    second = apply_mask(image, landmarks, unweighted, np.random.default_rng(1))[0]
    assert np.abs(first.astype(int) - second.astype(int)).max() <= 1


@pytest.mark.parametrize("size, width", [(20, 14.0), (1500, 900.0)])
def test_tiny_and_huge_faces_render(size, width):
    landmarks = synthetic_landmarks(size, face_width=width)
    masked, covered = apply_mask(_photo(size), landmarks, _style("surgical"),
                                 np.random.default_rng(0))
    assert covered[_pixel(landmarks, 33)] == 255
    assert covered[_pixel(landmarks, 37)] == 0


def test_face_partly_outside_the_image():
    landmarks = synthetic_landmarks(120, centre=(10.0, 110.0))
    masked, covered = apply_mask(_photo(120), landmarks, _style("n95"), np.random.default_rng(0))
    assert covered.any() and masked.shape == (120, 120, 3)


def test_face_entirely_outside_the_image_changes_nothing():
    image = _photo(80)
    landmarks = synthetic_landmarks(80, centre=(500.0, 500.0))
    masked, covered = apply_mask(image, landmarks, _style("cloth"), np.random.default_rng(0))
    assert np.array_equal(masked, image) and not covered.any()


@pytest.mark.parametrize("image, landmarks, message", [
    (np.zeros((50, 50), np.uint8), synthetic_landmarks(50), "RGB uint8"),
    (np.zeros((50, 50, 4), np.uint8), synthetic_landmarks(50), "RGB uint8"),
    (np.zeros((50, 50, 3), np.float32), synthetic_landmarks(50), "RGB uint8"),
    (np.zeros((50, 50, 3), np.uint8), np.zeros((5, 2)), "68 finite"),
    (np.zeros((50, 50, 3), np.uint8), np.full((68, 2), np.nan), "68 finite"),
    (np.zeros((50, 50, 3), np.uint8), np.full((68, 2), 10.0), "under 4 pixels"),
])
def test_bad_inputs_raise_input_error(image, landmarks, message):
    with pytest.raises(InputError, match=message):
        apply_mask(image, landmarks, _style("surgical"), np.random.default_rng(0))


def test_contact_sheet_layout_and_captions():
    pairs = [(_photo(64), _photo(64, seed=i), f"surgical / light-blue {i}") for i in range(5)]
    pairs.append((_photo(200)[..., 0], _photo(30), "grey input, a caption far too long " * 4))
    sheet = contact_sheet(pairs, columns=4, cell=96)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    gap, caption = 6, 20
    assert sheet.shape[1] == gap + 4 * (2 * 96 + gap + gap)
    assert sheet.shape[0] == gap + 2 * (96 + caption + gap)
    assert contact_sheet(pairs[:1], columns=4, cell=64).shape[1] == gap + 2 * 64 + 2 * gap


@pytest.mark.parametrize("pairs, columns, cell", [([], 4, 160), ("ok", 0, 160), ("ok", 4, 8)])
def test_contact_sheet_rejects_bad_arguments(pairs, columns, cell):
    if pairs == "ok":
        pairs = [(_photo(32), _photo(32), "x")]
    with pytest.raises(InputError):
        contact_sheet(pairs, columns=columns, cell=cell)


@pytest.mark.slow
def test_real_face_with_dlib_landmarks(astronaut_path, tmp_path):
    """Every template on NASA's public-domain astronaut portrait, landmarked by dlib."""
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    image = cv2.cvtColor(cv2.imread(str(astronaut_path)), cv2.COLOR_BGR2RGB)
    faces = dlib.get_frontal_face_detector()(image, 1)
    face = max(faces, key=lambda rect: rect.width() * rect.height())
    shape = dlib.shape_predictor(models.pose_predictor_model_location())(image, face)
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    face_width = np.linalg.norm(landmarks[16] - landmarks[0])
    inside = _jaw_hull(landmarks, image.shape[:2], margin=0.07 * face_width)
    eyes = _eye_area(landmarks, image.shape[:2])
    outputs = []
    for index, template in enumerate(TEMPLATE_NAMES):
        style = choose_style(np.random.default_rng(index), template)
        masked, covered = apply_mask(image, landmarks, style, np.random.default_rng(index))
        for point in MUST_COVER:
            assert covered[_pixel(landmarks, point)] == 255, (template, point)
        assert not (covered > 0)[eyes].any(), template
        assert not ((covered > 0) & ~inside).any(), template
        outputs.append((image, masked, template))
    sheet = contact_sheet(outputs, columns=3, cell=128)
    assert cv2.imwrite(str(tmp_path / "astronaut_sheet.png"), sheet[..., ::-1])
