"""Prediction on photos: face detection, UTKFace-style alignment, attributes, Grad-CAM.

The entry point for Python users is ``predict_image``::

    from maskmtl_cli.prediction import predict_image, read_image
    records = predict_image(read_image("photo.jpg"), "runs/train")

Heavy libraries (TensorFlow, Keras, OpenCV, dlib) load on first use, not on import.
"""

from maskmtl_cli.prediction.predict import FaceRecord, predict_image, read_image

__all__ = ["FaceRecord", "predict_image", "read_image"]
