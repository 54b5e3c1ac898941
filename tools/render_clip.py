"""Synthetic video clips for the tests, benchmarks and documentation of `predict` on videos.

The only face used is NASA's public-domain astronaut portrait (``assets/samples/astronaut.jpg``,
Eileen Collins, as shipped by scikit-image): its head and shoulders move and zoom across a
640x480 frame, and a mirrored, recoloured copy (the second face) slides in from the right half
way through. Every frame comes with the true face box of each person, so trackers can be scored
against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ASTRONAUT = Path(__file__).resolve().parents[1] / "maskmtl_cli" / "assets" / "samples" / \
    "astronaut.jpg"
#: The part of the portrait that is pasted (x, y, w, h): head and shoulders.
HEAD_REGION = (120, 10, 220, 260)
#: The face inside the portrait (x, y, w, h), where RetinaFace puts it (tests/test_predict.py).
FACE_BOX = (178, 57, 93, 123)


@dataclass(frozen=True)
class Clip:
    """A rendered clip: RGB frames and, per frame, the true box of each person in view.

    Attributes:
        frames: RGB uint8 (N, H, W, 3).
        fps: Frames per second it is meant to play at.
        truth: Per frame, ``{person: (x, y, w, h)}`` for the people whose face is in view.
    """

    frames: np.ndarray
    fps: float
    truth: list[dict[int, tuple[int, int, int, int]]]


def head_image(mirrored: bool) -> np.ndarray:
    """The astronaut's head and shoulders (``HEAD_REGION``), RGB; ``mirrored``: the second
    "person" of the clips."""
    from PIL import Image

    portrait = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    x, y, w, h = HEAD_REGION
    head = portrait[y:y + h, x:x + w]
    if mirrored:  # another "person": mirrored and a little warmer
        head = np.ascontiguousarray(head[:, ::-1])
        head = np.clip(head.astype(np.float32) * (1.0, 0.96, 0.92), 0, 255).astype(np.uint8)
    return head


def wall(width: int, height: int) -> np.ndarray:
    """A soft grey-blue gradient with a few darker stripes (a wall, not a flat colour)."""
    xs = np.linspace(0.0, 1.0, width)[None, :, None]
    ys = np.linspace(0.0, 1.0, height)[:, None, None]
    base = 150 + 40 * xs - 30 * ys + np.array([0.0, 5.0, 15.0])
    stripes = 12 * (np.sin(xs * 40) > 0.9)
    return np.clip(base - stripes, 0, 255).astype(np.uint8)


def paste_head(frame: np.ndarray, head: np.ndarray, scale: float, left: float, top: float):
    """Paste ``head`` scaled by ``scale`` with its top-left at (left, top); the face box in the
    frame (clipped), or None when less than 60% of the face is in the frame."""
    import cv2

    height, width = frame.shape[:2]
    size = (max(1, round(head.shape[1] * scale)), max(1, round(head.shape[0] * scale)))
    scaled = cv2.resize(head, size, interpolation=cv2.INTER_AREA if scale < 1 else
                        cv2.INTER_LINEAR)
    x0, y0 = round(left), round(top)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(width, x0 + size[0]), min(height, y0 + size[1])
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    frame[fy0:fy1, fx0:fx1] = scaled[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    bx, by, bw, bh = FACE_BOX
    face = [x0 + (bx - HEAD_REGION[0]) * scale, y0 + (by - HEAD_REGION[1]) * scale,
            bw * scale, bh * scale]
    cx0, cy0 = max(0.0, face[0]), max(0.0, face[1])
    cx1, cy1 = min(width, face[0] + face[2]), min(height, face[1] + face[3])
    if (cx1 - cx0) * (cy1 - cy0) < 0.6 * face[2] * face[3]:
        return None
    return tuple(int(round(v)) for v in (cx0, cy0, cx1 - cx0, cy1 - cy0))


def astronaut_clip(seconds: float = 3.0, fps: float = 30.0, width: int = 640, height: int = 480,
                   second_face: bool = True) -> Clip:
    """The astronaut moving left to right and zooming in (scale 0.55 to 0.95), with a mirrored
    copy (scale 0.85) sliding in from the right edge half way through (``second_face``).

    Deterministic: the same arguments give the same frames.
    """
    count = int(round(seconds * fps))
    heads = (head_image(False), head_image(True))
    background = wall(width, height)
    frames = np.empty((count, height, width, 3), np.uint8)
    truth = []
    for index in range(count):
        t = index / max(count - 1, 1)
        frame = background.copy()
        boxes = {}
        scale = 0.55 + 0.4 * t
        box = paste_head(frame, heads[0], scale, 10 + 180 * t, 40 + 30 * np.sin(2 * np.pi * t))
        if box is not None:
            boxes[0] = box
        if second_face and t >= 0.5:
            enter = min(1.0, (t - 0.5) / 0.25)  # slides in over a quarter of the clip
            box = paste_head(frame, heads[1], 0.85, width - 200 * enter, 210)
            if box is not None:
                boxes[1] = box
        frames[index] = frame
        truth.append(boxes)
    return Clip(frames, fps, truth)


def write_clip(path: Path, frames: np.ndarray, fps: float, fourcc: str = "mp4v") -> Path:
    """Write RGB frames as a video OpenCV can read back (``mp4v`` in .mp4, ``MJPG`` in .avi)."""
    import cv2

    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path} with {fourcc}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _covered(box: tuple[int, int, int, int], cover: tuple[int, int, int, int]) -> float:
    """The fraction of ``box`` that ``cover`` hides (both x, y, w, h)."""
    x0, y0 = max(box[0], cover[0]), max(box[1], cover[1])
    x1, y1 = min(box[0] + box[2], cover[0] + cover[2]), min(box[1] + box[3], cover[1] + cover[3])
    return max(0, x1 - x0) * max(0, y1 - y0) / max(1, box[2] * box[3])


def crossing_clip(seconds: float = 3.0, fps: float = 30.0, width: int = 640,
                  height: int = 480) -> Clip:
    """Two faces crossing: the astronaut walks left to right, the mirrored copy right to left
    a little lower and in front, hiding her face for a moment in the middle of the clip."""
    count = int(round(seconds * fps))
    heads = (head_image(False), head_image(True))
    background = wall(width, height)
    frames = np.empty((count, height, width, 3), np.uint8)
    truth = []
    scale = 0.6
    head_w, head_h = (round(side * scale) for side in HEAD_REGION[2:])
    for index in range(count):
        t = index / max(count - 1, 1)
        frame = background.copy()
        boxes = {}
        box = paste_head(frame, heads[0], scale, -60 + (width - 40) * t, 90)
        front_left, front_top = width - 80 - (width - 40) * t, 130
        front = paste_head(frame, heads[1], scale, front_left, front_top)
        hidden = (round(front_left), round(front_top), head_w, head_h)
        if box is not None and _covered(box, hidden) < 0.4:
            boxes[0] = box
        if front is not None:
            boxes[1] = front
        frames[index] = frame
        truth.append(boxes)
    return Clip(frames, fps, truth)


def main() -> None:
    """Write the test clip, or take one frame of a video as a PNG (docs/predict.md)::

        python -m tools.render_clip clip.mp4
        python -m tools.render_clip --frame 80 annotated/clip.mp4 docs/predict_video_frame.png
    """
    import argparse

    import cv2

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="CLIP, or VIDEO PNG with --frame")
    parser.add_argument("--frame", type=int, help="take this frame of VIDEO into PNG")
    args = parser.parse_args()
    if args.frame is None:
        clip = astronaut_clip()
        write_clip(args.paths[0], clip.frames, clip.fps)
        return
    capture = cv2.VideoCapture(str(args.paths[0]))
    capture.set(cv2.CAP_PROP_POS_FRAMES, args.frame)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"{args.paths[0]} has no frame {args.frame}")
    cv2.imwrite(str(args.paths[1]), frame)


if __name__ == "__main__":
    main()
