"""Write the mask template files in ``maskmtl_cli/assets/masks/`` from the definitions below.

Everything here is authored for maskmtl: six mask templates whose outline, seams, pleats and
straps are control points tied to iBUG-68 landmarks, plus the canonical face frame and warp mesh
of ``render_frame``. Only the image-left half of each symmetric template is written by hand; the
right half is mirrored through the landmark mirror table.

Run after editing, then run the tests::

    python -m tools.build_templates

Canonical units: x to the image right, y down, origin at the eye line on the face midline, and
the jaw width from landmark 0 to landmark 16 is 2. A control point is a dict
``{landmark index: weight}`` whose weights sum to 1 (an affine combination), so it moves with the
face: ``lerp(28, 29, 0.4)`` is 40% of the way down the nose bridge from 28 to 29 and
``push(8, 30, 0.08)`` is 8% beyond the chin, away from the nose tip.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.render_frame import MIRROR, face_frame

OUT_DIR = Path(__file__).resolve().parent.parent / "maskmtl_cli" / "assets" / "masks"
FORMAT_VERSION = 1


# --- control points ---------------------------------------------------------------------------


def lerp(a: int, b: int, t: float) -> dict[int, float]:
    """The point a fraction ``t`` of the way from landmark ``a`` to landmark ``b``."""
    return {a: 1.0 - t, b: t}


def push(a: int, centre: int, t: float) -> dict[int, float]:
    """Landmark ``a`` moved a fraction ``t`` further away from landmark ``centre``."""
    return {a: 1.0 + t, centre: -t}


def blend(*parts: tuple[dict[int, float], float]) -> dict[int, float]:
    """A weighted mix of control points (the weights should sum to 1)."""
    out: dict[int, float] = {}
    for point, weight in parts:
        for index, w in point.items():
            out[index] = out.get(index, 0.0) + w * weight
    return out


def _mirror_point(point: dict[int, float]) -> dict[int, float]:
    return {MIRROR[index]: w for index, w in point.items()}


def _is_mid(point: dict[int, float]) -> bool:
    return _mirror_point(point) == point


def _symmetric(points: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """Add a mirrored ``<name>_r`` for every left-side point (names end in ``_l``).

    Points on the midline have no suffix; a deliberately one-sided point ends in ``_o``.
    """
    out = {}
    for name, point in points.items():
        out[name] = point
        if name.endswith("_l"):
            out[name[:-2] + "_r"] = _mirror_point(point)
        elif not _is_mid(point) and not name.endswith("_o"):
            raise ValueError(f"point {name!r} is off the midline but its name does not end in _l")
    return out


def _ring(half: list) -> list:
    """A closed outline from its left half (top centre first, bottom centre last)."""
    right = []
    for item in reversed(half[1:-1]):
        name, tension = item if isinstance(item, tuple) else (item, 0.0)
        right.append((name[:-2] + "_r", tension))
    return [item if isinstance(item, tuple) else (item, 0.0) for item in half] + right


def _path(left: list[str]) -> list[str]:
    """A path through the left half and back down the right half of the face."""
    right = [name[:-2] + "_r" for name in reversed(left) if name.endswith("_l")]
    return left + right


def _both(feature: dict) -> list[dict]:
    """A left-side feature and its mirror image."""
    mirrored = dict(feature)
    mirrored["points"] = [p[:-2] + "_r" if p.endswith("_l") else p for p in feature["points"]]
    return [feature, mirrored]


# --- templates --------------------------------------------------------------------------------

_CUP_SURFACE = {"curvature": 0.3, "pillow": 0.3, "pillow_radius": 0.55, "gloss": 0.06,
                "shininess": 10.0, "grain": 0.018, "ambient": 0.42, "edge_dark": 0.12}


def _surgical() -> dict:
    points = _symmetric({
        "top_c": lerp(28, 29, 0.45), "top1_l": lerp(40, 31, 0.42), "top2_l": lerp(41, 3, 0.33),
        "corner_t_l": lerp(1, 30, 0.08), "side_l": lerp(3, 33, 0.07),
        "corner_b_l": lerp(4, 33, 0.03), "bot5_l": push(5, 30, 0.05), "bot6_l": push(6, 30, 0.07),
        "bot7_l": push(7, 30, 0.08), "bot_c": push(8, 30, 0.08),
        "wire_l": lerp(40, 31, 0.5), "wire_c": lerp(28, 29, 0.62),
        "loop_t0_l": lerp(1, 30, 0.13),
        "loop_t1_l": blend((lerp(1, 30, 0.05), 0.5), (lerp(0, 1, 0.55), 0.5)),
        "loop_t2_l": lerp(0, 30, 0.01),
        "loop_b0_l": lerp(4, 33, 0.08), "loop_b1_l": lerp(3, 30, 0.04),
        "loop_b2_l": lerp(2, 30, 0.01),
    })
    return {
        "name": "surgical",
        "title": "Surgical mask",
        "description": "Three-ply pleated medical mask: three horizontal pleats, bound side edges, "
                       "a nose wire in the top hem and white elastic ear loops.",
        "points": points,
        "outline": _ring(["top_c", "top1_l", "top2_l", ("corner_t_l", 0.7), "side_l",
                          ("corner_b_l", 0.5), "bot5_l", "bot6_l", "bot7_l", "bot_c"]),
        "surface": {"curvature": 0.5, "pillow": 0.05, "pillow_radius": 0.2, "gloss": 0.05,
                    "shininess": 8.0, "grain": 0.025, "ambient": 0.45, "edge_dark": 0.06},
        "features": [
            {"type": "pleats", "v": [0.3, 0.5, 0.7], "depth": 0.026, "width": 0.14, "span": 0.95},
            {"type": "line", "points": ["top_c", "bot_c"], "profile": "tent", "height": 0.12,
             "width": 0.45, "until": 0.45},
            {"type": "line", "points": _path(["wire_l", "wire_c"]), "profile": "ridge",
             "height": 0.012, "width": 0.035},
            {"type": "rim", "where": "sides", "width": 0.07, "height": 0.01, "stitch": 0.055},
            {"type": "rim", "where": "top_bottom", "width": 0.05, "height": 0.006, "stitch": None},
        ],
        "loops": _both({"points": ["loop_t0_l", "loop_t1_l", "loop_t2_l"], "width": 0.028})
                 + _both({"points": ["loop_b0_l", "loop_b1_l", "loop_b2_l"], "width": 0.028}),
        "colours": {"light-blue": 0.5, "white": 0.18, "mint": 0.08, "pink": 0.06, "black": 0.1,
                    "navy": 0.04, "lilac": 0.04},
        "textures": {"plain": 0.82, "dots": 0.04, "floral": 0.05, "check": 0.03, "stripes": 0.03,
                     "camouflage": 0.03},
        "loop_colours": {"white": 0.85, "body": 0.15},
        "detail_colours": {},
    }


def _cup(name: str, title: str, description: str, valve: bool) -> dict:
    points = _symmetric({
        "top_c": lerp(28, 29, 0.35), "top1_l": lerp(40, 31, 0.4), "top2_l": lerp(41, 3, 0.45),
        "side1_l": lerp(3, 33, 0.12), "side2_l": lerp(4, 33, 0.06), "bot5_l": push(5, 30, 0.03),
        "bot6_l": push(6, 30, 0.06), "bot7_l": push(7, 30, 0.07), "bot_c": push(8, 30, 0.07),
        "clip_l": lerp(40, 31, 0.52), "clip_c": lerp(28, 29, 0.55),
        "strap_t0_l": lerp(41, 3, 0.5),
        "strap_t1_l": blend((lerp(1, 30, 0.06), 0.6), (lerp(0, 1, 0.5), 0.4)),
        "strap_t2_l": lerp(0, 30, 0.01),
        "strap_b0_l": lerp(4, 33, 0.12), "strap_b1_l": lerp(3, 33, 0.05),
        "strap_b2_l": lerp(3, 30, 0.01),
        "valve_o": blend((lerp(12, 33, 0.52), 0.75), (lerp(11, 33, 0.5), 0.25)),
    })
    features = [{"type": "rim", "where": "all", "width": 0.05, "height": 0.012, "stitch": None}]
    if valve:  # the nose clip sits under the outer fabric: only its ridge shows
        features.append({"type": "line", "points": _path(["clip_l", "clip_c"]), "profile": "ridge",
                         "height": 0.012, "width": 0.04})
        features.append({"type": "valve", "centre": "valve_o", "radius": 0.17})
    else:
        features.append({"type": "clip", "points": _path(["clip_l", "clip_c"]), "width": 0.05})
    return {
        "name": name, "title": title, "description": description, "points": points,
        "outline": _ring(["top_c", "top1_l", "top2_l", "side1_l", "side2_l", "bot5_l", "bot6_l",
                          "bot7_l", "bot_c"]),
        "surface": _CUP_SURFACE,
        "features": features,
        "loops": _both({"points": ["strap_t0_l", "strap_t1_l", "strap_t2_l"], "width": 0.04})
                 + _both({"points": ["strap_b0_l", "strap_b1_l", "strap_b2_l"], "width": 0.04}),
        "colours": ({"white": 0.6, "light-grey": 0.2, "black": 0.2} if valve
                    else {"white": 0.85, "light-grey": 0.1, "light-blue": 0.05}),
        "textures": {"plain": 0.9, "camouflage": 0.05, "weave": 0.05},
        "loop_colours": {"white": 0.3, "blue": 0.25, "yellow": 0.2, "orange": 0.15, "body": 0.1},
        "detail_colours": ({"light-grey": 0.4, "charcoal": 0.3, "white": 0.15, "red": 0.15}
                           if valve else {"silver": 1.0}),
    }


def _kn95() -> dict:
    points = _symmetric({
        "top_c": lerp(28, 29, 0.3), "top1_l": lerp(40, 2, 0.32), "corner_t_l": lerp(2, 30, 0.08),
        "side_l": lerp(3, 33, 0.08), "corner_b_l": lerp(4, 33, 0.07),
        "bot6_l": push(6, 30, 0.05), "bot7_l": push(7, 30, 0.07), "bot_c": push(8, 30, 0.08),
        "loop_t0_l": lerp(2, 30, 0.12), "loop_t1_l": lerp(1, 30, 0.05),
        "loop_t2_l": lerp(0, 30, 0.01),
        "loop_b0_l": lerp(4, 33, 0.1), "loop_b1_l": lerp(3, 30, 0.05),
        "loop_b2_l": lerp(2, 30, 0.01),
    })
    return {
        "name": "kn95",
        "title": "KN95 respirator",
        "description": "Folded flat respirator: a vertical centre fold with a welded seam, a "
                       "welded edge all round and ear loops.",
        "points": points,
        "outline": _ring([("top_c", 0.55), "top1_l", ("corner_t_l", 0.8), "side_l",
                          ("corner_b_l", 0.7), "bot6_l", "bot7_l", ("bot_c", 0.5)]),
        "surface": {"curvature": 0.3, "pillow": 0.06, "pillow_radius": 0.25, "gloss": 0.1,
                    "shininess": 6.0, "grain": 0.02, "ambient": 0.42, "edge_dark": 0.05},
        "features": [
            {"type": "line", "points": ["top_c", "bot_c"], "profile": "tent", "height": 0.2,
             "width": 0.95, "until": 1.0},
            {"type": "line", "points": ["top_c", "bot_c"], "profile": "weld", "height": 0.006,
             "width": 0.05},
            {"type": "rim", "where": "all", "width": 0.05, "height": 0.006, "stitch": None,
             "weld": True},
        ],
        "loops": _both({"points": ["loop_t0_l", "loop_t1_l", "loop_t2_l"], "width": 0.03})
                 + _both({"points": ["loop_b0_l", "loop_b1_l", "loop_b2_l"], "width": 0.03}),
        "colours": {"white": 0.5, "black": 0.22, "light-grey": 0.08, "pink": 0.06,
                    "light-blue": 0.08, "navy": 0.06},
        "textures": {"plain": 0.8, "camouflage": 0.05, "floral": 0.05, "dots": 0.05,
                     "stripes": 0.05},
        "loop_colours": {"white": 0.6, "body": 0.4},
        "detail_colours": {},
    }


def _cloth() -> dict:
    points = _symmetric({
        "top_c": lerp(28, 29, 0.4), "top1_l": lerp(40, 31, 0.42), "top2_l": lerp(41, 2, 0.42),
        "corner_t_l": lerp(1, 30, 0.05), "side_l": lerp(3, 33, 0.04), "bot4_l": push(4, 30, 0.02),
        "bot5_l": push(5, 30, 0.05), "bot6_l": push(6, 30, 0.07), "bot7_l": push(7, 30, 0.08),
        "bot_c": push(8, 30, 0.08), "seam_m": lerp(30, 33, 0.5), "seam_n": lerp(51, 57, 0.5),
        "loop_t0_l": lerp(1, 30, 0.1), "loop_t1_l": lerp(0, 1, 0.6), "loop_t2_l": lerp(0, 30, 0.01),
        "loop_b0_l": lerp(3, 33, 0.1), "loop_b1_l": lerp(2, 30, 0.04),
        "loop_b2_l": lerp(2, 30, 0.01),
    })
    return {
        "name": "cloth",
        "title": "Cloth mask",
        "description": "Fitted two-panel fabric mask: a curved centre seam, hemmed edges with "
                       "stitching and fabric ear loops.",
        "points": points,
        "outline": _ring(["top_c", "top1_l", "top2_l", ("corner_t_l", 0.6), "side_l", "bot4_l",
                          "bot5_l", "bot6_l", "bot7_l", "bot_c"]),
        "surface": {"curvature": 0.45, "pillow": 0.1, "pillow_radius": 0.3, "gloss": 0.02,
                    "shininess": 6.0, "grain": 0.03, "ambient": 0.45, "edge_dark": 0.08},
        "features": [
            {"type": "line", "points": ["top_c", "bot_c"], "profile": "tent", "height": 0.1,
             "width": 0.45, "until": 0.45},
            {"type": "line", "points": ["top_c", "seam_m", "seam_n", "bot_c"], "profile": "seam",
             "height": 0.012, "width": 0.03},
            {"type": "rim", "where": "sides", "width": 0.07, "height": 0.012, "stitch": 0.055},
            {"type": "rim", "where": "top_bottom", "width": 0.045, "height": 0.008,
             "stitch": 0.035},
        ],
        "loops": _both({"points": ["loop_t0_l", "loop_t1_l", "loop_t2_l"], "width": 0.045})
                 + _both({"points": ["loop_b0_l", "loop_b1_l", "loop_b2_l"], "width": 0.045}),
        "colours": {"black": 0.2, "navy": 0.1, "grey": 0.08, "charcoal": 0.06, "white": 0.06,
                    "red": 0.06, "maroon": 0.05, "pink": 0.06, "blue": 0.07, "teal": 0.05,
                    "olive": 0.05, "khaki": 0.05, "purple": 0.04, "yellow": 0.03, "mint": 0.04},
        "textures": {"plain": 0.16, "weave": 0.22, "check": 0.13, "stripes": 0.12, "dots": 0.12,
                     "floral": 0.13, "camouflage": 0.12},
        "loop_colours": {"body": 0.8, "white": 0.1, "black": 0.1},
        "detail_colours": {},
    }


def _duckbill() -> dict:
    points = _symmetric({
        "top_c": lerp(28, 29, 0.4), "top1_l": lerp(40, 31, 0.4), "top2_l": lerp(41, 3, 0.4),
        "corner_l": lerp(3, 33, 0.05),
        "low1_l": blend((push(4, 30, 0.01), 0.5), (lerp(5, 33, 0.1), 0.5)),
        "bot6_l": push(6, 30, 0.06), "bot7_l": push(7, 30, 0.07), "bot_c": push(8, 30, 0.08),
        "seam1_l": lerp(48, 3, 0.45), "seam2_l": lerp(48, 57, 0.2), "seam_c": lerp(62, 57, 0.35),
        "strap_t0_l": lerp(41, 3, 0.5), "strap_t1_l": lerp(1, 30, 0.05),
        "strap_t2_l": lerp(0, 30, 0.01),
        "strap_b0_l": lerp(4, 33, 0.14), "strap_b1_l": lerp(3, 33, 0.05),
        "strap_b2_l": lerp(3, 30, 0.01),
    })
    return {
        "name": "duckbill",
        "title": "Duckbill respirator",
        "description": "Duckbill respirator: an upper and a lower panel meeting in a horizontal "
                       "welded seam that juts forward at the mouth, with two head straps.",
        "points": points,
        "outline": _ring(["top_c", "top1_l", "top2_l", ("corner_l", 0.85), "low1_l", "bot6_l",
                          "bot7_l", "bot_c"]),
        "surface": {"curvature": 0.4, "pillow": 0.08, "pillow_radius": 0.25, "gloss": 0.05,
                    "shininess": 10.0, "grain": 0.02, "ambient": 0.42, "edge_dark": 0.08},
        "features": [
            {"type": "line", "points": _path(["corner_l", "seam1_l", "seam2_l", "seam_c"]),
             "profile": "tent", "height": 0.18, "width": 0.6, "until": 1.0},
            {"type": "line", "points": _path(["corner_l", "seam1_l", "seam2_l", "seam_c"]),
             "profile": "weld", "height": 0.006, "width": 0.04},
            {"type": "line", "points": ["top_c", "bot_c"], "profile": "tent", "height": 0.06,
             "width": 0.35, "until": 0.4},
            {"type": "rim", "where": "all", "width": 0.04, "height": 0.006, "stitch": None},
        ],
        "loops": _both({"points": ["strap_t0_l", "strap_t1_l", "strap_t2_l"], "width": 0.035})
                 + _both({"points": ["strap_b0_l", "strap_b1_l", "strap_b2_l"], "width": 0.035}),
        "colours": {"white": 0.55, "light-blue": 0.25, "mint": 0.1, "light-grey": 0.1},
        "textures": {"plain": 0.95, "weave": 0.05},
        "loop_colours": {"white": 0.5, "blue": 0.3, "body": 0.2},
        "detail_colours": {},
    }


def templates() -> list[dict]:
    """All template definitions, in TEMPLATE_NAMES order."""
    return [
        _surgical(),
        _cup("n95", "N95 respirator",
             "Moulded cup respirator: a domed shell with a moulded rim, an aluminium nose clip "
             "and two head straps.", valve=False),
        _kn95(),
        _cloth(),
        _cup("valved", "Valved respirator",
             "Moulded cup respirator with an exhalation valve on the wearer's left cheek.",
             valve=True),
        _duckbill(),
    ]


def _jsonable(template: dict) -> dict:
    out = dict(template)
    out["points"] = {name: {str(i): round(w, 6) for i, w in point.items()}
                     for name, point in template["points"].items()}
    return out


def main(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write face_frame.json and one JSON file per template into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    files = {"face_frame.json": dict(face_frame(), version=FORMAT_VERSION)}
    files.update({f"{t['name']}.json": dict(_jsonable(t), version=FORMAT_VERSION)
                  for t in templates()})
    for filename, content in files.items():
        path = out_dir / filename
        path.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main():
        print(written_path)
