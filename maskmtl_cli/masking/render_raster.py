"""Draw a mask template into maps in the canonical face frame (done once per template and scale).

The mask is modelled as a height field over the canonical face: a sideways wrap around the face,
an inflated "pillow" or cup over the mouth, a tent over the nose, plus the template's pleats,
seams, folds and hems. Its normals, lit by a fixed light from the upper left front, give the
shading; concave creases get ambient occlusion; arc lengths over the surface give the (u, v)
coordinates that textures are mapped in, so a pattern folds into pleats instead of running over
them. Per-image rendering (``overlay.apply_mask``) only warps these maps onto the face.

Maps, float32 (rows, columns, channels):

- ``surface`` (4): coverage alpha, diffuse shade (1 = flat surface facing the camera), additive
  specular, and the soft shadow the mask casts on the face outside its edge;
- ``uv`` (2): surface u and v in canonical units;
- ``detail`` (2): luminance and alpha of the detail layer (nose clip, exhalation valve), tinted
  at render time.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

LIGHT = np.array([-0.3, -0.55, 1.0]) / np.linalg.norm([-0.3, -0.55, 1.0])
MARGIN = 0.12  # canonical units of border around the outline (room for the cast shadow)
SUPERSAMPLE = 4  # the outline's coverage is drawn at this factor, then area-averaged


def resolve_points(points: dict[str, dict[str, float]], landmarks: np.ndarray) -> dict:
    """Evaluate named control points (landmark weights) on a (68, 2) landmark array."""
    out = {}
    for name, weights in points.items():
        out[name] = sum(float(w) * landmarks[int(i)] for i, w in weights.items())
    return out


def sample_curve(points: np.ndarray, tensions=None, closed: bool = False,
                 per_segment: int = 16) -> np.ndarray:
    """A cubic Hermite (Catmull-Rom) curve through ``points``; tension 1 makes a sharp corner."""
    points = np.asarray(points, dtype=np.float64)
    count = len(points)
    if count < 3:
        return np.linspace(points[0], points[-1], per_segment + 1)
    tensions = np.zeros(count) if tensions is None else np.asarray(tensions, dtype=np.float64)
    if closed:
        before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
    else:
        before = np.concatenate([points[:1], points[:-1]])
        after = np.concatenate([points[1:], points[-1:]])
    tangents = (after - before) * 0.5 * (1.0 - tensions)[:, None]
    if not closed:
        tangents[0], tangents[-1] = points[1] - points[0], points[-1] - points[-2]
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    basis = (2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2)
    segments = []
    for i in range(count if closed else count - 1):
        j = (i + 1) % count
        segments.append(basis[0] * points[i] + basis[1] * tangents[i]
                        + basis[2] * points[j] + basis[3] * tangents[j])
    curve = np.concatenate(segments)
    return curve if closed else np.concatenate([curve, points[-1:]])


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Canvas:
    """Pixel grid of one template raster: origin, scale and helpers in canonical units."""

    def __init__(self, origin: np.ndarray, shape: tuple[int, int], ppcu: float):
        self.origin, self.shape, self.ppcu = origin, shape, ppcu
        rows, cols = shape
        self.x = (origin[0] + (np.arange(cols, dtype=np.float32) + 0.5) / ppcu)[None, :]
        self.y = (origin[1] + (np.arange(rows, dtype=np.float32) + 0.5) / ppcu)[:, None]

    def to_pixels(self, points: np.ndarray, factor: int = 1) -> np.ndarray:
        """Fixed-point (4 fractional bits) pixel coordinates for cv2 drawing calls."""
        pixels = ((points - self.origin) * self.ppcu * factor - 0.5) * 16.0
        return np.round(pixels).astype(np.int32)

    def distance_to(self, polyline: np.ndarray) -> np.ndarray:
        """Distance in canonical units from every pixel to an open polyline."""
        drawn = np.full(self.shape, 255, np.uint8)
        cv2.polylines(drawn, [self.to_pixels(polyline)], False, 0, 1, cv2.LINE_8, shift=4)
        return cv2.distanceTransform(drawn, cv2.DIST_L2, 5) / self.ppcu

    def blur(self, image: np.ndarray, sigma_cu: float) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), max(sigma_cu * self.ppcu, 0.3))


def _line_profile(feature: dict, canvas: _Canvas, path: np.ndarray, inside: np.ndarray):
    """Height added by a line feature and its extra occlusion (1 = none)."""
    distance = canvas.distance_to(path)
    width, height, profile = feature["width"], feature["height"], feature["profile"]
    start, end = path[0], path[-1]
    direction = (end - start) / max(np.linalg.norm(end - start), 1e-6)
    along = ((canvas.x - start[0]) * direction[0] + (canvas.y - start[1]) * direction[1])
    along = along / max(np.linalg.norm(end - start), 1e-6)
    fade = 1.0 - _smoothstep(feature.get("until", 1.0) - 0.15, feature.get("until", 1.0), along)
    occlusion = np.ones(canvas.shape, np.float32)
    if profile == "tent":
        bump = np.clip(1.0 - distance / width, 0.0, 1.0)
    elif profile == "ridge":
        bump = 0.5 + 0.5 * np.cos(np.pi * np.clip(distance / width, 0.0, 1.0))
    elif profile == "seam":  # a pinched groove with the fabric puffed up on either side
        bump = np.sin(np.pi * np.clip(distance / (2 * width), 0.0, 1.0))
        bump = bump - 0.6 * (distance < width * 0.25)
        stitch = np.abs(distance - width * 0.9) < 0.006
        dashes = np.mod((canvas.y + canvas.x * 0.2) / 0.035, 1.0) < 0.55
        occlusion -= 0.3 * (stitch & dashes)
    elif profile == "weld":  # a flat pressed band with a knurled pattern
        bump = -(distance < width * 0.5).astype(np.float32)
        knurl = (np.mod((canvas.x + canvas.y) / 0.022, 1.0) < 0.5) ^ (
            np.mod((canvas.x - canvas.y) / 0.022, 1.0) < 0.5)
        occlusion -= (distance < width * 0.5) * (0.06 + 0.08 * knurl)
    else:
        raise ValueError(f"unknown line profile {profile!r}")
    return height * bump * fade * inside, occlusion


def _rim(feature: dict, canvas: _Canvas, dist_in: np.ndarray, inside: np.ndarray):
    """Height and occlusion of a hem or welded band along the outline."""
    grad_x = cv2.Sobel(dist_in, cv2.CV_32F, 1, 0, ksize=3)
    grad_y = cv2.Sobel(dist_in, cv2.CV_32F, 0, 1, ksize=3)
    sideness = _smoothstep(0.35, 0.65, np.abs(grad_x) / (np.abs(grad_x) + np.abs(grad_y) + 1e-6))
    select = {"all": np.ones_like(sideness), "sides": sideness,
              "top_bottom": 1.0 - sideness}[feature["where"]]
    width = feature["width"]
    band = 1.0 - _smoothstep(width * 0.75, width * 1.05, dist_in)
    height = feature["height"] * band * select * inside
    occlusion = np.ones(canvas.shape, np.float32)
    occlusion -= 0.12 * select * np.exp(-(((dist_in - width * 1.05) / 0.012) ** 2))
    if feature.get("stitch"):
        along = canvas.y * sideness + canvas.x * (1.0 - sideness)
        dashes = np.mod(along / 0.035, 1.0) < 0.55
        stitch = np.abs(dist_in - feature["stitch"]) < 0.006
        occlusion -= 0.28 * select * (stitch & dashes)
    if feature.get("weld"):
        knurl = (np.mod((canvas.x + canvas.y) / 0.022, 1.0) < 0.5) ^ (
            np.mod((canvas.x - canvas.y) / 0.022, 1.0) < 0.5)
        occlusion -= band * select * (0.05 + 0.07 * knurl)
    return height, occlusion


def _pleats(feature: dict, inside: np.ndarray, ppcu: float) -> np.ndarray:
    """Height of horizontal pleats placed at fractions ``v`` of the mask's local height.

    The local height is capped (softly) at ``span`` canonical units, so pleats stay nearly level
    across the face while the fabric below the last one opens out over the chin.
    """
    rows = inside.shape[0]
    has = inside.any(axis=0)
    top = np.where(has, inside.argmax(axis=0), 0).astype(np.float32)
    bottom = np.where(has, rows - 1 - inside[::-1].argmax(axis=0), 1).astype(np.float32)
    top, bottom = (cv2.GaussianBlur(a[None, :], (0, 0), 3.0)[0] for a in (top, bottom))
    local = np.maximum(bottom - top, 1.0)
    span = feature.get("span", 1e6) * ppcu
    local = local * span / (local**4 + span**4) ** 0.25  # soft minimum of local and span
    v = (np.arange(rows, dtype=np.float32)[:, None] - top) / local
    height = np.zeros(inside.shape, np.float32)
    width = feature["width"]
    for fold in feature["v"]:
        t = (v - (fold - width)) / width
        height += feature["depth"] * np.where((t >= 0) & (t <= 1), np.sin(t * np.pi / 2), 0.0)
    return height * inside


def _valve(feature: dict, canvas: _Canvas, centre: np.ndarray):
    """Luminance and alpha of a round exhalation valve, and the shadow it casts."""
    radius = feature["radius"]
    dx, dy = canvas.x - centre[0], canvas.y - centre[1]
    r = np.sqrt(dx**2 + dy**2) / radius
    alpha = np.clip((1.0 - r) * radius * canvas.ppcu + 0.5, 0.0, 1.0)
    nz = np.sqrt(np.clip(1.0 - 0.55 * np.minimum(r, 1.0) ** 2, 0.05, 1.0))
    nx, ny = 0.74 * dx / radius, 0.74 * dy / radius
    lum = 0.35 + 0.6 * np.clip(nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2], 0, 1) / LIGHT[2]
    lum *= 1.0 - 0.35 * np.exp(-(((r - 0.74) / 0.05) ** 2))  # groove between rim and cap
    angle = np.arctan2(dy, dx)
    slots = (np.mod(angle / (2 * np.pi) * 10.0, 1.0) < 0.4) & (r > 0.32) & (r < 0.62)
    lum *= 1.0 - 0.45 * slots
    lum *= 1.0 - 0.25 * (np.abs(r - 0.2) < 0.05)
    shifted = np.sqrt((dx - 0.025) ** 2 + (dy - 0.04) ** 2) / radius
    cast = np.clip(1.15 - shifted, 0.0, 1.0) * (1.0 - alpha)
    return lum.astype(np.float32), alpha.astype(np.float32), canvas.blur(cast, 0.025) * 0.5


def render_template(spec: dict, landmarks: np.ndarray, ppcu: float):
    """Render ``spec`` on canonical ``landmarks`` at ``ppcu`` pixels per canonical unit.

    Returns:
        ``(origin, surface, uv, detail)``: the canonical position of the raster's top-left corner
        and the maps described in the module docstring. Rows and columns are multiples of 4, so
        the maps can be halved exactly for smaller levels.
    """
    points = resolve_points(spec["points"], landmarks)
    outline = sample_curve([points[n] for n, _ in spec["outline"]],
                           [t for _, t in spec["outline"]], closed=True, per_segment=24)
    origin = outline.min(axis=0) - MARGIN
    size = outline.max(axis=0) + MARGIN - origin
    rows, cols = (int(np.ceil(size[1] * ppcu / 4)) * 4, int(np.ceil(size[0] * ppcu / 4)) * 4)
    canvas = _Canvas(origin, (rows, cols), ppcu)
    rows, cols = canvas.shape

    big = np.zeros((rows * SUPERSAMPLE, cols * SUPERSAMPLE), np.uint8)
    cv2.fillPoly(big, [canvas.to_pixels(outline, SUPERSAMPLE)], 255, cv2.LINE_8, shift=4)
    alpha = cv2.resize(big, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    inside = (alpha >= 0.5).astype(np.uint8)
    dist_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5) / ppcu
    surface = spec["surface"]

    # Height field: wrap around the face, roll under the chin, inflate away from the edges.
    height = -surface["curvature"] * canvas.x**2 - 0.3 * np.maximum(canvas.y - 1.25, 0.0) ** 2
    radius = surface["pillow_radius"]
    inflation = np.sqrt(1.0 - (1.0 - np.minimum(dist_in / radius, 1.0)) ** 2)
    height = height + surface["pillow"] * inflation
    height, occlusion, detail = _features(spec, points, canvas, height, inside, dist_in)
    height = canvas.blur(height.astype(np.float32), 0.008)
    grad_y, grad_x = np.gradient(height * ppcu)
    shade, specular = _shading(spec, canvas, height, (grad_x, grad_y), occlusion, dist_in)

    # The mask's soft shadow on the skin just outside its edge (light from the upper left).
    shift = np.float32([[1, 0, 0.02 * ppcu], [0, 1, 0.035 * ppcu]])
    shadow = cv2.warpAffine(alpha, shift, (cols, rows))
    shadow = canvas.blur(shadow, 0.03) * (1.0 - alpha)

    # Surface (u, v): arc length over the height field, u measured from the face midline.
    u = np.cumsum(np.sqrt(1.0 + grad_x**2), axis=1) / ppcu
    midline = int(np.clip(np.round(-origin[0] * ppcu), 0, cols - 1))
    u = u - u[:, midline:midline + 1]
    v = np.cumsum(np.sqrt(1.0 + grad_y**2), axis=0) / ppcu

    surface_map = np.dstack([alpha, shade, specular, shadow]).astype(np.float32)
    uv = np.dstack([u, v]).astype(np.float32)
    return origin.astype(np.float32), surface_map, uv, detail


def _features(spec: dict, points: dict, canvas: "_Canvas", height: np.ndarray,
              inside: np.ndarray, dist_in: np.ndarray):
    """Seams, rims, pleats, nose clips and valves: ``(height, occlusion, detail)`` with each
    feature's height and occlusion added, and the (luminance, alpha) detail map."""
    ppcu = canvas.ppcu
    rows, cols = canvas.shape
    occlusion = np.ones((rows, cols), np.float32)
    detail_lum = np.zeros((rows, cols), np.float32)
    detail_alpha = np.zeros((rows, cols), np.float32)
    for feature in spec["features"]:
        kind = feature["type"]
        if kind == "line":
            path = sample_curve([points[n] for n in feature["points"]])
            extra, occ = _line_profile(feature, canvas, path, inside)
        elif kind == "rim":
            extra, occ = _rim(feature, canvas, dist_in, inside)
        elif kind == "pleats":
            extra, occ = _pleats(feature, inside, ppcu), 1.0
        elif kind == "clip":
            path = sample_curve([points[n] for n in feature["points"]])
            distance = canvas.distance_to(path) / (feature["width"] * 0.5)
            clip_alpha = np.clip((1.0 - distance) * feature["width"] * 0.5 * ppcu + 0.5, 0, 1)
            metal = (0.62 + 0.38 * (1 - distance**2)) * (clip_alpha > 0)  # rounded metal strip
            detail_lum = np.maximum(detail_lum, metal)
            detail_alpha = np.maximum(detail_alpha, clip_alpha * inside)
            extra, occ = 0.01 * clip_alpha, 1.0
        elif kind == "valve":
            lum, valve_alpha, cast = _valve(feature, canvas, points[feature["centre"]])
            detail_lum = np.where(valve_alpha > 0, lum, detail_lum)
            detail_alpha = np.maximum(detail_alpha, valve_alpha)
            extra, occ = 0.0, 1.0 - cast
        else:
            raise ValueError(f"unknown feature type {kind!r} in template {spec['name']!r}")
        height = height + extra
        occlusion = occlusion * occ
    return height, occlusion, np.dstack([detail_lum, detail_alpha]).astype(np.float32)


