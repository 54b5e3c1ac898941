"""dlib and its model files, each loaded at most once per process.

The one home of dlib's HOG and CNN face detectors and its 68-point shape predictor, used by
``faces.landmarks`` (``maskmtl mask``) and ``faces.detection`` (``maskmtl predict --detector
hog|cnn``). The model files come from the ``face-recognition-models`` package.
"""

from __future__ import annotations

import functools

from maskmtl_cli.errors import ModelError


def import_dlib():
    """The ``dlib`` module; ModelError saying how to install it when it is missing."""
    try:
        import dlib
    except ImportError as error:  # pragma: no cover - dlib is a hard dependency
        raise ModelError(
            f"dlib is not importable ({error}). Install it with `pip install dlib-bin`."
        ) from None
    return dlib


def _model_file(kind: str) -> str:
    try:
        import face_recognition_models as models
    except ImportError:  # pragma: no cover - a hard dependency
        raise ModelError(
            "The dlib model files are missing: install them with "
            "`pip install face-recognition-models`."
        ) from None
    locate = {
        "predictor": models.pose_predictor_model_location,
        "cnn": models.cnn_face_detector_model_location,
    }[kind]
    return locate()


def _load(kind: str, build_name: str, what: str):
    """dlib's ``build_name`` on the model file of ``kind``; ModelError naming ``what``."""
    build = getattr(import_dlib(), build_name)
    path = _model_file(kind)
    try:
        return build(path)
    except RuntimeError as error:
        raise ModelError(f"Cannot load the {what} {path}: {error}. "
                         "Reinstall face-recognition-models.") from None


@functools.cache
def shape_predictor():
    """dlib's 68-point shape predictor (about 1 s to load; cached per process)."""
    return _load("predictor", "shape_predictor", "68-point shape predictor")


@functools.cache
def hog_detector():
    """dlib's HOG frontal face detector (cached per process)."""
    return import_dlib().get_frontal_face_detector()


@functools.cache
def cnn_detector():
    """dlib's CNN (MMOD) face detector (cached per process)."""
    return _load("cnn", "cnn_face_detection_model_v1", "CNN face detector")
