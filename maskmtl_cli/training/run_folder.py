"""Making and resuming run folders (``runs/train``, ``runs/train2``, ...).

The names of the files inside a run folder live in ``maskmtl_cli.runs``.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskmtl_cli.errors import InputError, ModelError
from maskmtl_cli.io import atomic_path
from maskmtl_cli.runs import (  # noqa: F401  (re-exported for the training modules)
    BEST_FILE,
    BEST_ONNX_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    DEFAULT_RUN_NAME,
    HISTORY_FILE,
    LAST_FILE,
    STATE_FILE,
    SUMMARY_FILE,
)


def new_run_dir(project: str | Path, name: str | None, default_name: str = DEFAULT_RUN_NAME,
                command: str = "maskmtl train") -> Path:
    """Create the folder of a new run.

    Args:
        project: Folder holding run folders (created if needed).
        name: Run name; None picks the first free of ``train``, ``train2``, ``train3``, ...
        default_name: The stem of those names (``unmask`` for ``maskmtl train-unmask``).
        command: The command that resumes a run, for the message when ``name`` exists.

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
                f"`{command} --resume {path}`, or pick another --name."
            )
        path.mkdir(parents=True)
        return path
    project.mkdir(parents=True, exist_ok=True)
    index = 1
    while True:
        path = project / (default_name if index == 1 else f"{default_name}{index}")
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


def save_keras_atomic(model, path: Path) -> None:
    """Save a Keras model next to ``path`` first, then rename it into place."""
    with atomic_path(path, suffix=".keras") as temp:
        model.save(temp)


