"""Synthetic 68-point landmarks for tests, timings and documentation.

The canonical face of ``face_frame.json`` has a depth per landmark, so it can be turned (yaw),
nodded (pitch) and tilted (roll) in 3D and projected, which gives plausible landmarks for poses
that are hard to find in a small set of real photos.
"""

from __future__ import annotations

import numpy as np

from maskmtl_cli.masking.templates import face_frame

HEAD_CENTRE_DEPTH = -0.9  # the head turns about an axis this far behind the eye line


def synthetic_landmarks(size: int = 200, face_width: float | None = None, yaw: float = 0.0,
                        pitch: float = 0.0, roll: float = 0.0,
                        centre: tuple[float, float] | None = None,
                        mouth_open: float = 0.0) -> np.ndarray:
    """Landmarks (68, 2) of the canonical face posed in a ``size`` x ``size`` image.

    Args:
        size: image side in pixels.
        face_width: jaw width (landmark 0 to 16) before turning; default 0.62 * size, about
            what UTKFace's aligned crops show.
        yaw: head turn in degrees (positive turns the face towards the image right).
        pitch: nod in degrees (positive looks down).
        roll: in-plane tilt in degrees (positive is clockwise on screen).
        centre: image position of the eye-line midpoint; default a UTKFace-like position.
        mouth_open: how far the lower lip and chin drop, in canonical units (0.2 is wide open).
    """
    frame = face_frame()
    points = np.column_stack([frame.landmarks, frame.depth - HEAD_CENTRE_DEPTH])
    if mouth_open:
        drop = np.zeros(68)
        drop[[5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67]] = 1.0
        drop[[4, 12]] = 0.5
        points[:, 1] += mouth_open * drop
    yaw_r, pitch_r, roll_r = np.radians([yaw, pitch, roll])
    turn = np.array([[np.cos(yaw_r), 0, np.sin(yaw_r)], [0, 1, 0],
                     [-np.sin(yaw_r), 0, np.cos(yaw_r)]])
    nod = np.array([[1, 0, 0], [0, np.cos(pitch_r), np.sin(pitch_r)],
                    [0, -np.sin(pitch_r), np.cos(pitch_r)]])
    tilt = np.array([[np.cos(roll_r), -np.sin(roll_r), 0], [np.sin(roll_r), np.cos(roll_r), 0],
                     [0, 0, 1]])
    posed = points @ (tilt @ nod @ turn).T
    width = 0.62 * size if face_width is None else face_width
    centre = (size * 0.5, size * 0.42) if centre is None else centre
    return posed[:, :2] * (width / 2.0) + np.asarray(centre, dtype=np.float64)
