"""A TensorFlow-free inference runtime for maskmtl ``.keras`` models.

``import tensorflow`` alone takes longer than the whole time budget of ``maskmtl predict`` on a
small CPU, so this package runs trained models with numpy (plus h5py to read the weights). It
reads the Keras 3 ``.keras`` zip directly (``config.json``: the functional graph;
``model.weights.h5``: the variables) and interprets the graph layer by layer in float32, NHWC.
Keras stays the training framework; this is an inference engine for the layers maskmtl networks
use (``SUPPORTED_LAYERS``). Importing it never imports Keras or TensorFlow.

Anything the runtime cannot run exactly (an unknown layer class, an option such as dilation or
``channels_first``, quantised weights, a file that is not a readable ``.keras`` zip) raises
``UnsupportedModelError`` so that callers can fall back to ``keras.saving.load_model``.

Example:

>>> model = load_numpy_model("maskmtl_cli/assets/models/maskmtl_default.keras")  # doctest: +SKIP
>>> model.predict_on_batch(images.astype("float32"))["age"].shape  # doctest: +SKIP
(8, 1)
"""

from maskmtl_cli.runtime.layers import SUPPORTED_LAYERS, UnsupportedModelError
from maskmtl_cli.runtime.model import NumpyModel, TensorSpec, load_numpy_model

__all__ = [
    "SUPPORTED_LAYERS",
    "NumpyModel",
    "TensorSpec",
    "UnsupportedModelError",
    "load_numpy_model",
]
