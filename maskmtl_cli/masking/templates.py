"""Mask templates: the canonical face frame, template definitions and their cached maps.

The files in ``maskmtl_cli/assets/masks/`` are written by ``tools/build_templates.py``:
``face_frame.json`` (a canonical frontal face in iBUG-68 order and the triangle mesh used to warp
it onto a real face) and one ``<template>.json`` per mask, whose control points are weighted
combinations of landmarks. Everything derived from them (maps, mesh coordinates, strap paths) is
computed once per process and cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import cv2
import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.render_raster import render_template, resolve_points, sample_curve

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "masks"
TEMPLATE_NAMES: tuple[str, ...] = ("surgical", "n95", "kn95", "cloth", "valved", "duckbill")
#: Map resolutions, in pixels per canonical unit (half the jaw width in pixels). Levels below
#: MIP_BASE are area-averaged from it (mipmaps); the others are drawn directly.
LEVEL_PPCU: tuple[float, ...] = (20.0, 40.0, 80.0, 160.0, 320.0)
MIP_BASE = 2


@dataclass(frozen=True)
class FaceFrame:
    """The canonical face and the warp mesh.

    Attributes:
        landmarks: (68, 2) canonical landmark positions.
        depth: (68,) depth towards the camera, for making turned synthetic faces.
        mirror: landmark index of each landmark's mirror image.
        mesh_landmarks: landmarks used as mesh vertices.
        outer_landmarks: landmarks that get an extra vertex pushed away from ``outer_centre``.
        outer_centre: the landmark those extra vertices are pushed away from.
        outer_push: how far, as a fraction of the distance to ``outer_centre``.
        triangles: (T, 3) vertex indices of the mesh triangles.
    """

    landmarks: np.ndarray
    depth: np.ndarray
    mirror: tuple[int, ...]
    mesh_landmarks: np.ndarray
    outer_landmarks: np.ndarray
    outer_centre: int
    outer_push: float
    triangles: np.ndarray

    @cached_property
    def vertices(self) -> np.ndarray:
        """(V, 2) canonical mesh vertex positions."""
        return self.mesh_vertices(self.landmarks)

    def mesh_vertices(self, landmarks: np.ndarray) -> np.ndarray:
        """Mesh vertex positions (V, 2) for a (68, 2) landmark array (canonical or image)."""
        jaw = landmarks[self.outer_landmarks]
        outer = jaw + self.outer_push * (jaw - landmarks[self.outer_centre])
        return np.concatenate([landmarks[self.mesh_landmarks], outer])


@dataclass(frozen=True)
class TemplateMaps:
    """A template's canonical maps at one resolution (see ``render_raster``)."""

    ppcu: float
    origin: np.ndarray
    surface: np.ndarray
    uv: np.ndarray
    detail: np.ndarray | None  # None when the template has no detail layer
    triangles: np.ndarray  # indices of the mesh triangles that overlap the maps
    raster_vertices: np.ndarray  # (V, 2) mesh vertices in map pixel coordinates


@dataclass(frozen=True)
class Anchors:
    """Canonical points stored as (mesh triangle, barycentric weights), so they follow a warp."""

    triangles: np.ndarray  # (P,) triangle index
    weights: np.ndarray  # (P, 3) barycentric weights (may be slightly negative outside the mesh)

    def locate(self, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """Positions (P, 2) of the points for mesh ``vertices`` (V, 2)."""
        corners = vertices[triangles[self.triangles]]  # (P, 3, 2)
        return np.einsum("pk,pkd->pd", self.weights, corners)


@dataclass(frozen=True)
class TemplateGeometry:
    """Per-template data that does not depend on resolution.

    ``anchors`` holds, in this order, points around the outline and its shadow (the footprint,
    used for the bounding box) and the points of every strap path.
    """

    spec: dict
    anchors: Anchors
    footprint_size: int
    strap_sizes: tuple[int, ...]  # points per strap path
    strap_width: float  # canonical units


def _read_json(filename: str) -> dict:
    path = ASSET_DIR / filename
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"Mask template file {path} is missing. Reinstall maskmtl, or regenerate the "
            "templates with: python -m tools.build_templates"
        ) from None
    except json.JSONDecodeError as error:
        raise InputError(f"Mask template file {path} is not valid JSON ({error}). Regenerate "
                         "it with: python -m tools.build_templates") from None


def check_template(name: str) -> str:
    """Return ``name`` if it is a known template, else raise InputError listing the choices."""
    if name not in TEMPLATE_NAMES:
        raise InputError(f"Unknown mask template {name!r}. Choose one of: "
                         f"{', '.join(TEMPLATE_NAMES)}.")
    return name


