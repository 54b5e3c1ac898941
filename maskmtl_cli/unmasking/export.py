"""ONNX export of the unmasking network, with a parity check against Keras.

The file's metadata entry ``maskmtl_unmask`` (JSON: kind, image size) tells ``unmask`` and
``eval --reconstruction`` that it is an unmasking model and which crop size it works on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import ModelError
from maskmtl_cli.io import atomic_path
from maskmtl_cli.unmasking.config import UNMASK_METADATA_KEY
#: Largest tolerated difference between ONNX Runtime and Keras: grey levels of the face (with a
#: given mask), and the mask's probability.
FACE_TOLERANCE, PROBABILITY_TOLERANCE = 0.5, 1e-3


def export_unmask_file(keras_path: Path, onnx_path: Path, check: bool = True) -> dict:
    """Export a saved unmasking network (``unmask.keras``) to ONNX; the largest differences."""
    from maskmtl_cli.backend import import_keras_quietly

    keras = import_keras_quietly()
    import maskmtl_cli.unmasking.network  # noqa: F401  (registers MaskChoice)

    network = keras.saving.load_model(keras_path, compile=False)
    return export_unmask_onnx(network, onnx_path, check)


def export_unmask_onnx(network, onnx_path: Path, check: bool = True) -> dict:
    """Write ``network`` as ONNX (atomically, only if the parity check passes)."""
    import onnx

    from maskmtl_cli.models.export import _convert

    onnx_path = Path(onnx_path)
    size = int(network.inputs[0].shape[1])
    with atomic_path(onnx_path, suffix=".onnx") as temp:
        _convert(network, temp)
        model = onnx.load(str(temp))
        entry = model.metadata_props.add()
        entry.key = UNMASK_METADATA_KEY
        entry.value = json.dumps({"kind": "unmask", "image_size": size})
        onnx.save(model, str(temp))
        differences = _check_parity(network, temp, size) if check else {}
    return differences


def _check_parity(network, path: Path, size: int) -> dict:
    from maskmtl_cli.unmasking.model import UnmaskModel

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, size, size, 3)).astype("float32")
    given = np.where(rng.random((4, size, size, 1)) < 0.3, 1.0, 0.0).astype("float32")
    given[:2] = -1.0  # the first two: the segmenter's estimate
    expected = network.predict_on_batch({"image": images, "mask": given})
    got = UnmaskModel(path, threads=1).run(images, given)
    # the faces of the given masks; where the mask is estimated, a probability within
    # rounding of 0.5 may fall on either side and move the whole painting around it
    differences = {
        "mask_probability": float(np.max(np.abs(expected["mask_probability"]
                                                - got["mask_probability"]))),
        "face": float(np.max(np.abs(np.asarray(expected["face"])[2:] - got["face"][2:]))),
    }
    if (differences["face"] > FACE_TOLERANCE
            or differences["mask_probability"] > PROBABILITY_TOLERANCE):
        raise ModelError(f"The ONNX export of the unmasking network disagrees with Keras "
                         f"({differences}); {path} was not kept. Report this with the run's "
                         "config.json.")
    return differences
