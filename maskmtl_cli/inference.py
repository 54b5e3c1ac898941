"""The trained-model interface shared by `train`, `eval` and `predict`.

A maskmtl model is a Keras 3 ``.keras`` file holding a functional model with one input named
``image`` of shape ``(size, size, C)`` (C=1 grayscale, C=3 RGB), float32 pixel values in 0..255
(rescaling happens inside the model), and a dict of outputs, any subset of:

- ``"age"``: ``(N, 1)`` age in years,
- ``"gender"``: ``(N, 1)`` probability that the face is female,
- ``"race"``: ``(N, 5)`` class probabilities in ``RACE_NAMES`` order.

A run folder written by ``maskmtl train`` (``runs/train``, ``runs/train2``, ...) holds the best
model as ``best.keras`` next to ``config.json``, ``history.csv``, ``curves.png`` and
``summary.json``. Keras is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskmtl_cli.errors import InputError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: Model file name inside a run folder: the best epoch by validation loss.
BEST_MODEL = "best.keras"
#: Resolved training configuration inside a run folder.
RUN_CONFIG = "config.json"
#: Output names a maskmtl model may have, in canonical order (same as ``data.labels.TASKS``).
MODEL_TASKS = ("age", "gender", "race")
NUM_RACES = 5
#: Inference engines of ``load_model``.
ENGINES = ("auto", "numpy", "keras")
_OUTPUT_WIDTH = {"age": 1, "gender": 1, "race": NUM_RACES}


def resolve_model_path(path: str | Path) -> Path:
    """Find the model file that a path names.

    Args:
        path: A run folder (its ``best.keras`` is used) or a ``.keras`` file.

    Returns:
        The path of the ``.keras`` file.

    Raises:
        ModelError: The folder holds no ``best.keras``, or the file is missing or not ``.keras``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / BEST_MODEL
        if candidate.is_file():
            return candidate
        hint = ""
        if (path / "last.keras").is_file():
            hint = (
                " It holds last.keras, so training was interrupted before an epoch finished "
                f"validation: resume it with `maskmtl train --resume {path}`."
            )
        raise ModelError(
            f"No {BEST_MODEL} in '{path}'.{hint} Pass a run folder written by `maskmtl train` "
            "(for example runs/train) or a .keras model file."
        )
    if not path.exists():
        raise ModelError(
            f"Model '{path}' does not exist. Pass a run folder written by `maskmtl train` "
            "(for example runs/train) or a .keras model file."
        )
    if path.suffix != ".keras":
        raise ModelError(
            f"'{path}' is not a .keras model file. Pass a run folder written by "
            "`maskmtl train` or the .keras file inside it (best.keras)."
        )
    return path


def load_model(path: str | Path, engine: str = "keras") -> "keras.Model":
    """Load a maskmtl model for inference (not compiled).

    Args:
        path: A run folder or a ``.keras`` file (see ``resolve_model_path``).
        engine: ``"keras"`` loads it with Keras (TensorFlow by default; needed for gradients,
            e.g. Grad-CAM); ``"numpy"`` with ``maskmtl_cli.runtime``, a numpy forward pass that
            reads the ``.keras`` file without importing Keras (starts in milliseconds instead
            of seconds); ``"auto"`` tries numpy and falls back to Keras for layers the runtime
            does not know.

    Returns:
        The model (a ``keras.Model`` or a ``runtime.NumpyModel``, which offers the same
        ``input_shape``, ``output_names`` and ``predict_on_batch``), checked against the input
        and output contract in the module docstring.

    Raises:
        InputError: Unknown engine.
        ModelError: The file is missing, corrupt, written by an incompatible version, or not a
            maskmtl model; or ``engine="numpy"`` and the runtime cannot run it.
    """
    if engine not in ENGINES:
        raise InputError(f"Unknown engine '{engine}'. Choose one of: {', '.join(ENGINES)}.")
    model_path = resolve_model_path(path)
    if engine in ("auto", "numpy"):
        from maskmtl_cli.runtime import UnsupportedModelError, load_numpy_model

        try:
            model = load_numpy_model(model_path)
        except UnsupportedModelError as error:
            if engine == "numpy":
                raise ModelError(
                    f"Cannot run '{model_path}' with the numpy engine: {error}. Use "
                    "--engine keras (or auto)."
                ) from None
        else:
            _check_contract(model, model_path)
            return model
    from maskmtl_cli.training.backend import import_keras_quietly

    keras = import_keras_quietly()  # without TensorFlow's absl/CUDA start-up lines on stderr
    import maskmtl_cli.models  # noqa: F401  (registers NonLocalBlock so it deserializes)

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types for corrupt or foreign files.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"Cannot load model '{model_path}': {reason[:300]}. The file may be truncated or "
            "written by an incompatible Keras version; retrain with `maskmtl train` or pass "
            "another model."
        ) from None
    _check_contract(model, model_path)
    return model


