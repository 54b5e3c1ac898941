"""Render the documentation figures: every template on the public-domain astronaut photo.

Writes ``docs/masks_gallery.png`` (all templates, then a row of colours and textures) and
``docs/masks_frame.png`` (the canonical face, its warp mesh and each template's outline). Only
the shipped NASA portrait is used, never UTKFace images. Needs dlib and face_recognition_models
(for the landmarks)::

    python -m tools.render_gallery docs/
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from maskmtl_cli.masking.overlay import apply_mask
from maskmtl_cli.masking.preview import captioned_grid
from maskmtl_cli.masking.render_raster import resolve_points, sample_curve
from maskmtl_cli.masking.style import TEMPLATE_NAMES, choose_style
from maskmtl_cli.masking.templates import face_frame, template_spec

SAMPLE = (Path(__file__).resolve().parent.parent / "maskmtl_cli" / "assets" / "samples"
          / "astronaut.jpg")
LOOKS = [("surgical", "light-blue", "plain"), ("n95", "white", "plain"), ("kn95", "black", "plain"),
         ("cloth", "navy", "floral"), ("valved", "white", "plain"), ("duckbill", "mint", "plain"),
         ("surgical", "white", "plain"), ("cloth", "red", "check"),
         ("cloth", "olive", "camouflage"), ("surgical", "pink", "dots"),
         ("kn95", "white", "stripes"), ("cloth", "grey", "weave"), ("kn95", "#d4a017", "plain"),
         ("cloth", "black", "plain")]


def astronaut_landmarks(image: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks of the largest face in ``image`` (RGB)."""
    import dlib
    import face_recognition_models

    faces = dlib.get_frontal_face_detector()(image, 1)
    face = max(faces, key=lambda rect: rect.width() * rect.height())
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return np.array([[p.x, p.y] for p in predictor(image, face).parts()], dtype=np.float64)


def gallery(upscale: int = 2) -> np.ndarray:
    """The gallery sheet: the photo enlarged ``upscale`` times (for detail), cropped to the head."""
    image = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    landmarks = astronaut_landmarks(image)
    image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    landmarks = (landmarks + 0.5) * upscale - 0.5
    centre = landmarks[[0, 16, 8, 27]].mean(axis=0)
    half = int(np.linalg.norm(landmarks[16] - landmarks[0]) * 0.85)
    x, y = np.round(centre).astype(int)
    crop = (slice(max(y - half, 0), y + half), slice(max(x - half, 0), x + half))
    items = [(image[crop], "input (NASA, public domain)")]
    for index, (template, colour, texture) in enumerate(LOOKS):
        style = choose_style(np.random.default_rng(index), template, colour=colour, texture=texture)
        masked, _ = apply_mask(image, landmarks, style, np.random.default_rng(index))
        caption = f"{template} {style.colour_name}"
        caption += f" {style.texture}" if style.texture != "plain" else ""
        items.append((masked[crop], caption))
    return captioned_grid(items, columns=5, cell=240)


def frame_figure(scale: int = 150) -> np.ndarray:
    """The canonical face, the warp mesh and every template's outline and straps."""
    frame = face_frame()
    offset = np.array([1.35, 0.65])
    size = (int(2.7 * scale), int(2.55 * scale))

    def pixels(points):
        return np.round((np.asarray(points) + offset) * scale * 16).astype(np.int32)

    items = []
    for name in TEMPLATE_NAMES:
        canvas = np.full((size[1], size[0], 3), 250, np.uint8)
        for triangle in frame.triangles:
            cv2.polylines(canvas, [pixels(frame.vertices[triangle])], True, (205, 205, 210), 1,
                          cv2.LINE_AA, 4)
        for point in frame.landmarks:
            cv2.circle(canvas, tuple(pixels(point)), 3 * 16, (200, 40, 40), -1, cv2.LINE_AA, 4)
        spec = template_spec(name)
        points = resolve_points(spec["points"], frame.landmarks)
        outline = sample_curve([points[n] for n, _ in spec["outline"]],
                               [t for _, t in spec["outline"]], closed=True, per_segment=24)
        cv2.polylines(canvas, [pixels(outline)], True, (30, 80, 200), 2, cv2.LINE_AA, 4)
        for loop in spec["loops"]:
            path = sample_curve([points[n] for n in loop["points"]])
            cv2.polylines(canvas, [pixels(path)], False, (30, 150, 60), 2, cv2.LINE_AA, 4)
        for feature in spec["features"]:
            if "points" in feature:
                path = sample_curve([points[n] for n in feature["points"]])
                cv2.polylines(canvas, [pixels(path)], False, (170, 60, 170), 1, cv2.LINE_AA, 4)
        items.append((canvas, name))
    return captioned_grid(items, columns=3, cell=300)


def main(out_dir: Path) -> list[Path]:
    """Write both figures into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, figure in (("masks_gallery.png", gallery()), ("masks_frame.png", frame_figure())):
        path = out_dir / filename
        cv2.imwrite(str(path), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(written_path)
