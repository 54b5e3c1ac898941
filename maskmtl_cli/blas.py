"""Capping BLAS threads around numpy work (the numpy model runtime and the numpy MTCNN).

Both run many small matrix products. On a 2-core machine OpenBLAS' second thread gains little
for those when the machine is idle and makes them 3-100x slower when another process keeps a
core busy (its threads spin waiting for each other): a 640x480 MTCNN detection took 0.11 s
with one thread and 0.6 s with two beside a training job; a single-face model pass 2 ms vs
94 ms. threadpoolctl (a scikit-learn dependency) sets the cap; without it the cap is skipped.
"""

from __future__ import annotations

import contextlib
import functools
from typing import ContextManager


def limit_blas_threads(threads: int | None = 1) -> ContextManager:
    """A ``with`` block in which BLAS uses at most ``threads`` threads (None: no cap)."""
    controller = _threadpool_controller() if threads is not None else None
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=threads, user_api="blas")


@functools.lru_cache(maxsize=1)
def _threadpool_controller():
    """threadpoolctl's controller (inspects the loaded libraries once), or None if missing.

    numpy is imported first: the controller only knows the libraries loaded when it is made,
    so one made before numpy had loaded OpenBLAS would cap nothing, ever (a server that took
    the cap at start-up ran its detections 10x slower beside a busy core).
    """
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    import numpy  # noqa: F401  (loads OpenBLAS)

    return threadpoolctl.ThreadpoolController()
