"""The trained-model interface shared by `train`, `eval` and `predict`.

A maskmtl model takes one input named ``image`` of shape ``(size, size, C)`` (C=1 grayscale,
C=3 RGB), float32 pixel values in 0..255 (rescaling happens inside the model), and gives a dict
of outputs, one per task (``maskmtl_cli.tasks``; ``model_schema`` says how a model's tasks are
found), for example:

- ``"age"``: ``(N, 1)`` age in years,
- ``"gender"``: ``(N, 1)`` probability that the face is female,
- ``"race"``: ``(N, 5)`` class probabilities in ``RACE_NAMES`` order,
- any other classification task: ``(N, K)`` probabilities of its classes; any other regression
  task: ``(N, 1)`` in its label's units,
- ``"segmentation"`` (optional): ``(N, size, size, 1)`` probability that a pixel is masked.

It comes as a Keras 3 ``.keras`` file (the training format; needed for Grad-CAM) and as an
``.onnx`` file of the same network, which ONNX Runtime runs for ``predict`` and ``eval``
(several times faster than Keras on a CPU, and without importing TensorFlow). A run folder
written by ``maskmtl train`` (``runs/train``, ``runs/train2``, ...) holds both, ``best.keras``
and ``best.onnx``, next to ``config.json``, ``tasks.json``, ``history.csv``, ``curves.png``
and ``summary.json``. A ``.keras`` file without an up-to-date ``.onnx`` beside it is exported once
into the cache folder (a few seconds) and the copy is reused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskmtl_cli.errors import InputError, ModelError
from maskmtl_cli.model_schema import (  # noqa: F401  (re-exported: the model interface)
    check_contract,
    check_keras_model,
    has_segmentation,
    read_task_file,
    remember_keras_tasks,
    task_specs,
)
from maskmtl_cli.onnx_model import OnnxModel
from maskmtl_cli.runs import (  # noqa: F401  (re-exported: the model interface)
    ModelFiles,
    latest_run,
    resolve_model_files,
    resolve_model_path,
    run_config,
)
from maskmtl_cli.schema import ENGINES
from maskmtl_cli.tasks import SEGMENTATION

if TYPE_CHECKING:  # pragma: no cover
    import keras


def load_model(path: str | Path, engine: str = "onnx") -> "keras.Model | OnnxModel":
    """Load a maskmtl model for inference (not compiled).

    Args:
        path: A run folder or a ``.keras`` / ``.onnx`` file (see ``resolve_model_files``).
        engine: ``"onnx"`` runs the ``.onnx`` file with ONNX Runtime (a ``.keras`` file with no
            current ``.onnx`` beside it is exported once into the cache folder); ``"keras"``
            loads the ``.keras`` file with Keras (needed for gradients, e.g. Grad-CAM).

    Returns:
        The model (a ``keras.Model`` or an ``OnnxModel``, which offers the same
        ``input_shape``, ``output_names`` and ``predict_on_batch``), checked against the input
        and output contract in the module docstring.

    Raises:
        InputError: Unknown engine.
        ModelError: The file is missing, corrupt, written by an incompatible version, or not a
            maskmtl model; or the engine needs a file format the model lacks.
    """
    if engine not in ENGINES:
        raise InputError(f"Unknown engine '{engine}'. Choose one of: {', '.join(ENGINES)}.")
    files = resolve_model_files(path)
    if engine == "onnx":
        onnx_path = files.onnx if files.onnx_is_current() else _cached_export(files.keras)
        model = OnnxModel(onnx_path)
        check_contract(model.input_shape, model.output_names, model.output_widths,
                       model.output_ranks, model.task_specs, onnx_path)
        return model
    if files.keras is None:
        raise ModelError(f"'{files.onnx}' is an ONNX file, which --engine keras (and --cam) "
                         "cannot run: pass the .keras model it was exported from, or use "
                         "--engine onnx.")
    from maskmtl_cli.backend import import_keras_quietly
    from maskmtl_cli.extras import KERAS_PACKAGES, require_extra

    require_extra("train", "Running a .keras model (--engine keras, --cam)", KERAS_PACKAGES)
    keras = import_keras_quietly()  # without TensorFlow's absl/CUDA start-up lines on stderr
    import maskmtl_cli.models  # noqa: F401  (registers NonLocalBlock so it deserializes)

    try:
        model = keras.saving.load_model(files.keras, compile=False)
    except Exception as error:  # Keras raises many types for corrupt or foreign files.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"Cannot load model '{files.keras}': {reason[:300]}. The file may be truncated or "
            "written by an incompatible Keras version; retrain with `maskmtl train` or pass "
            "another model."
        ) from None
    found = read_task_file(files.keras.parent)
    if found is not None:
        remember_keras_tasks(model, found[0])
    check_keras_model(model, files.keras)
    return model


def onnx_cache_dir() -> Path:
    """Where ``.keras`` models without an ``.onnx`` beside them are exported to."""
    from maskmtl_cli.io import default_cache_dir

    return default_cache_dir() / "onnx"


def _cached_export(keras_path: Path) -> Path:
    """The cached ONNX export of a ``.keras`` file, made now if it does not exist yet."""
    digest = hashlib.sha1(keras_path.read_bytes()).hexdigest()[:20]
    target = onnx_cache_dir() / f"{keras_path.stem}-{digest}.onnx"
    if target.is_file():
        return target
    from maskmtl_cli.extras import EXPORT_PACKAGES, require_extra

    require_extra("train", f"'{keras_path}' has no up-to-date .onnx beside it: exporting it",
                  EXPORT_PACKAGES)
    from maskmtl_cli.models.export import export_keras_file

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f"'{keras_path}' has no .onnx beside it and the cache folder "
                         f"{target.parent} cannot be created ({error.strerror}). Set "
                         "MASKMTL_CACHE_DIR to a writable folder, or use --engine keras.") from None
    export_keras_file(keras_path, target)
    return target


def input_spec(model: "keras.Model") -> tuple[int, str]:
    """The image size and colour mode a model expects.

    Args:
        model: A loaded maskmtl model.

    Returns:
        ``(size, color_mode)`` with color_mode ``"gray"`` (1 channel) or ``"rgb"`` (3 channels).
    """
    _, size, _, channels = model.input_shape
    return int(size), "gray" if channels == 1 else "rgb"


def model_tasks(model: "keras.Model") -> list[str]:
    """The names of the tasks a model predicts, in order (not ``segmentation``)."""
    return [spec.name for spec in task_specs(model)]


def predict_arrays(
    model: "keras.Model",
    images: np.ndarray,
    batch_size: int = 256,
    flip: bool = False,
    segmentation: bool = False,
) -> dict[str, np.ndarray]:
    """Run a model over in-memory images.

    Args:
        model: A loaded maskmtl model.
        images: uint8 (or 0..255 float) array of shape ``(N, size, size, C)`` matching
            ``input_spec(model)``; grayscale may also be ``(N, size, size)``.
        batch_size: Images per forward pass.
        flip: Also run on the horizontally flipped images and average the two predictions
            (test-time augmentation; a flipped mask is flipped back first).
        segmentation: Also return the ``segmentation`` output, when the model has one.

    Returns:
        A dict with the model's tasks: ``age`` (N,) years, ``gender`` (N,) probability of female,
        ``race`` (N, 5) class probabilities, other tasks (N,) values or (N, K) probabilities;
        with ``segmentation``, ``segmentation`` (N, size, size) probabilities; all float32.

    Raises:
        InputError: The images do not match the model's input size or channels.
    """
    size, color_mode = input_spec(model)
    channels = 1 if color_mode == "gray" else 3
    images = np.asarray(images)
    if images.ndim == 3 and channels == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (size, size, channels):
        raise InputError(
            f"Images of shape {images.shape[1:]} do not fit this model, which expects "
            f"({size}, {size}, {channels}) ({color_mode}, {size}x{size}). Load them with "
            f"size={size} and color_mode='{color_mode}'."
        )
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1; got {batch_size}.")
    widths = {spec.name: spec.output_width for spec in task_specs(model)}
    if segmentation and has_segmentation(model):
        widths[SEGMENTATION] = None
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in widths}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype("float32")
        outputs = _forward(model, batch)
        if flip:
            flipped = _forward(model, np.ascontiguousarray(batch[:, :, ::-1, :]))
            if SEGMENTATION in flipped:
                flipped[SEGMENTATION] = flipped[SEGMENTATION][:, :, ::-1]
            outputs = {name: (outputs[name] + flipped[name]) / 2.0 for name in widths}
        for name in widths:
            chunks[name].append(outputs[name])
    results = {}
    for name, width in widths.items():
        if chunks[name]:
            values = np.concatenate(chunks[name]).astype("float32")
        else:
            values = np.zeros((0, size, size, 1) if width is None else (0, width), "float32")
        results[name] = values[..., 0] if width in (1, None) else values
    return results


def _forward(model: "keras.Model", batch: np.ndarray) -> dict[str, np.ndarray]:
    """One inference pass over a float32 batch, as numpy arrays keyed by task."""
    outputs = model.predict_on_batch(batch)
    if not isinstance(outputs, dict):  # A single-output model may return a bare array.
        outputs = {model.output_names[0]: outputs}
    return {task: np.asarray(value, dtype="float32") for task, value in outputs.items()}
