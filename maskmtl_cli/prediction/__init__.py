"""Prediction on photos: face detection, UTKFace-style alignment, attributes, Grad-CAM.

The entry point for Python users is ``predict_image``::

    from maskmtl_cli.prediction import predict_image, read_image
    records = predict_image(read_image("photo.jpg"), "runs/train")

Heavy libraries (TensorFlow, Keras, OpenCV, dlib) load on first use, not on import.
"""

__all__ = ["FaceRecord", "predict_image", "read_image"]


def __getattr__(name: str):
    """``FaceRecord``, ``predict_image`` and ``read_image`` from ``prediction.predict``, imported
    on first use: the CLI reads ``prediction.config`` for its help without loading numpy."""
    if name in __all__:
        from maskmtl_cli.prediction import predict

        return getattr(predict, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
