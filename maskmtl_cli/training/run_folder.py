"""Run folders: ``runs/train``, ``runs/train2``, ... and the files inside them.

A run folder holds ``config.json`` (the resolved ``TrainConfig``), ``best.keras`` (the network at
its best validation loss) and ``best.onnx`` (the same network for ONNX Runtime, written when
training ends), ``last.keras`` (network, loss weights and optimizer state after the
latest epoch; what ``--resume`` reloads), ``state.json`` (epoch counter and best-so-far),
``history.csv``, ``curves.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from maskmtl_cli.errors import InputError, ModelError

CONFIG_FILE = "config.json"
BEST_FILE = "best.keras"
BEST_ONNX_FILE = "best.onnx"
LAST_FILE = "last.keras"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.json"
DEFAULT_RUN_NAME = "train"


def new_run_dir(project: str | Path, name: str | None) -> Path:
    """Create the folder of a new run.

    Args:
        project: Folder holding run folders (created if needed).
        name: Run name; None picks the first free of ``train``, ``train2``, ``train3``, ...

    Returns:
        The new, empty run folder.

    Raises:
        InputError: A run with that name exists already.
    """
    project = Path(project)
    if name is not None:
        path = project / name
        if path.exists():
            raise InputError(
                f"Run folder '{path}' already exists. Continue it with "
                f"`maskmtl train --resume {path}`, or pick another --name."
            )
        path.mkdir(parents=True)
        return path
    project.mkdir(parents=True, exist_ok=True)
    index = 1
    while True:
        path = project / (DEFAULT_RUN_NAME if index == 1 else f"{DEFAULT_RUN_NAME}{index}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            index += 1


def check_resumable(run_dir: str | Path) -> Path:
    """Return the run folder if it can be resumed; ModelError saying why not otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(
            f"Cannot resume '{run_dir}': no such run folder. Pass a folder written by "
            "`maskmtl train`, for example runs/train."
        )
    missing = [f for f in (CONFIG_FILE, LAST_FILE, STATE_FILE) if not (run_dir / f).is_file()]
    if missing:
        raise ModelError(
            f"Cannot resume '{run_dir}': it has no {' or '.join(missing)} (no epoch finished "
            "there yet). Start a new run instead."
        )
    return run_dir


def read_state(run_dir: Path) -> dict:
    """The run's ``state.json``; ModelError if it is unreadable."""
    path = Path(run_dir) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"Cannot read '{path}': {error}. Start a new run instead.") from None


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (a crash never leaves a half-written file)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_keras_atomic(model, path: Path) -> None:
    """Save a Keras model next to ``path`` first, then rename it into place."""
    path = Path(path)
    temp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temp)
    os.replace(temp, path)


def _json_default(value):
    """Make numpy scalars JSON-serialisable."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
