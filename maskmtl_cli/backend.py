"""Keras backend selection, device description and precision settings.

The backend must be chosen through ``KERAS_BACKEND`` before Keras is first imported, so
``select_backend`` runs at the very start of ``maskmtl train``. Everything else here is the only
backend-specific code of training: asking each backend which device it uses.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import tempfile

from maskmtl_cli.errors import InputError

_BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def select_backend(name: str | None) -> str:
    """Make ``name`` the Keras backend of this process (None: keep the configured one).

    Args:
        name: "tensorflow", "jax", "torch" or None.

    Returns:
        The backend Keras will use.

    Raises:
        InputError: The backend is not installed, or Keras already runs another backend in this
            process.
    """
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if name is not None and name != current:
            raise InputError(
                f"Keras is already running with the {current} backend in this process, so "
                f"--backend {name} cannot take effect. Run `maskmtl train --backend {name}` in a "
                f"new process, or set KERAS_BACKEND={name} before starting Python."
            )
        return current
    chosen = name or os.environ.get("KERAS_BACKEND") or "tensorflow"
    package = _BACKEND_PACKAGES.get(chosen)
    if package is None:
        raise InputError(
            f"Unknown backend '{chosen}' (from KERAS_BACKEND). Choose one of: "
            f"{', '.join(_BACKEND_PACKAGES)}."
        )
    if importlib.util.find_spec(package) is None:
        raise InputError(
            f"The {chosen} backend is not installed. Install it (for example `pip install "
            f"{'jax[cuda12]' if chosen == 'jax' else package}`) or choose another --backend."
        )
    os.environ["KERAS_BACKEND"] = chosen
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return chosen


def import_keras_quietly():
    """Import Keras without TensorFlow's C++ start-up lines on stderr.

    TensorFlow's native libraries print absl and CUDA-stub notices ("All log messages before
    absl::InitializeLog() ...", "Could not find cuda drivers ...") while loading, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. They go to file descriptor 2 directly, so it is pointed at a
    temporary file during the import; the captured text is shown only if the import fails.

    Returns:
        The ``keras`` module.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return keras


def gpu_name() -> str | None:
    """Name of the first GPU the active Keras backend uses, or None on CPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                return None
            details = tf.config.experimental.get_device_details(gpus[0])
            return details.get("device_name", "GPU")
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            return device.device_kind if device.platform == "gpu" else None
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # A broken driver setup means: train on the CPU.
        return None
    return None


def describe_device() -> str:
    """Human-readable device, e.g. ``GPU: NVIDIA H100`` or ``CPU: x86_64, 2 cores``."""
    name = gpu_name()
    if name:
        return f"GPU: {name}"
    return f"CPU: {platform.machine() or 'unknown'}, {os.cpu_count()} cores"


def resolve_precision(mixed_precision: bool | None, on_gpu: bool) -> str:
    """The Keras dtype policy: ``mixed_bfloat16`` on GPU (or when asked), else ``float32``."""
    use_mixed = on_gpu if mixed_precision is None else mixed_precision
    return "mixed_bfloat16" if use_mixed else "float32"


def resolve_jit(jit_compile: bool | None, on_gpu: bool) -> bool:
    """XLA/jit compilation: on for JAX and for TensorFlow on GPU; off otherwise.

    On this project's 2-core CPU, XLA trained the compact model no faster per CPU-second than
    TensorFlow's graph mode and adds compile time; PyTorch's ``torch.compile`` is slow to start.
    So neither uses it by default (docs/train.md).
    """
    if jit_compile is not None:
        return jit_compile
    import keras

    backend = keras.backend.backend()
    return backend == "jax" or (on_gpu and backend == "tensorflow")