def _shading(spec: dict, canvas: "_Canvas", height: np.ndarray, gradient, occlusion,
             dist_in: np.ndarray):
    """Lambert plus a faint Blinn highlight, occlusion in creases, darker at the edges, and a
    fixed grain: ``(shade, specular)``."""
    surface = spec["surface"]
    grad_x, grad_y = gradient
    norm = np.sqrt(grad_x**2 + grad_y**2 + 1.0)
    normal = (-grad_x / norm, -grad_y / norm, 1.0 / norm)
    lit = normal[0] * LIGHT[0] + normal[1] * LIGHT[1] + normal[2] * LIGHT[2]
    ambient = surface["ambient"]
    shade = ambient + (1.0 - ambient) * np.clip(lit, 0.0, 1.0) / LIGHT[2]
    half = LIGHT + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    glint = normal[0] * half[0] + normal[1] * half[1] + normal[2] * half[2]
    specular = surface["gloss"] * np.clip(glint, 0.0, 1.0) ** surface["shininess"]
    crease = np.clip((canvas.blur(height, 0.03) - height) / 0.012, 0.0, 1.0)
    shade *= occlusion * (1.0 - 0.25 * crease)
    shade *= 1.0 - surface["edge_dark"] * (1.0 - _smoothstep(0.0, 0.12, dist_in))
    rows, cols = canvas.shape
    noise = np.random.default_rng(zlib.crc32(spec["name"].encode())).standard_normal((rows, cols))
    noise = cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 0.7)
    shade *= 1.0 + surface["grain"] * noise / max(float(noise.std()), 1e-6)
    return shade, specular
