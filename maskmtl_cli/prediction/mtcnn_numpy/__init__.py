"""MTCNN face detection in NumPy, without TensorFlow.

MTCNN (K. Zhang, Z. Zhang, Z. Li, Y. Qiao, "Joint Face Detection and Alignment Using Multitask
Cascaded Convolutional Networks", IEEE Signal Processing Letters 23(10), 2016) is a cascade of
three small CNNs: PNet proposes boxes over an image pyramid, RNet rejects and refines them on
24x24 crops, ONet refines again on 48x48 crops and adds five facial points.

This package is a port of the ``mtcnn`` package 1.0.0 (Iván de Paz Centeno, MIT licence) that
uses the weights shipped in its wheel and reproduces its pipeline step by step (``mtcnn.py``,
``stages/*.py``, ``utils/*.py``), including its quirks: PNet's cell is 11 pixels wide, its NMS
drops a box that overlaps *any* higher-scoring box (suppressed or not), crops are sampled like
``tf.image.crop_and_resize`` with boxes normalised by the image size, and the pyramid uses
TensorFlow's area resize. Only ``importlib.util.find_spec`` is used to locate the package, because
importing ``mtcnn`` imports TensorFlow (6+ s on a small CPU); this package never imports it.

Modules: ``layers`` (weights and the three networks), ``sampling`` (TensorFlow's area resize and
crop-and-resize), ``boxes`` (NMS and box arithmetic) and ``detector`` (the pipeline and
``NumpyMtcnn``).
"""

from maskmtl_cli.prediction.mtcnn_numpy.boxes import nms
from maskmtl_cli.prediction.mtcnn_numpy.detector import (
    KEYPOINT_KEYS,
    KEYPOINT_ORDER,
    NMS_ONET,
    NMS_PNET_ALL,
    NMS_PNET_PER_SCALE,
    NMS_RNET,
    PNET_INPUT,
    SCALE_FACTOR,
    THRESHOLD_ONET,
    THRESHOLD_PNET,
    THRESHOLD_RNET,
    NumpyMtcnn,
    pyramid_scales,
)
from maskmtl_cli.prediction.mtcnn_numpy.layers import load_weights, mtcnn_weights_dir
from maskmtl_cli.prediction.mtcnn_numpy.sampling import crop_and_resize, resize_area

__all__ = [
    "KEYPOINT_KEYS",
    "KEYPOINT_ORDER",
    "NMS_ONET",
    "NMS_PNET_ALL",
    "NMS_PNET_PER_SCALE",
    "NMS_RNET",
    "PNET_INPUT",
    "SCALE_FACTOR",
    "THRESHOLD_ONET",
    "THRESHOLD_PNET",
    "THRESHOLD_RNET",
    "NumpyMtcnn",
    "crop_and_resize",
    "load_weights",
    "mtcnn_weights_dir",
    "nms",
    "pyramid_scales",
    "resize_area",
]
