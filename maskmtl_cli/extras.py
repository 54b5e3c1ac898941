"""The optional extras of the maskmtl distribution, and the one message for a missing one.

The base install (``pip install maskmtl``) masks, splits, evaluates and predicts on ONNX Runtime
without TensorFlow or Keras. What needs more names its extra here, and ``require_extra`` is the
only place that says how to install it: core code calls it before importing an optional
package, and the CLI's error boundary turns its ``MissingExtraError`` into one line on stderr and
exit code 2. Standard library only, so that checking costs nothing.
"""

from __future__ import annotations

import importlib.util

from maskmtl_cli.errors import MissingExtraError

#: Each extra (as in pyproject.toml): distribution -> the modules it may be imported as.
EXTRAS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {"tensorflow": ("tensorflow",), "keras": ("keras",), "onnx": ("onnx",),
              "tf2onnx": ("tf2onnx",), "mtcnn": ("mtcnn",)},
    "serve": {"fastapi": ("fastapi",), "uvicorn": ("uvicorn",),
              "python-multipart": ("python_multipart", "multipart")},
    "ray": {"ray": ("ray",)},
}
#: What running a ``.keras`` model needs: ``--engine keras``, ``--cam``, and training.
KERAS_PACKAGES = ("tensorflow", "keras")
#: What exporting a ``.keras`` model to ONNX needs (``train`` does it at the end of every run).
EXPORT_PACKAGES = ("tensorflow", "keras", "onnx", "tf2onnx")
#: What ``--detector mtcnn`` needs: the ``mtcnn`` package runs on TensorFlow.
MTCNN_PACKAGES = ("tensorflow", "mtcnn")


def install_hint(extra: str) -> str:
    """How to install an extra, from the package index or from a maskmtl checkout."""
    return f"pip install 'maskmtl[{extra}]' (in a maskmtl checkout: pip install '.[{extra}]')"


def is_installed(distribution: str, extra: str) -> bool:
    """Whether one of ``distribution``'s modules can be imported (nothing is imported)."""
    for module in EXTRAS[extra][distribution]:
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except (ImportError, ValueError):  # a broken or half-removed installation
            continue
    return False


def missing_packages(extra: str, needed: tuple[str, ...] | None = None) -> list[str]:
    """The distributions of ``extra`` (or just those in ``needed``) that are not installed."""
    names = needed if needed is not None else tuple(EXTRAS[extra])
    return [name for name in names if not is_installed(name, extra)]


def require_extra(extra: str, what: str, needed: tuple[str, ...] | None = None) -> None:
    """Raise ``MissingExtraError`` naming the extra to install when ``what`` cannot run.

    Args:
        extra: The extra that provides what is needed ("train", "serve", "ray").
        what: What needs it, as the user typed it, e.g. "`maskmtl train`" or "--cam".
        needed: The extra's distributions this use needs (default: all of them).

    Raises:
        MissingExtraError: One of them is not installed (the CLI exits with code 2).
    """
    missing = missing_packages(extra, needed)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}, which {verb} not installed. Install the "
            f"{extra} extra: {install_hint(extra)}."
        )
