"""The canonical face frame: an average frontal face in iBUG-68 order and its warp mesh.

``build_templates`` writes this into ``assets/masks/face_frame.json``; at run time the file, not
this module, is read. Canonical units: x to the image right, y down, origin at the eye line on
the face midline, and the jaw width from landmark 0 to landmark 16 is 2. Each landmark also has a
depth (towards the camera), used to pose synthetic faces for tests.
"""

from __future__ import annotations

import cv2
import numpy as np

# Landmark i on the image left mirrors to MIRROR[i] on the image right (midline points map to
# themselves).
MIRROR = list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
MIRROR += [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
MIRROR += [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]

# Image-left half and midline of the canonical face: index -> (x, y, depth towards the camera).
# Proportions of an average adult face, checked against dlib landmarks of public-domain portraits.
_LEFT_FACE = {
    0: (-1.00, 0.00, -0.80), 1: (-0.98, 0.27, -0.72), 2: (-0.94, 0.54, -0.60),
    3: (-0.88, 0.80, -0.45), 4: (-0.78, 1.04, -0.30), 5: (-0.64, 1.26, -0.16),
    6: (-0.48, 1.42, -0.05), 7: (-0.26, 1.55, 0.03), 8: (0.00, 1.60, 0.06),
    17: (-0.84, -0.24, -0.35), 18: (-0.70, -0.36, -0.20), 19: (-0.52, -0.40, -0.10),
    20: (-0.34, -0.38, -0.04), 21: (-0.18, -0.32, 0.00),
    27: (0.00, -0.05, 0.00), 28: (0.00, 0.13, 0.12), 29: (0.00, 0.30, 0.25),
    30: (0.00, 0.48, 0.40), 31: (-0.20, 0.60, 0.17), 32: (-0.10, 0.64, 0.24),
    33: (0.00, 0.66, 0.28),
    36: (-0.66, 0.00, -0.32), 37: (-0.56, -0.07, -0.22), 38: (-0.38, -0.07, -0.16),
    39: (-0.27, 0.01, -0.12), 40: (-0.37, 0.05, -0.16), 41: (-0.55, 0.05, -0.24),
    48: (-0.40, 0.92, 0.02), 49: (-0.26, 0.85, 0.13), 50: (-0.11, 0.82, 0.19),
    51: (0.00, 0.84, 0.21), 57: (0.00, 1.08, 0.18), 58: (-0.12, 1.07, 0.15),
    59: (-0.26, 1.03, 0.09), 60: (-0.34, 0.92, 0.04), 61: (-0.12, 0.90, 0.17),
    62: (0.00, 0.91, 0.19), 66: (0.00, 0.96, 0.18), 67: (-0.12, 0.95, 0.15),
}

# Mesh vertices: jaw, nose and the eye corners and lower lids (so masks stay below the eyes),
# plus one virtual vertex beyond each jaw point (pushed away from the nose tip) so masks can wrap
# under the chin.
MESH_LANDMARKS = list(range(0, 17)) + list(range(27, 36)) + [36, 39, 40, 41, 42, 45, 46, 47]
OUTER_LANDMARKS = list(range(0, 17))
OUTER_CENTRE = 30
OUTER_PUSH = 0.2


def canonical_face() -> np.ndarray:
    """The canonical face as a (68, 3) array of x, y and depth."""
    face = np.zeros((68, 3))
    for index, (x, y, z) in _LEFT_FACE.items():
        face[index] = (x, y, z)
        face[MIRROR[index]] = (-x, y, z)
    return face


def mesh_vertices(landmarks: np.ndarray) -> np.ndarray:
    """Mesh vertex positions (V, 2) for a (68, 2) landmark array."""
    inner = landmarks[MESH_LANDMARKS]
    jaw = landmarks[OUTER_LANDMARKS]
    outer = jaw + OUTER_PUSH * (jaw - landmarks[OUTER_CENTRE])
    return np.concatenate([inner, outer])


def delaunay(points: np.ndarray) -> list[list[int]]:
    """Delaunay triangles of ``points`` as index triples, counter-clockwise in image space."""
    low, high = points.min(0) - 1.0, points.max(0) + 1.0
    scale = 1000.0
    subdiv = cv2.Subdiv2D((0, 0, int((high[0] - low[0]) * scale), int((high[1] - low[1]) * scale)))
    scaled = (points - low) * scale
    for x, y in scaled:
        subdiv.insert((float(x), float(y)))
    triangles = []
    for row in subdiv.getTriangleList():
        corners = row.reshape(3, 2)
        index = [int(np.argmin(((scaled - c) ** 2).sum(1))) for c in corners]
        if max(((scaled[index] - corners) ** 2).sum(1)) > 1e-3:
            continue  # a triangle touching Subdiv2D's outer helper vertices
        a, b, c = points[index]
        if (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) < 0:
            index = [index[0], index[2], index[1]]
        triangles.append(index)
    return sorted(triangles)


def face_frame() -> dict:
    """The face frame file: canonical landmarks, their mirror table and the warp mesh."""
    face = canonical_face()
    vertices = mesh_vertices(face[:, :2])
    return {
        "units": "jaw width (landmark 0 to 16) = 2; x right, y down, origin on the eye line",
        "landmarks": np.round(face[:, :2], 4).tolist(),
        "depth": np.round(face[:, 2], 4).tolist(),
        "mirror": MIRROR,
        "mesh": {"landmarks": MESH_LANDMARKS, "outer_landmarks": OUTER_LANDMARKS,
                 "outer_centre": OUTER_CENTRE, "outer_push": OUTER_PUSH,
                 "triangles": delaunay(vertices)},
    }
