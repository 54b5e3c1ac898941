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
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskmtl_cli.errors import InputError, ModelError
from maskmtl_cli.model_files import (  # noqa: F401  (re-exported: the model interface)
    BEST_MODEL,
    BEST_ONNX,
    RUN_CONFIG,
    ModelFiles,
    latest_run,
    resolve_model_files,
    resolve_model_path,
    run_config,
)
from maskmtl_cli.model_schema import (
    check_contract,
    read_task_file,
    specs_from_metadata,
    specs_from_outputs,
)
from maskmtl_cli.schema import ENGINES
from maskmtl_cli.tasks import SEGMENTATION, UTKFACE_TASK_NAMES, TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: UTKFace's tasks, in canonical order (``maskmtl_cli.tasks``).
MODEL_TASKS = UTKFACE_TASK_NAMES
#: Tasks of loaded Keras models, read from the tasks.json beside their files.
_KERAS_TASKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class OnnxModel:
    """A maskmtl model run by ONNX Runtime, with the interface the rest of the code uses.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; None lets ONNX Runtime use every core.

    Attributes:
        input_shape: ``(None, size, size, channels)``.
        output_names: The model's outputs, in the file's order.
        output_widths: Width of each output.
        output_ranks: Rank of each output (4 for ``segmentation``).
        task_specs: The model's tasks, from the file's metadata or its outputs.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else ""
            raise ModelError(
                f"Cannot load model '{self.path}': not a readable ONNX file ({reason}). It may "
                "be truncated; export it again with `maskmtl train` or pass another model."
            ) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"'{self.path}' has {len(inputs)} inputs; a maskmtl model has 1. "
                             "Use a model trained with `maskmtl train`.")
        self._input_name = inputs[0].name
        shape = inputs[0].shape
        self.input_shape = (None, *(d if isinstance(d, int) else None for d in shape[1:]))
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.output_widths = {output.name: output.shape[-1] if output.shape else None
                              for output in self.session.get_outputs()}
        self.output_ranks = {output.name: len(output.shape or ())
                             for output in self.session.get_outputs()}
        found = specs_from_metadata(self.session.get_modelmeta().custom_metadata_map or {})
        self.task_specs = found[0] if found else specs_from_outputs(self.output_names,
                                                                    self.output_widths)

    def predict_on_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for one float32 batch ``(N, size, size, C)``, keyed by output name."""
        values = self.session.run(None, {self._input_name: np.ascontiguousarray(batch, "float32")})
        return dict(zip(self.output_names, values))


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
    from maskmtl_cli.training.backend import import_keras_quietly

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
        _KERAS_TASKS[model] = found[0]
    check_keras_model(model, files.keras)
    return model


def check_keras_model(model: "keras.Model", model_path: Path, specs=None) -> None:
    """ModelError unless a loaded Keras model has the maskmtl input and output layout.

    Args:
        model: The model.
        model_path: Named in messages.
        specs: Its tasks; None uses ``task_specs(model)``.
    """
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ModelError(f"'{model_path}' has {len(inputs)} inputs; a maskmtl model has 1. "
                         "Use a model trained with `maskmtl train`.")
    names = list(getattr(model, "output_names", None) or [])
    widths = {name: output.shape[-1] for name, output in zip(names, model.outputs)}
    ranks = {name: len(output.shape) for name, output in zip(names, model.outputs)}
    check_contract(tuple(model.input_shape), names, widths, ranks,
                   task_specs(model) if specs is None else specs, model_path)


def task_specs(model) -> tuple[TaskSpec, ...]:
    """The tasks of a loaded model, in output order (see ``model_schema``)."""
    specs = getattr(model, "task_specs", None)
    if specs is None:
        specs = _KERAS_TASKS.get(model) if _is_weakrefable(model) else None
    if specs is None:
        names = list(getattr(model, "output_names", None) or [])
        widths = getattr(model, "output_widths", None) or {
            name: output.shape[-1] for name, output in zip(names, model.outputs)}
        specs = specs_from_outputs(names, widths)
    return tuple(specs)


def has_segmentation(model) -> bool:
    """Whether the model has the mask-segmentation output."""
    return SEGMENTATION in list(getattr(model, "output_names", None) or [])


def _is_weakrefable(model) -> bool:
    try:
        weakref.ref(model)
    except TypeError:
        return False
    return True


def onnx_cache_dir() -> Path:
    """Where ``.keras`` models without an ``.onnx`` beside them are exported to."""
    from maskmtl_cli.data.dataset import default_cache_dir

    return default_cache_dir() / "onnx"


def _cached_export(keras_path: Path) -> Path:
    """The cached ONNX export of a ``.keras`` file, made now if it does not exist yet."""
    digest = hashlib.sha1(keras_path.read_bytes()).hexdigest()[:20]
    target = onnx_cache_dir() / f"{keras_path.stem}-{digest}.onnx"
    if target.is_file():
        return target
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
