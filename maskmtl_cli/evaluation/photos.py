"""``maskmtl eval --detect``: score a model on labelled photos, not on aligned crops.

Each manifest image is an ordinary photo. Its faces are found and aligned exactly as
``maskmtl predict`` does (same detector, ``min_face``, alignment and model input), and the
largest face is scored against the row's labels. What detection did is summarised for
``metrics.json`` (``detection``): photos, photos with a face, faces found, faces per photo and
seconds per photo; photos where no face was found are listed by name, never dropped silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from maskmtl_cli.data.dataset import SplitArrays, split_arrays
from maskmtl_cli.errors import MaskmtlError

#: Photos without a face named in the progress line (all of them are in metrics.json).
_LISTED = 10


@dataclass
class DetectionSummary:
    """What detection found on the photos of one evaluation.

    Attributes:
        detector: The detector's name.
        min_face: Smallest face searched for, in pixels.
        photos: Photos that were read.
        faces_found: Faces found in them, every face counted.
        seconds: Time spent detecting and aligning.
        no_face: Paths of the photos where no face was found (left out of the metrics).
    """

    detector: str
    min_face: int
    photos: int = 0
    faces_found: int = 0
    seconds: float = 0.0
    no_face: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``detection`` section of ``metrics.json``."""
        with_face = self.photos - len(self.no_face)
        return {
            "detector": self.detector, "min_face": self.min_face, "photos": self.photos,
            "photos_with_face": with_face,
            "photos_with_face_share": round(with_face / self.photos, 6) if self.photos else None,
            "faces_found": self.faces_found,
            "faces_per_photo": round(self.faces_found / self.photos, 4) if self.photos else None,
            "seconds_per_photo": round(self.seconds / self.photos, 4) if self.photos else None,
            "scored": "the largest face of each photo with a face",
            "no_face": list(self.no_face),
        }


def largest_face_input(image: np.ndarray, detector: str, min_face: int, size: int,
                       color_mode: str) -> tuple[np.ndarray | None, int]:
    """The model input of the largest face of a photo, and how many faces it holds.

    Uses ``predict``'s own steps (the detector, ``select_faces(..., "largest")``,
    ``align_face``, ``to_model_input``), so a photo scores here as ``maskmtl predict --faces
    largest`` predicts it; only the scored face is aligned.
    """
    from maskmtl_cli.faces.alignment import align_face, to_model_input
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.prediction.predict import select_faces

    faces = get_detector(detector).detect(image, min_face)
    if not faces:
        return None, 0
    largest = select_faces(faces, "largest")[0]
    return to_model_input(align_face(image, largest), size, color_mode), len(faces)


def load_detected(rows, size: int, color_mode: str, detector: str, min_face: int,
                  log) -> tuple[SplitArrays, DetectionSummary]:
    """Model inputs of the largest face of every photo of ``rows``, with their labels.

    Args:
        rows: Manifest rows (DataFrame with ``path`` and label columns).
        size: The model's input side.
        color_mode: ``"gray"`` or ``"rgb"``.
        detector: A detector name (see ``maskmtl predict --detector``).
        min_face: Smallest face to find, in pixels.
        log: Receives progress lines.

    Returns:
        The arrays of the photos with a face (unreadable photos in ``failures``) and the
        detection summary.
    """
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.prediction.inputs import read_image

    get_detector(detector)  # built before the clock starts, as predict does
    summary = DetectionSummary(detector, min_face)
    images, kept, failures = [], [], []
    log(f"Finding faces in {len(rows)} photos ({detector}, min face {min_face} px)")
    for position, path in enumerate(rows["path"].tolist()):
        try:
            image = read_image(path)
        except MaskmtlError as error:
            failures.append((path, str(error)))
            continue
        start = time.perf_counter()
        face, count = largest_face_input(image, detector, min_face, size, color_mode)
        summary.seconds += time.perf_counter() - start
        summary.photos += 1
        summary.faces_found += count
        if face is None:
            summary.no_face.append(path)
        else:
            images.append(face)
            kept.append(position)
    _log_summary(summary, log)
    channels = 1 if color_mode == "gray" else 3
    stacked = np.stack(images) if images else np.zeros((0, size, size, channels), np.uint8)
    arrays = split_arrays(stacked, rows.iloc[kept], failures)
    return arrays, summary


def _log_summary(summary: DetectionSummary, log) -> None:
    facts = summary.to_dict()
    log(f"Faces found in {facts['photos_with_face']} of {summary.photos} photos "
        f"({summary.faces_found} faces, {facts['faces_per_photo']} per photo, "
        f"{facts['seconds_per_photo']} s per photo); the largest face of each is scored.")
    if summary.no_face:
        listed = ", ".join(summary.no_face[:_LISTED])
        more = len(summary.no_face) - _LISTED
        log(f"No face found in {len(summary.no_face)} photos, left out of the metrics: {listed}"
            + (f"; and {more} more (all listed in metrics.json)" if more > 0 else ""))