@lru_cache(maxsize=1)
def face_frame() -> FaceFrame:
    """The canonical face frame (read once per process)."""
    data = _read_json("face_frame.json")
    mesh = data["mesh"]
    return FaceFrame(
        landmarks=np.asarray(data["landmarks"], dtype=np.float64),
        depth=np.asarray(data["depth"], dtype=np.float64),
        mirror=tuple(data["mirror"]),
        mesh_landmarks=np.asarray(mesh["landmarks"], dtype=np.intp),
        outer_landmarks=np.asarray(mesh["outer_landmarks"], dtype=np.intp),
        outer_centre=int(mesh["outer_centre"]),
        outer_push=float(mesh["outer_push"]),
        triangles=np.asarray(mesh["triangles"], dtype=np.intp),
    )


@lru_cache(maxsize=None)
def template_spec(name: str) -> dict:
    """The parsed definition of template ``name`` (InputError if unknown)."""
    return _read_json(f"{check_template(name)}.json")


def _anchor(points: np.ndarray) -> Anchors:
    """Find, for each canonical point, the mesh triangle that holds it (or the nearest one)."""
    frame = face_frame()
    corners = frame.vertices[frame.triangles]  # (T, 3, 2)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    found, weights = [], []
    for p in np.asarray(points, dtype=np.float64):
        w1 = ((p[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (p[1] - a[:, 1]) * (c[:, 0] - a[:, 0])) / det
        w2 = ((b[:, 0] - a[:, 0]) * (p[1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (p[0] - a[:, 0])) / det
        bary = np.stack([1.0 - w1 - w2, w1, w2], axis=1)
        best = int(np.argmax(bary.min(axis=1)))
        found.append(best)
        weights.append(bary[best])
    return Anchors(np.asarray(found, dtype=np.intp), np.asarray(weights))


@lru_cache(maxsize=None)
def template_geometry(name: str) -> TemplateGeometry:
    """Resolution-independent data of template ``name``: its footprint and strap paths."""
    spec = template_spec(name)
    frame = face_frame()
    points = resolve_points(spec["points"], frame.landmarks)
    outline = sample_curve([points[n] for n, _ in spec["outline"]],
                           [t for _, t in spec["outline"]], closed=True, per_segment=6)
    centre = outline.mean(axis=0)
    grown = centre + (outline - centre) * 1.08 + np.array([0.03, 0.05])
    paths = [sample_curve([points[n] for n in loop["points"]], per_segment=8)
             for loop in spec.get("loops", [])]
    widths = {float(loop["width"]) for loop in spec.get("loops", [])}
    if len(widths) > 1:
        raise InputError(f"Template {name!r}: all loops must have the same width, got {widths}.")
    footprint = np.concatenate([outline, grown])
    return TemplateGeometry(
        spec=spec, anchors=_anchor(np.concatenate([footprint, *paths])),
        footprint_size=len(footprint), strap_sizes=tuple(len(p) for p in paths),
        strap_width=widths.pop() if widths else 0.0,
    )


@lru_cache(maxsize=None)
def template_maps(name: str, level: int) -> TemplateMaps:
    """The canonical maps of template ``name`` at resolution ``LEVEL_PPCU[level]``."""
    frame = face_frame()
    ppcu = LEVEL_PPCU[level]
    if level < MIP_BASE:
        larger = template_maps(name, level + 1)
        origin = larger.origin
        surface, uv, detail = (None if m is None else _halve(m)
                               for m in (larger.surface, larger.uv, larger.detail))
    else:
        origin, surface, uv, detail = render_template(template_spec(name), frame.landmarks, ppcu)
        detail = detail if detail[..., 1].max() > 0 else None
    for shared in (surface, uv, detail):  # cached and shared by every call: keep them read-only
        if shared is not None:
            shared.flags.writeable = False
    rows, cols = surface.shape[:2]
    low, high = origin, origin + np.array([cols, rows]) / ppcu
    corners = frame.vertices[frame.triangles]
    overlaps = (corners.max(axis=1) >= low).all(axis=1) & (corners.min(axis=1) <= high).all(axis=1)
    return TemplateMaps(
        ppcu=ppcu, origin=origin, surface=surface, uv=uv, detail=detail,
        triangles=np.flatnonzero(overlaps),
        raster_vertices=(frame.vertices - origin) * ppcu - 0.5,
    )


def _halve(image: np.ndarray) -> np.ndarray:
    rows, cols = image.shape[:2]
    return cv2.resize(image, (cols // 2, rows // 2), interpolation=cv2.INTER_AREA)


def choose_level(pixels_per_unit: float) -> int:
    """The map level whose resolution is nearest (in ratio) to ``pixels_per_unit``."""
    ratios = np.abs(np.log2(np.asarray(LEVEL_PPCU) / max(pixels_per_unit, 1e-6)))
    return int(np.argmin(ratios))
