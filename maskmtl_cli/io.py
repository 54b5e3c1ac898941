"""Writing files safely, JSON-ready values and the cache folder: the one home of each.

Every output file goes through ``atomic_path``: the data goes to a hidden temporary file beside
the target (``.NAME.PID.maskmtl-tmp``) and ``os.replace`` puts it in place, so an interrupted or
failed write never leaves half a file behind, and a leftover temporary file (a killed process)
is recognised by its suffix. Standard library only, except ``json_ready``'s numpy check.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: Suffix of the temporary files of atomic writes (stale ones are removed by `maskmtl mask`).
TEMP_SUFFIX = ".maskmtl-tmp"


def temp_path_for(target: Path) -> Path:
    """The hidden temporary file an atomic write of ``target`` goes through."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}{TEMP_SUFFIX}")


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path to write ``target`` to; renamed into place when the block succeeds.

    Args:
        target: The file to write.
        suffix: Appended to the temporary name, for writers that need a file ending (Keras
            saves only to ``*.keras``).

    The temporary file is removed on any failure, Ctrl-C included.
    """
    target = Path(target)
    temp = temp_path_for(target).with_name(temp_path_for(target).name + suffix)
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as temp:
        temp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically (newlines as given)."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8", newline="")
    return Path(path)


def json_default(value):
    """``json.dumps``' ``default``: numpy scalars to Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: Path, data: dict) -> Path:
    """Write indented JSON atomically (numpy scalars as numbers)."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=json_default) + "\n")


def json_ready(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` accepts: numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def default_cache_dir() -> Path:
    """``$MASKMTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/maskmtl``, else ``~/.cache/maskmtl``.

    (The XDG rule by hand: ``platformdirs`` is not a dependency, and on Linux it gives the same
    folder.)
    """
    if os.environ.get("MASKMTL_CACHE_DIR"):
        return Path(os.environ["MASKMTL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "maskmtl"
