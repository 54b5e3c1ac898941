"""Run folders: the names of their files, and where a model's files are (the newest run).

A run folder written by ``maskmtl train`` (``runs/train``, ``runs/train2``, ...) holds
``config.json`` (the resolved ``TrainConfig``), ``best.keras`` (the network at its best
validation loss) and ``best.onnx`` (the same network for ONNX Runtime, written when training
ends), ``last.keras`` (network, loss weights and optimizer state after the latest epoch; what
``--resume`` reloads), ``state.json`` (epoch counter and best-so-far), ``tasks.json``,
``history.csv``, ``curves.png`` and ``summary.json``. This module is the one home of those names;
``training.run_folder`` makes and resumes run folders, ``inference`` loads their models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.errors import ModelError

#: Resolved training configuration inside a run folder.
CONFIG_FILE = "config.json"
#: Model files inside a run folder: the best epoch by validation loss.
BEST_FILE = "best.keras"
BEST_ONNX_FILE = "best.onnx"
LAST_FILE = "last.keras"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.json"
#: Name of the first run folder; later ones are train2, train3, ...
DEFAULT_RUN_NAME = "train"
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
        keras_file, onnx_file = path / BEST_FILE, path / BEST_ONNX_FILE
        files = ModelFiles(keras_file if keras_file.is_file() else None,
                           onnx_file if onnx_file.is_file() else None)
        if files.keras is None and files.onnx is None:
            hint = ""
            if (path / "last.keras").is_file():
                hint = (" It holds last.keras, so training was interrupted before an epoch "
                        f"finished validation: resume it with `maskmtl train --resume {path}`.")
            raise ModelError(f"No {BEST_FILE} in '{path}' (nor {BEST_ONNX_FILE}).{hint} "
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
    runs = [p for name in (BEST_FILE, BEST_ONNX_FILE) for p in root.glob(f"*/{name}")
            if p.is_file()] if root.is_dir() else []
    if not runs:
        raise ModelError(
            f"No trained run found under '{root}/' (no */{BEST_FILE}). Train one with "
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
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        return None
    try:
        return json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(
            f"Cannot read '{config_path}': {error}. The run folder may be damaged; retrain "
            "with `maskmtl train`."
        ) from None
