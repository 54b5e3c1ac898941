"""Put a rendered mask on a face: warp the template's canonical maps onto the landmarks.

The warp is piecewise affine over a triangle mesh of landmarks (jaw line, nose bridge and base,
eye corners and lower lids, plus vertices just beyond the jaw), so the mask follows tilted and
turned heads, scales with the face and stays below the eyes. The mask's bounding box is drawn on
a canvas (supersampled when the face is small); the canonical position of every canvas pixel is
found by locating a coarse grid of points in the mesh triangles and interpolating between them,
which is exact inside each triangle and smooth across their edges. The template's maps are
sampled there, coloured, textured, lit with the photo's own low-frequency light and exposure, and
composited with soft anti-aliased edges and a faint cast shadow.

Speed matters here (tens of thousands of images per run), so the code keeps the number of numpy
and OpenCV calls small: fixed costs per call, not pixels, dominate at these image sizes.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.palette import PALETTE, to_unit
from maskmtl_cli.masking.style import MaskStyle
from maskmtl_cli.masking.templates import (
    TEMPLATE_NAMES,
    choose_level,
    face_frame,
    template_geometry,
    template_maps,
)
from maskmtl_cli.masking.textures import TEXTURE_NAMES, make_texture, pattern_weights

TARGET_PPCU = 16.0  # faces under 32 px wide are drawn supersampled
MAX_SUPERSAMPLE = 4
MAX_PPCU = 400.0  # huge faces are drawn at this scale and enlarged
GRID_POINTS = 400  # about this many points of the canvas are located in the mesh exactly
SHADOW_STRENGTH = 0.35  # darkening of the skin in the mask's cast shadow
SOFTEN = 0.5  # Gaussian sigma (image pixels) applied to the finished mask layer
_LUMA = np.float32([0.299, 0.587, 0.114])


def face_scale(landmarks: np.ndarray) -> float:
    """Pixels per canonical unit: half the jaw width, or the nose-to-chin height if larger."""
    width = np.hypot(*(landmarks[16] - landmarks[0])) / 2.0
    height = np.hypot(*(landmarks[8] - landmarks[27])) / 1.65
    return float(max(width, height))


def warm_up(levels: tuple[int, ...] = (0, 1, 2)) -> None:
    """Build the per-process caches (template maps, texture tiles) ahead of the first image.

    Optional: everything is built lazily anyway. A batch worker can call this once at start so
    that its first images are not slower than the rest.
    """
    for name in TEMPLATE_NAMES:
        template_geometry(name)
        for level in levels:
            template_maps(name, level)
    for texture in TEXTURE_NAMES[1:]:
        for variant in range(4):
            pattern_weights(texture, variant, 64)


def _check_inputs(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(f"apply_mask needs an RGB uint8 image of shape (H, W, 3), got shape "
                         f"{shape} and dtype {dtype}. Convert grey or RGBA images to RGB first.")
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points.sum()):
        raise InputError(f"apply_mask needs 68 finite (x, y) landmarks in dlib order, got an "
                         f"array of shape {points.shape}.")
    if face_scale(points) < 2.0:
        raise InputError("The landmarks describe a face under 4 pixels wide; there is nothing "
                         "to draw a mask on.")
    return points


def _pick(weights: dict[str, float], rng: np.random.Generator, body: np.ndarray) -> np.ndarray:
    """A colour drawn from a {name: weight} table ("body" = a shade of the mask colour)."""
    if not weights:
        return body
    draw = rng.random() * sum(weights.values())
    for name, weight in weights.items():
        draw -= weight
        if draw < 0:
            break
    return body * np.float32(0.82) if name == "body" else to_unit(PALETTE[name])


def _render_scale(scale: float) -> float:
    """Canvas pixels per image pixel: an integer supersampling factor, or < 1 for huge faces."""
    if scale > MAX_PPCU:
        return MAX_PPCU / scale
    return float(min(max(np.ceil(TARGET_PPCU / scale), 1.0), MAX_SUPERSAMPLE))


def _map_coordinates(corners: np.ndarray, targets: np.ndarray, shape: tuple[int, int]):
    """Where every canvas pixel falls in the template maps, as one (rows, cols, 2) float32 map.

    Args:
        corners: (T, 3, 2) mesh triangles in canvas pixel coordinates.
        targets: (T, 3, 2) the same triangles in map pixel coordinates.
        shape: canvas (rows, cols).

    A grid of about GRID_POINTS points, one cell wider than the canvas on every side, is located
    in the triangles (each point takes the triangle it lies in, or the nearest one, extended
    affinely); ``cv2.resize`` then interpolates bilinearly between grid points, aligned so that
    grid point j lands on canvas pixel ``(j - 1) * step``.
    """
    rows, cols = shape
    step = max(2, int(np.ceil(np.sqrt(rows * cols / GRID_POINTS))))
    grid_rows, grid_cols = rows // step + 3, cols // step + 3
    points = _grid_points(grid_rows, grid_cols, step)  # (P, 3): x, y, 1
    # Barycentric weight j of a point is a linear function of (x, y, 1); its coefficients come
    # from the cofactors of the triangle's [x y 1] matrix: one matrix product for all triangles.
    x, y = corners[..., 0], corners[..., 1]  # (T, 3)
    x1, x2, y1, y2 = np.roll(x, -1, 1), np.roll(x, -2, 1), np.roll(y, -1, 1), np.roll(y, -2, 1)
    det = (x1 - x) * (y2 - y) - (x2 - x) * (y1 - y)  # twice the signed area (same for every j)
    degenerate = np.abs(det[:, 0]) < 1e-9
    det[degenerate] = 1.0
    coefficients = np.stack([(y1 - y2) / det, (x2 - x1) / det, (x1 * y2 - x2 * y1) / det])
    bary = (points @ coefficients.reshape(3, -1)).reshape(len(points), -1, 3)  # (P, T, 3)
    inside = np.minimum(np.minimum(bary[..., 0], bary[..., 1]), bary[..., 2])  # >= 0 inside
    if degenerate.any():
        inside[:, degenerate] = -np.inf
    best = inside.argmax(axis=1)
    weights = bary[np.arange(len(points)), best]  # (P, 3)
    chosen = targets[best]  # (P, 3, 2)
    mapped = (weights[:, 0, None] * chosen[:, 0] + weights[:, 1, None] * chosen[:, 1]
              + weights[:, 2, None] * chosen[:, 2]).astype(np.float32)
    coarse = mapped.reshape(grid_rows, grid_cols, 2)
    fine = cv2.resize(coarse, (grid_cols * step, grid_rows * step), interpolation=cv2.INTER_LINEAR)
    return fine[step:step + rows, step:step + cols]


@lru_cache(maxsize=256)
def _grid_points(grid_rows: int, grid_cols: int, step: int) -> np.ndarray:
    """(P, 3) canvas x, y, 1 of the interpolation grid (see ``_map_coordinates``)."""
    ys, xs = np.mgrid[0:grid_rows, 0:grid_cols]
    points = np.ones((grid_rows * grid_cols, 3))
    points[:, 0] = xs.ravel() * float(step) + (0.5 * step - 0.5 - step)
    points[:, 1] = ys.ravel() * float(step) + (0.5 * step - 0.5 - step)
    points.flags.writeable = False
    return points


def _scene_tone(image: np.ndarray) -> np.ndarray:
    """Exposure and colour cast of the photo as an RGB multiplier (about 1 for a neutral,
    well-exposed photo), from its brightest pixels: a white mask in a dim or warm photo should
    look dim or warm too."""
    step = max(1, min(image.shape[:2]) // 32)
    sample = image[::step, ::step].reshape(-1, 3)
    brightness = sample @ _LUMA
    top = max(1, len(brightness) // 20)
    brightest = np.argpartition(brightness, len(brightness) - top)[-top:]
    mean_rgb = sample[brightest].mean(axis=0)
    level = float(mean_rgb @ _LUMA) / 255.0
    exposure = min(max(level / 0.85, 0.35), 1.05) ** 0.7
    grey = max(float(mean_rgb.mean()), 1.0)
    cast = [min(max(1.0 + 0.2 * (c / grey - 1.0), 0.93), 1.07) * exposure for c in mean_rgb]
    return np.asarray(cast, dtype=np.float32)


def _scene_light(region: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """The photo's low-frequency light across the mask (e.g. one side in shadow), around 1."""
    cell = max(scale * 0.6, 1.0)
    step = max(1, int(cell // 4))  # thin out first: INTER_AREA is slow on odd ratios
    sample = np.ascontiguousarray(region[::step, ::step])
    rows, cols = sample.shape[:2]
    size = (max(2, round(cols * step / cell)), max(2, round(rows * step / cell)))
    grey = cv2.resize(sample, size, interpolation=cv2.INTER_AREA) @ _LUMA
    relative = np.clip(grey * (1.0 / max(float(grey.mean()), 1.0)), 0.7, 1.25) ** 0.6
    return cv2.resize(relative.astype(np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_LINEAR)


def _draw_straps(geometry, points: np.ndarray, colour: np.ndarray, thickness: int,
                 shape: tuple[int, int]) -> np.ndarray:
    """Ear loops or head straps, anti-aliased, as premultiplied RGBA uint8 (0 where none)."""
    paint = np.zeros(shape + (4,), np.uint8)
    if not geometry.strap_sizes:
        return paint
    fixed = np.round(points * 16.0).astype(np.int32)
    paths = np.split(fixed, np.cumsum(geometry.strap_sizes)[:-1])
    edge = tuple(float(c) for c in np.minimum(colour * 0.72, 1.0) * 255.0) + (255.0,)
    cv2.polylines(paint, paths, False, edge, thickness, cv2.LINE_AA, 4)
    if thickness >= 3:  # a lighter core makes a round cord or a flat strap read as 3D
        core = tuple(float(c) for c in np.minimum(colour * 1.02, 1.0) * 255.0) + (255.0,)
        cv2.polylines(paint, paths, False, core, thickness // 2, cv2.LINE_AA, 4)
    return paint


def apply_mask(image: np.ndarray, landmarks: np.ndarray, style: MaskStyle,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a mask of ``style`` on the face described by ``landmarks``.

    Args:
        image: RGB uint8 (H, W, 3).
        landmarks: (68, 2) float x, y in image pixels, dlib/iBUG-68 order.
        style: template, colour and texture (see ``choose_style``).
        rng: source of the per-image details (texture placement, strap colour, valve colour).

    Returns:
        ``(masked, covered)``: the masked RGB uint8 image, same shape, and a uint8 (H, W) map
        that is 255 where the mask (body, straps) covers the face and 0 elsewhere. Pure: the input
        is not modified, nothing is read or written; the same ``rng`` state gives the same output.

    Raises:
        InputError: the image is not RGB uint8 or the landmarks are not 68 finite points.
    """
    points = _check_inputs(image, landmarks)
    frame = face_frame()
    geometry = template_geometry(style.template)
    vertices = frame.mesh_vertices(points)
    scale = face_scale(points)
    factor = _render_scale(scale)
    maps = template_maps(style.template, choose_level(scale * factor))

    # The canvas: the mask's bounding box in the image, times the supersampling factor.
    height, width = image.shape[:2]
    anchored = geometry.anchors.locate(vertices, frame.triangles)
    footprint = anchored[:geometry.footprint_size]
    x0, y0 = np.maximum(np.floor(footprint.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(footprint.max(axis=0)).astype(int) + 2, (width, height))
    covered = np.zeros((height, width), np.uint8)
    if x1 <= x0 or y1 <= y0:
        return image.copy(), covered
    shape = (max(1, int(np.ceil((y1 - y0) * factor))), max(1, int(np.ceil((x1 - x0) * factor))))
    offset = np.array([x0 - 0.5, y0 - 0.5])  # canvas = (image - offset) * factor - 0.5

    used = frame.triangles[maps.triangles]
    corners = (vertices[used] - offset) * factor - 0.5
    coordinates = _map_coordinates(corners, maps.raster_vertices[used], shape)
    alpha, shade, glint, shadow = cv2.split(cv2.remap(
        maps.surface, coordinates, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))

    # Colour: (textured) albedo x shading x the photo's light, premultiplied by coverage.
    region = image[y0:y1, x0:x1]
    tone = _scene_tone(image)
    light = _scene_light(region, scale, shape)
    base = to_unit(style.colour)
    body = _paint_body(style, maps, geometry, coordinates, (alpha, shade, glint),
                       light * alpha, tone, rng, scale * factor)

    # Premultiplied RGBA: the body over the straps; the shadow falls outside both.
    strap_colour = _pick(geometry.spec.get("loop_colours", {}), rng, base)
    thickness = max(1, int(round(geometry.strap_width * scale * factor)))
    strap_points = (anchored[geometry.footprint_size:] - offset) * factor - 0.5
    straps = _draw_straps(geometry, strap_points, strap_colour * tone * float(light.mean()),
                          thickness, shape)
    layer = cv2.merge([body, alpha])
    layer += straps * ((1.0 - alpha) * np.float32(1.0 / 255.0))[..., None]
    shadow *= 1.0 - layer[..., 3]
    if factor != 1.0:
        size = (x1 - x0, y1 - y0)
        interpolation = cv2.INTER_AREA if factor > 1 else cv2.INTER_LINEAR
        layer = cv2.resize(layer, size, interpolation=interpolation)
        shadow = cv2.resize(shadow, size, interpolation=interpolation)
    layer = cv2.GaussianBlur(layer, (3, 3), SOFTEN)  # as soft as a photo, not a vector drawing
    coverage = np.minimum(layer[..., 3], 1.0)
    keep = (1.0 - coverage) * (1.0 - SHADOW_STRENGTH * shadow)
    out = region * keep[..., None]
    out += layer[..., :3] * np.float32(255.0)
    out += 0.5
    masked = image.copy()
    masked[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)
    covered[y0:y1, x0:x1] = (coverage >= 0.5).astype(np.uint8) * 255
    return masked, covered


def _paint_body(style: MaskStyle, maps, geometry, coordinates, surface, light_alpha, tone,
                rng: np.random.Generator, pixels_per_unit: float) -> np.ndarray:
    """The mask body on the canvas, premultiplied RGB: the (textured) albedo x shading x the
    photo's light, plus the highlight and the template's details (clips, valves).

    Args:
        surface: The remapped ``(alpha, shade, glint)`` maps of the template.
        light_alpha: The photo's light times the coverage.
        pixels_per_unit: Canvas pixels per canonical unit (the texture's scale).
    """
    alpha, shade, glint = surface
    base = to_unit(style.colour)
    if style.texture != "plain" and style.texture_weight > 0:
        texture = make_texture(style.texture, base, rng, pixels_per_unit)
        weight = np.float32(style.texture_weight)
        tile = (texture.tile * weight + (1 - weight) * base) * tone
        per_unit = tile.shape[0] / texture.period
        cos, sin = np.cos(texture.angle) * per_unit, np.sin(texture.angle) * per_unit
        rotation = np.float32([[cos, -sin, texture.offset[0]], [sin, cos, texture.offset[1]]])
        uv = cv2.remap(maps.uv, coordinates, None, cv2.INTER_LINEAR)
        tex_xy = cv2.transform(uv, rotation)
        body = cv2.remap(tile, tex_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        body *= (shade * light_alpha)[..., None]
    else:
        body = (shade * light_alpha)[..., None] * (base * tone)
    body += (glint * light_alpha)[..., None] * tone
    if maps.detail is not None:
        tint = _pick(geometry.spec.get("detail_colours", {}), rng, base) * tone
        detail_lum, detail_alpha = cv2.split(cv2.remap(maps.detail, coordinates, None,
                                                        cv2.INTER_LINEAR))
        body += detail_alpha[..., None] * ((detail_lum * light_alpha)[..., None] * tint - body)
    np.minimum(body, alpha[..., None], out=body)
    return body
