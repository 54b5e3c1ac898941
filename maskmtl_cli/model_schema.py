"""What a model's outputs mean: its tasks, where that is written down, and the output contract.

A model's tasks (``maskmtl_cli.tasks.TaskSpec``: names, kinds, class names) travel with it:

- in an ``.onnx`` file, as the metadata entry ``maskmtl_tasks`` (written at export), so that a
  bare ``.onnx`` file is enough for ``eval`` and ``predict``;
- for a ``.keras`` file, in ``tasks.json`` beside it (every run folder has one);
- for files without either (models of older runs, the bundled model), they are read from the
  output names and widths: UTKFace's ``age``, ``gender``, ``race`` get their built-in specs,
  any other output of width 1 is a regression, of width K a classification over classes named
  ``class 0`` ... ``class K-1``.

The contract: one square image input, and one output per task of the width its spec says (1 for
regression and gender's sigmoid, K for K classes), plus optionally ``segmentation`` of shape
``(N, size, size, 1)``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from maskmtl_cli.errors import InputError, ModelError
from maskmtl_cli.tasks import (
    CLASSIFICATION,
    REGRESSION,
    SEGMENTATION,
    TaskSpec,
    default_spec,
    specs_from_json,
    specs_to_json,
)

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: Tasks of loaded Keras models, read from the tasks.json beside their files.
_KERAS_TASKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: Beside a ``.keras`` file (in a run folder): the tasks of the model.
TASKS_FILE = "tasks.json"
#: Key of the ONNX metadata entry that holds ``specs_to_json``'s text.
ONNX_METADATA_KEY = "maskmtl_tasks"
#: Outputs that only training uses (left out of the inference graph).
TRAINING_ONLY_OUTPUTS = ("age_distribution",)
_FIX = "Use a model trained with `maskmtl train`."


def specs_from_outputs(names, widths: dict) -> tuple[TaskSpec, ...]:
    """Task specs read from output names and widths (see the module docstring)."""
    specs = []
    for name in names:
        if name == SEGMENTATION or name in TRAINING_ONLY_OUTPUTS:
            continue
        builtin = default_spec(name)
        width = widths.get(name)
        if builtin is not None:
            specs.append(builtin)
        elif width == 1:
            specs.append(TaskSpec(name, REGRESSION))
        else:
            specs.append(TaskSpec(name, CLASSIFICATION,
                                  tuple(f"class {k}" for k in range(int(width or 0)))))
    return tuple(specs)


def read_task_file(folder: Path) -> tuple[tuple[TaskSpec, ...], bool] | None:
    """(specs, segmentation) from ``folder/tasks.json``; None when there is none.

    Raises:
        ModelError: The file exists but cannot be read.
    """
    path = Path(folder) / TASKS_FILE
    if not path.is_file():
        return None
    try:
        return specs_from_json(path.read_text(encoding="utf-8"))
    except (OSError, InputError) as error:
        raise ModelError(f"Cannot read '{path}': {error} The run folder may be damaged; "
                         "retrain with `maskmtl train`.") from None


def write_task_file(folder: Path, specs, segmentation: bool) -> Path:
    """Write ``folder/tasks.json`` atomically."""
    from maskmtl_cli.io import write_text_atomic

    path = Path(folder) / TASKS_FILE
    write_text_atomic(path, specs_to_json(specs, segmentation) + "\n")
    return path


def specs_from_metadata(metadata: dict) -> tuple[tuple[TaskSpec, ...], bool] | None:
    """(specs, segmentation) from an ONNX file's metadata map; None without the entry."""
    text = metadata.get(ONNX_METADATA_KEY)
    if text is None:
        return None
    try:
        return specs_from_json(text)
    except InputError:
        return None  # a damaged entry: fall back on the output names


def check_contract(shape: tuple, names: list[str], widths: dict, ranks: dict,
                   specs, model_path: Path) -> None:
    """Raise ModelError unless the model has the maskmtl input and output layout.

    Args:
        shape: The input shape ``(None, size, size, channels)``.
        names: The output names.
        widths: Last-axis width of each output.
        ranks: Rank of each output (2 for tasks, 4 for segmentation).
        specs: The model's task specs.
        model_path: Named in messages.
    """
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise ModelError(
            f"'{model_path}' takes inputs of shape {shape}; a maskmtl model takes square "
            f"images (None, size, size, 1 or 3). {_FIX}"
        )
    by_name = {spec.name: spec for spec in specs}
    if not by_name:
        raise ModelError(f"'{model_path}' has outputs {names} but no task. {_FIX}")
    for name in names:
        if name == SEGMENTATION:
            if ranks.get(name) != 4 or widths.get(name) != 1:
                raise ModelError(f"'{model_path}' output 'segmentation' is not one mask per "
                                 f"image (N, size, size, 1). {_FIX}")
            continue
        spec = by_name.get(name)
        if spec is None:
            raise ModelError(f"'{model_path}' has an output '{name}' that none of its tasks "
                             f"({', '.join(by_name)}) names. {_FIX}")
        if widths.get(name) != spec.output_width or ranks.get(name, 2) != 2:
            raise ModelError(
                f"'{model_path}' output '{name}' has width {widths.get(name)}; expected "
                f"{spec.output_width}. {_FIX}"
            )
    missing = [name for name in by_name if name not in names]
    if missing:
        raise ModelError(f"'{model_path}' lacks the output of task(s) {', '.join(missing)}. "
                         f"{_FIX}")


def remember_keras_tasks(model, specs) -> None:
    """Keep the tasks read from a ``.keras`` file's ``tasks.json`` for ``task_specs(model)``."""
    _KERAS_TASKS[model] = tuple(specs)


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
