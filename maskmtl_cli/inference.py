"""The trained-model interface shared by `train`, `eval` and `predict`.

A maskmtl model takes one input named ``image`` of shape ``(size, size, C)`` (C=1 grayscale,
C=3 RGB), float32 pixel values in 0..255 (rescaling happens inside the model), and gives a dict
of outputs, any subset of:

- ``"age"``: ``(N, 1)`` age in years,
- ``"gender"``: ``(N, 1)`` probability that the face is female,
- ``"race"``: ``(N, 5)`` class probabilities in ``RACE_NAMES`` order.

It comes as a Keras 3 ``.keras`` file (the training format; needed for Grad-CAM) and as an
``.onnx`` file of the same network, which ONNX Runtime runs for ``predict`` and ``eval``
(several times faster than Keras on a CPU, and without importing TensorFlow). A run folder
written by ``maskmtl train`` (``runs/train``, ``runs/train2``, ...) holds both, ``best.keras``
and ``best.onnx``, next to ``config.json``, ``history.csv``, ``curves.png`` and
``summary.json``. A ``.keras`` file without an up-to-date ``.onnx`` beside it is exported once
into the cache folder (a few seconds) and the copy is reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskmtl_cli.errors import InputError, ModelError
from maskmtl_cli.schema import ENGINES

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: Model file names inside a run folder: the best epoch by validation loss.
BEST_MODEL = "best.keras"
BEST_ONNX = "best.onnx"
#: Resolved training configuration inside a run folder.
RUN_CONFIG = "config.json"
#: Output names a maskmtl model may have, in canonical order (same as ``data.labels.TASKS``).
MODEL_TASKS = ("age", "gender", "race")
NUM_RACES = 5
_OUTPUT_WIDTH = {"age": 1, "gender": 1, "race": NUM_RACES}
_MODEL_HINT = ("Pass a run folder written by `maskmtl train` (for example runs/train), or a "
               ".keras or .onnx model file.")


@dataclass(frozen=True)
class ModelFiles:
    """The files of one model: either may be missing, not both."""

    keras: Path | None
    onnx: Path | None

    @property
    def name(self) -> Path:
        """The file that names the model in messages and outputs."""
        return self.keras or self.onnx  # type: ignore[return-value]

    def onnx_is_current(self) -> bool:
        """An ``.onnx`` exists and is not older than the ``.keras`` beside it."""
        if self.onnx is None:
            return False
        return self.keras is None or self.onnx.stat().st_mtime >= self.keras.stat().st_mtime


def resolve_model_files(path: str | Path) -> ModelFiles:
    """Find the model files that a path names.

    Args:
        path: A run folder (its ``best.keras`` / ``best.onnx``), or a ``.keras`` or ``.onnx``
            file (the file of the other format with the same stem beside it is used too).

    Returns:
        The model's ``.keras`` and ``.onnx`` files, as far as they exist.

    Raises:
        ModelError: Nothing usable is there.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        keras_file, onnx_file = path / BEST_MODEL, path / BEST_ONNX
        files = ModelFiles(keras_file if keras_file.is_file() else None,
                           onnx_file if onnx_file.is_file() else None)
        if files.keras is None and files.onnx is None:
            hint = ""
            if (path / "last.keras").is_file():
                hint = (" It holds last.keras, so training was interrupted before an epoch "
                        f"finished validation: resume it with `maskmtl train --resume {path}`.")
            raise ModelError(f"No {BEST_MODEL} in '{path}' (nor {BEST_ONNX}).{hint} "
                             f"{_MODEL_HINT}")
        return files
    if not path.exists():
        raise ModelError(f"Model '{path}' does not exist. {_MODEL_HINT}")
    if path.suffix not in (".keras", ".onnx"):
        raise ModelError(f"'{path}' is not a .keras or .onnx model file. {_MODEL_HINT}")
    other = path.with_suffix(".onnx" if path.suffix == ".keras" else ".keras")
    other = other if other.is_file() else None
    if path.suffix == ".keras":
        return ModelFiles(path, other)
    return ModelFiles(other, path)


def resolve_model_path(path: str | Path) -> Path:
    """The file that names a model (its ``.keras``, else its ``.onnx``); see
    ``resolve_model_files``."""
    return resolve_model_files(path).name


class OnnxModel:
    """A maskmtl model run by ONNX Runtime, with the interface the rest of the code uses.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; None lets ONNX Runtime use every core.

    Attributes:
        input_shape: ``(None, size, size, channels)``.
        output_names: The model's outputs, in the file's order.
        output_widths: Width of each output.
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
        _check_contract(model.input_shape, model.output_names, model.output_widths, onnx_path)
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
    check_keras_model(model, files.keras)
    return model


def check_keras_model(model: "keras.Model", model_path: Path) -> None:
    """ModelError unless a loaded Keras model has the maskmtl input and output layout."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ModelError(f"'{model_path}' has {len(inputs)} inputs; a maskmtl model has 1. "
                         "Use a model trained with `maskmtl train`.")
    names = list(getattr(model, "output_names", None) or [])
    widths = {name: output.shape[-1] for name, output in zip(names, model.outputs)}
    _check_contract(tuple(model.input_shape), names, widths, model_path)


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


def _check_contract(shape: tuple, names: list[str], widths: dict, model_path: Path) -> None:
    """Raise ModelError unless the model has the maskmtl input and output layout."""
    fix = "Use a model trained with `maskmtl train`."
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise ModelError(
            f"'{model_path}' takes inputs of shape {shape}; a maskmtl model takes square "
            f"images (None, size, size, 1 or 3). {fix}"
        )
    tasks = [name for name in names if name in MODEL_TASKS]
    if not tasks or len(tasks) != len(names):
        raise ModelError(
            f"'{model_path}' has outputs {names}; a maskmtl model has outputs named from "
            f"{', '.join(MODEL_TASKS)}. {fix}"
        )
    for name in names:
        if widths.get(name) != _OUTPUT_WIDTH[name]:
            raise ModelError(
                f"'{model_path}' output '{name}' has width {widths.get(name)}; expected "
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
        The run folder whose ``best.keras`` (or ``best.onnx``) was written last.

    Raises:
        ModelError: ``root`` does not exist or holds no run with a ``best.keras``.
    """
    root = Path(root).expanduser()
    runs = [p for name in (BEST_MODEL, BEST_ONNX) for p in root.glob(f"*/{name}")
            if p.is_file()] if root.is_dir() else []
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