def _check_contract(model: "keras.Model", model_path: Path) -> None:
    """Raise ModelError unless the model has the maskmtl input and output layout."""
    fix = "Use a model trained with `maskmtl train`."
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ModelError(f"'{model_path}' has {len(inputs)} inputs; a maskmtl model has 1. {fix}")
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise ModelError(
            f"'{model_path}' takes inputs of shape {shape}; a maskmtl model takes square "
            f"images (None, size, size, 1 or 3). {fix}"
        )
    names = list(getattr(model, "output_names", []) or [])
    tasks = [name for name in names if name in MODEL_TASKS]
    if not tasks or len(tasks) != len(names):
        raise ModelError(
            f"'{model_path}' has outputs {names}; a maskmtl model has outputs named from "
            f"{', '.join(MODEL_TASKS)}. {fix}"
        )
    for name, output in zip(names, model.outputs):
        width = output.shape[-1]
        if width != _OUTPUT_WIDTH[name]:
            raise ModelError(
                f"'{model_path}' output '{name}' has width {width}; expected "
                f"{_OUTPUT_WIDTH[name]}. {fix}"
            )


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
    """The tasks a model predicts, in canonical order (a subset of age, gender, race)."""
    names = set(model.output_names)
    return [task for task in MODEL_TASKS if task in names]


def predict_arrays(
    model: "keras.Model",
    images: np.ndarray,
    batch_size: int = 256,
    flip: bool = False,
) -> dict[str, np.ndarray]:
    """Run a model over in-memory images.

    Args:
        model: A loaded maskmtl model.
        images: uint8 (or 0..255 float) array of shape ``(N, size, size, C)`` matching
            ``input_spec(model)``; grayscale may also be ``(N, size, size)``.
        batch_size: Images per forward pass.
        flip: Also run on the horizontally flipped images and average the two predictions
            (test-time augmentation).

    Returns:
        A dict with the model's tasks: ``age`` (N,) years, ``gender`` (N,) probability of female,
        ``race`` (N, 5) class probabilities; all float32.

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
    tasks = model_tasks(model)
    widths = {task: _OUTPUT_WIDTH[task] for task in tasks}
    chunks: dict[str, list[np.ndarray]] = {task: [] for task in tasks}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype("float32")
        outputs = _forward(model, batch)
        if flip:
            flipped = _forward(model, np.ascontiguousarray(batch[:, :, ::-1, :]))
            outputs = {task: (outputs[task] + flipped[task]) / 2.0 for task in tasks}
        for task in tasks:
            chunks[task].append(outputs[task])
    results = {}
    for task in tasks:
        if chunks[task]:
            values = np.concatenate(chunks[task]).astype("float32")
        else:
            values = np.zeros((0, widths[task]), dtype="float32")
        results[task] = values[:, 0] if widths[task] == 1 else values
    return results


def _forward(model: "keras.Model", batch: np.ndarray) -> dict[str, np.ndarray]:
    """One inference pass over a float32 batch, as numpy arrays keyed by task."""
    outputs = model.predict_on_batch(batch)
    if not isinstance(outputs, dict):  # A single-output model may return a bare array.
        outputs = {model.output_names[0]: outputs}
    return {task: np.asarray(value, dtype="float32") for task, value in outputs.items()}


def latest_run(root: str | Path = "runs") -> Path:
    """The most recently trained run folder under ``root``.

    Args:
        root: The project folder that holds run folders (``maskmtl train --project``).

    Returns:
        The run folder whose ``best.keras`` was written last.

    Raises:
        ModelError: ``root`` does not exist or holds no run with a ``best.keras``.
    """
    root = Path(root).expanduser()
    runs = [p for p in root.glob(f"*/{BEST_MODEL}") if p.is_file()] if root.is_dir() else []
    if not runs:
        raise ModelError(
            f"No trained run found under '{root}/' (no */{BEST_MODEL}). Train one with "
            "`maskmtl train`, or pass a run folder or .keras file explicitly."
        )
    newest = max(runs, key=lambda p: (p.stat().st_mtime, str(p)))
    return newest.parent


def run_config(path: str | Path) -> dict | None:
    """The resolved training config of the run a model belongs to, if there is one.

    Args:
        path: A run folder or a ``.keras`` file inside one.

    Returns:
        The parsed ``config.json`` (it includes the absolute ``manifest`` path, ``tasks``,
        ``image_size`` and ``color_mode``), or None when there is no config next to the model.

    Raises:
        ModelError: ``config.json`` exists but cannot be parsed.
    """
    path = Path(path).expanduser()
    folder = path if path.is_dir() else path.parent
    config_path = folder / RUN_CONFIG
    if not config_path.is_file():
        return None
    try:
        return json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(
            f"Cannot read '{config_path}': {error}. The run folder may be damaged; retrain "
            "with `maskmtl train`."
        ) from None
