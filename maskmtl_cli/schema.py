"""Names shared by the CLI and the core library: the one home of each, standard library only.

The CLI reads its choices and defaults from here without importing numpy, OpenCV or Keras, so
``maskmtl --help`` stays instant.
"""

from __future__ import annotations

#: Inference engines: ONNX Runtime (default) or Keras.
ENGINES: tuple[str, ...] = ("onnx", "keras")
DEFAULT_ENGINE = "onnx"

#: Face detectors of `maskmtl mask` (dlib's 68 landmarks are then found inside each box):
#: ``auto`` runs RetinaFace only where HOG finds nothing.
MASK_DETECTORS: tuple[str, ...] = ("auto", "hog", "retinaface", "cnn")
DEFAULT_MASK_DETECTOR = "auto"

#: Face detectors of `maskmtl predict`, and what each is good for.
DETECTORS: tuple[str, ...] = ("retinaface", "mtcnn", "hog", "cnn")
DEFAULT_DETECTOR = "retinaface"
DETECTOR_HELP = {
    "retinaface": "masked, turned and small faces, fast (default)",
    "mtcnn": "the earlier default, on TensorFlow: slower, misses more masked faces",
    "hog": "dlib HOG: bare frontal faces only",
    "cnn": "dlib CNN: bare faces, slow on a CPU",
}
