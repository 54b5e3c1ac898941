"""The inference graph of a network, and its ONNX export with a parity check against Keras.

``inference_network`` is what ``best.keras`` holds and what is exported: float32, without the
augmentation layers that networks of older runs carried at their input, and without auxiliary
training outputs (``age_distribution``). ``export_onnx`` traces it in inference mode with
TensorFlow and converts it with tf2onnx; ONNX Runtime then runs it in ``predict`` and ``eval``.
The model's tasks (names, kinds, class names; ``maskmtl_cli.model_schema``) go into the ONNX
file's metadata, so the ``.onnx`` file alone tells ``eval`` and ``predict`` what it predicts.
Keras' own ``model.export(format="onnx")`` is not used: it traced our batch-norm layers in
training mode (the exported model's ages were off by up to 51 years).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import ModelError
from maskmtl_cli.io import atomic_path
from maskmtl_cli.model_schema import (
    ONNX_METADATA_KEY,
    TRAINING_ONLY_OUTPUTS,
    read_task_file,
    specs_from_outputs,
)
from maskmtl_cli.tasks import CLASSIFICATION, SEGMENTATION, specs_to_json

#: Largest tolerated difference between ONNX Runtime and Keras at export: years for age,
#: probability for gender and ethnicity (float32 rounding gives about 1e-4 years).
PARITY_TOLERANCE = {"age": 1e-2, "gender": 1e-4, "race": 1e-4, SEGMENTATION: 1e-3}
#: Other outputs: probabilities of classification tasks; regression values relative to the
#: largest one (at least 1), as age's 1e-2 years is at ages near 100.
PROBABILITY_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-4
_OPSET = 17


def inference_network(network):
    """The network for inference: float32, augmentation layers dropped, task outputs only.

    Args:
        network: A functional network from ``build_network`` (or loaded from a run).

    Returns:
        A functional ``keras.Model`` with the same weights, input ``image`` and its outputs but
        ``TRAINING_ONLY_OUTPUTS``. The network itself is returned when it needs no change.
    """
    import keras

    names = list(network.output_names)
    has_augmentation = any(layer.name.startswith("augment_") for layer in network.layers)
    mixed = any(getattr(layer, "dtype_policy", None) is not None
                and layer.dtype_policy.name != "float32" for layer in network.layers)
    if not has_augmentation and not mixed and not set(names) & set(TRAINING_ONLY_OUTPUTS):
        return network

    def clone_layer(layer):
        if layer.name.startswith("augment_"):
            return keras.layers.Identity(name=layer.name)
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(network, clone_function=clone_layer)
    copy.set_weights(network.get_weights())
    outputs = dict(zip(copy.output_names, copy.outputs))
    kept = {name: tensor for name, tensor in outputs.items() if name not in TRAINING_ONLY_OUTPUTS}
    if not kept:  # not a maskmtl network: leave it whole for the caller's contract check
        return copy
    return keras.Model(inputs=copy.inputs, outputs=kept, name=network.name)


def export_onnx(network, path: str | Path, check: bool = True, specs=None) -> dict[str, float]:
    """Write the inference graph of ``network`` as ONNX and check it against Keras.

    Runs in this process on the TensorFlow backend, or in a TensorFlow subprocess from a saved
    ``.keras`` copy on other backends.

    Args:
        network: A functional network (its ``inference_network`` is exported).
        path: The ``.onnx`` file to write (replaced atomically).
        check: Compare ONNX Runtime with Keras on a fixed batch of random images.
        specs: The network's task specs, written into the file's metadata; None reads them
            from the output names and widths (``model_schema.specs_from_outputs``).

    Returns:
        The largest absolute difference per output (empty without ``check``).

    Raises:
        ModelError: The export failed, or ONNX Runtime disagrees with Keras beyond
            ``PARITY_TOLERANCE``.
    """
    import keras

    path = Path(path)
    network = inference_network(network)
    if specs is None:
        names = list(network.output_names)
        specs = specs_from_outputs(names, {name: output.shape[-1]
                                           for name, output in zip(names, network.outputs)})
    if keras.backend.backend() != "tensorflow":
        return _export_in_subprocess(network, path, check, specs)
    with atomic_path(path, suffix=".onnx") as temp:  # kept only if the parity check passes
        _convert(network, temp)
        _write_metadata(temp, specs_to_json(specs, SEGMENTATION in network.output_names))
        differences = check_parity(network, temp, specs=specs) if check else {}
    return differences


def export_keras_file(model_path: str | Path, onnx_path: str | Path,
                      check: bool = True) -> dict[str, float]:
    """Export a saved ``.keras`` model to ONNX (loads it with Keras on TensorFlow).

    The tasks come from the ``tasks.json`` beside ``model_path`` when there is one.
    """
    from maskmtl_cli.backend import import_keras_quietly

    keras = import_keras_quietly()
    import maskmtl_cli.models  # noqa: F401  (registers the custom layers)

    try:
        network = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types for corrupt or foreign files.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelError(f"Cannot load model '{model_path}' to export it to ONNX: {reason}. "
                         "The file may be truncated; retrain it with `maskmtl train` or pass "
                         "another model.") from None
    from maskmtl_cli.model_schema import check_keras_model

    found = read_task_file(Path(model_path).parent)
    specs = found[0] if found else None
    check_keras_model(inference_network(network), Path(model_path), specs)
    return export_onnx(network, onnx_path, check=check, specs=specs)


def _write_metadata(path: Path, text: str) -> None:
    """Store the tasks' JSON as the ONNX file's ``maskmtl_tasks`` metadata entry."""
    import onnx

    model = onnx.load(str(path))
    for entry in list(model.metadata_props):
        if entry.key == ONNX_METADATA_KEY:
            model.metadata_props.remove(entry)
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, text
    onnx.save(model, str(path))


def _convert(network, path: Path) -> None:
    """Trace ``network(inputs, training=False)`` with TensorFlow and convert it with tf2onnx.

    A network with one input gets the ONNX input ``image``; one with several (the unmasking
    network's ``image`` and ``mask``) keeps its inputs' names.
    """
    import tensorflow as tf

    _patch_tf2onnx()
    import tf2onnx

    if len(network.inputs) == 1:
        spec = (tf.TensorSpec((None, *network.input_shape[1:]), tf.float32, name="image"),)
        function = tf.function(lambda image: network(image, training=False),
                               input_signature=spec)
    else:
        names = [tensor.name for tensor in network.inputs]
        spec = tuple(tf.TensorSpec((None, *tensor.shape[1:]), tf.float32, name=name)
                     for name, tensor in zip(names, network.inputs))
        function = tf.function(lambda *tensors: network(dict(zip(names, tensors)),
                                                        training=False), input_signature=spec)
    try:
        tf2onnx.convert.from_function(function, input_signature=spec, opset=_OPSET,
                                      output_path=str(path))
        import onnx

        onnx.checker.check_model(str(path))
    except Exception as error:  # tf2onnx and onnx raise many types
        # tf2onnx writes an operation it cannot convert into the graph as it is; the checker
        # then names it.
        raise ModelError(f"Exporting the model to ONNX failed: {str(error).strip()[:300]}. "
                         "Run predict and eval with --engine keras instead.") from None


def _patch_tf2onnx() -> None:
    """Keras' patch that makes tf2onnx 1.17 work with NumPy 2 (``np.object`` and one pass)."""
    import warnings

    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # a Keras without it: tf2onnx may still work with this NumPy
        return
    with warnings.catch_warnings():  # its probe of np.object warns under NumPy 2
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()


def check_parity(network, onnx_path: Path, images: np.ndarray | None = None,
                 specs=()) -> dict[str, float]:
    """Largest differences between Keras and ONNX Runtime; ModelError beyond the tolerance.

    Args:
        network: The Keras network.
        onnx_path: Its export.
        images: The batch to compare on; None draws 8 random images (seed 0).
        specs: The network's task specs (the kind of each output sets its tolerance).
    """
    from maskmtl_cli.onnx_model import OnnxModel

    if images is None:
        size, channels = network.input_shape[1], network.input_shape[3]
        images = np.random.default_rng(0).uniform(0, 255, (8, size, size, channels))
    images = images.astype("float32")
    expected = network.predict_on_batch(images)
    got = OnnxModel(onnx_path, threads=1).predict_on_batch(images)
    kinds = {spec.name: spec.kind for spec in specs}
    differences = {}
    for name in expected:
        values = np.asarray(expected[name])
        difference = float(np.max(np.abs(values - got[name])))
        differences[name] = difference
        tolerance = parity_tolerance(name, kinds.get(name), values)
        if not difference <= tolerance:
            raise ModelError(
                f"The ONNX export disagrees with Keras on output '{name}' by {difference:.3g} "
                f"(tolerance {tolerance:g}); {onnx_path} was not kept. Report this "
                "with the model's config.json; meanwhile use --engine keras.")
    return differences


def parity_tolerance(name: str, kind: str | None, values: np.ndarray) -> float:
    """``PARITY_TOLERANCE`` for UTKFace's outputs and the mask; else by the task's kind."""
    if name in PARITY_TOLERANCE:
        return PARITY_TOLERANCE[name]
    if kind == CLASSIFICATION:
        return PROBABILITY_TOLERANCE
    return RELATIVE_TOLERANCE * max(1.0, float(np.max(np.abs(values), initial=0.0)))


def _export_in_subprocess(network, path: Path, check: bool, specs) -> dict[str, float]:
    """Save the network (and its tasks.json) and export it from a TensorFlow child process."""
    import json
    import tempfile

    from maskmtl_cli.model_schema import write_task_file

    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "network.keras"
        network.save(saved)
        write_task_file(Path(folder), specs, SEGMENTATION in network.output_names)
        script = ("import json, sys; from maskmtl_cli.models.export import export_keras_file; "
                  "print(json.dumps(export_keras_file(sys.argv[1], sys.argv[2], "
                  "sys.argv[3] == '1')))")
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", script, str(saved), str(path),
                               "1" if check else "0"], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ModelError(f"Exporting the model to ONNX failed: {lines[-1] if lines else '?'}. "
                         "Run predict and eval with --engine keras instead.")
    return json.loads(done.stdout.strip().splitlines()[-1])
