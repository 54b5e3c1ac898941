"""Template files, canonical maps, textures, palette and style choice (no images needed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from maskmtl_cli.errors import InputError
from tools import build_templates
from maskmtl_cli.masking.render_raster import resolve_points, sample_curve
from maskmtl_cli.masking.style import (
    DEFAULT_MIX,
    PALETTE,
    TEMPLATE_NAMES,
    TEXTURE_NAMES,
    choose_style,
    parse_colour,
    parse_mix,
)
from maskmtl_cli.masking.templates import (
    ASSET_DIR,
    LEVEL_PPCU,
    face_frame,
    template_maps,
    template_spec,
)
from maskmtl_cli.masking.textures import pattern_weights


def test_committed_template_files_match_the_builder(tmp_path):
    written = build_templates.main(tmp_path)
    assert {p.name for p in written} == {"face_frame.json", *(f"{n}.json" for n in TEMPLATE_NAMES)}
    for path in written:
        assert json.loads(path.read_text()) == json.loads((ASSET_DIR / path.name).read_text()), (
            f"{path.name} is stale: run python -m tools.build_templates")


def test_canonical_face_is_symmetric_and_mirror_table_is_an_involution():
    frame = face_frame()
    mirror = np.asarray(frame.mirror)
    assert sorted(mirror) == list(range(68))
    assert np.array_equal(mirror[mirror], np.arange(68))
    flipped = frame.landmarks[mirror] * [-1, 1]
    assert np.allclose(flipped, frame.landmarks)
    # Eyes above the nose tip, above the mouth, above the chin.
    y = frame.landmarks[:, 1]
    assert y[40] < y[30] < y[33] < y[51] < y[57] < y[8]


def test_mesh_triangles_are_valid_and_cover_the_lower_face():
    frame = face_frame()
    corners = frame.vertices[frame.triangles]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert (area > 1e-4).all()  # counter-clockwise and not degenerate
    assert np.isclose(area.sum() / 2, cv2.contourArea(cv2.convexHull(
        frame.vertices.astype(np.float32))), rtol=1e-3)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_geometry_in_the_canonical_face(name):
    spec = template_spec(name)
    frame = face_frame()
    for point in spec["points"].values():
        assert sum(point.values()) == pytest.approx(1.0), "control points must be affine"
    points = resolve_points(spec["points"], frame.landmarks)
    outline = sample_curve([points[n] for n, _ in spec["outline"]],
                           [t for _, t in spec["outline"]], closed=True, per_segment=24)
    contour = outline.astype(np.float32)
    for index in (8, 30, 33, *range(48, 68)):
        x, y = frame.landmarks[index]
        assert cv2.pointPolygonTest(contour, (float(x), float(y)), True) > 0.02, index
    lower_lids = frame.landmarks[[40, 41, 46, 47], 1].max()
    assert outline[:, 1].min() > lower_lids + 0.08
    assert abs(outline[:, 0].min()) < 1.0 and outline[:, 0].max() < 1.0
    for key in ("colours", "textures", "loop_colours"):
        assert all(w > 0 for w in spec[key].values())
    assert set(spec["textures"]) <= set(TEXTURE_NAMES)
    assert set(spec["colours"]) <= set(PALETTE)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_maps_are_sane_and_mipmaps_agree(name):
    base = template_maps(name, 2)
    small = template_maps(name, 1)
    assert base.ppcu == LEVEL_PPCU[2] and small.ppcu == LEVEL_PPCU[1]
    alpha, shade, glint, shadow = (base.surface[..., i] for i in range(4))
    assert alpha.min() >= 0 and alpha.max() == pytest.approx(1.0)
    inside = alpha > 0.99
    assert 0.2 < shade[inside].min() and shade[inside].max() < 1.4
    assert np.median(shade[inside]) == pytest.approx(1.0, abs=0.25)
    assert glint.min() >= 0 and shadow.max() <= 1.0 and (shadow[inside] < 0.05).all()
    # Soft, anti-aliased edge: some pixels are partly covered.
    assert ((alpha > 0.05) & (alpha < 0.95)).sum() > 50
    assert small.surface.shape[0] * 2 == base.surface.shape[0]
    assert small.surface[..., 0].sum() * 4 == pytest.approx(alpha.sum(), rel=1e-3)
    assert (base.detail is not None) == (name in ("n95", "valved"))


@pytest.mark.parametrize("texture", TEXTURE_NAMES[1:])
@pytest.mark.parametrize("variant", range(4))
def test_texture_tiles_are_seamless_weights(texture, variant):
    weights = pattern_weights(texture, variant, 64)
    assert weights.dtype == np.float32 and weights.shape[:2] == (64, 64)
    assert np.allclose(weights.sum(axis=2), 1.0, atol=1e-4)
    assert weights.min() >= -1e-6
    # Seamless: the step from the last row (column) to the first is no bigger than the biggest
    # step between neighbouring rows (columns) inside the tile; a tile cut out of a pattern that
    # does not repeat would jump at its border.
    for axis in (0, 1):
        other = 1 - axis
        inner = np.abs(np.diff(weights, axis=axis)).mean(axis=(other, 2)).max()
        border = np.abs(np.take(weights, 0, axis) - np.take(weights, -1, axis)).mean()
        assert border <= inner + 0.02, axis


@pytest.mark.parametrize("text, name, rgb", [
    ("white", "white", PALETTE["white"]),
    ("Light Blue", "light-blue", PALETTE["light-blue"]),
    ("light_gray", "light-grey", PALETTE["light-grey"]),
    ("#1F77B4", "#1f77b4", (31, 119, 180)),
    ("1f77b4", "#1f77b4", (31, 119, 180)),
    ("#fa0", "#ffaa00", (255, 170, 0)),
])
def test_parse_colour_accepts_names_and_hex(text, name, rgb):
    assert parse_colour(text) == (name, rgb)


@pytest.mark.parametrize("text", ["sky", "#12345", "#gggggg", "", "rgb(1,2,3)"])
def test_parse_colour_rejects_unknown_and_lists_names(text):
    with pytest.raises(InputError, match="light-blue") as error:
        parse_colour(text)
    assert "#1f77b4" in str(error.value)


def test_parse_mix_normalises_weights():
    mix = parse_mix(" surgical=2, cloth = 1,kn95=1 ,")
    assert mix == pytest.approx({"surgical": 0.5, "cloth": 0.25, "kn95": 0.25})
    assert parse_mix("n95=0,duckbill=3") == pytest.approx({"n95": 0.0, "duckbill": 1.0})


@pytest.mark.parametrize("text, message", [
    ("surgical", "template=weight"),
    ("surgical=0.5,=2", "template=weight"),
    ("surgical=abc", "not a number"),
    ("surgical=-1", ">= 0"),
    ("surgical=nan", ">= 0"),
    ("surgical=0,cloth=0", "above zero"),
    ("", "above zero"),
    ("bandana=1", "surgical, n95, kn95, cloth, valved, duckbill"),
    ("cloth=1,cloth=2", "twice"),
])
def test_parse_mix_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_mix(text)


def test_choose_style_is_deterministic_and_follows_the_mix():
    styles = [choose_style(np.random.default_rng([3, i])) for i in range(300)]
    again = [choose_style(np.random.default_rng([3, i])) for i in range(300)]
    assert styles == again
    counts = {name: sum(s.template == name for s in styles) / 300 for name in TEMPLATE_NAMES}
    for name, weight in DEFAULT_MIX.items():
        assert abs(counts[name] - weight) < 0.08, name
    only = [choose_style(np.random.default_rng(i), mix=parse_mix("kn95=1")) for i in range(20)]
    assert {s.template for s in only} == {"kn95"}
    for style in styles:
        assert style.colour_name in PALETTE and style.texture in TEXTURE_NAMES
        assert 0.0 <= style.texture_weight <= 1.0
        assert (style.texture_weight == 0.0) == (style.texture == "plain")


def test_choose_style_realistic_defaults_per_template():
    surgical = [choose_style(np.random.default_rng(i), "surgical") for i in range(200)]
    share = sum(s.colour_name in ("light-blue", "white") for s in surgical) / len(surgical)
    assert share > 0.55
    assert sum(s.texture == "plain" for s in surgical) / len(surgical) > 0.7
    n95 = [choose_style(np.random.default_rng(i), "n95") for i in range(100)]
    assert sum(s.colour_name == "white" for s in n95) > 70


def test_fixing_one_choice_does_not_change_the_others():
    free = choose_style(np.random.default_rng(11))
    fixed = choose_style(np.random.default_rng(11), colour="#102030")
    assert (fixed.template, fixed.texture) == (free.template, free.texture)
    assert (fixed.colour_name, fixed.colour) == ("#102030", (16, 32, 48))
    chosen = choose_style(np.random.default_rng(11), "cloth", colour="Pink", texture="Camo",
                          texture_weight=0.4)
    assert chosen.template == "cloth" and chosen.colour_name == "pink"
    assert chosen.texture == "camouflage" and chosen.texture_weight == 0.4


@pytest.mark.parametrize("kwargs, message", [
    ({"mask_type": "gasmask"}, "surgical, n95"),
    ({"mask_type": "cloth", "mix": {"cloth": 1.0}}, "random"),
    ({"texture": "tartan"}, "plain, weave, check"),
    ({"colour": "octarine"}, "light-blue"),
    ({"texture_weight": 1.5}, "between 0 and 1"),
])
def test_choose_style_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        choose_style(np.random.default_rng(0), **kwargs)
