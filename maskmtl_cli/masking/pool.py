"""The worker pool of ``maskmtl mask``: chunks of images in forked processes, Ctrl-C safe.

Workers receive paths, never pixels; the detector and predictor are loaded once in the parent and
inherited by the forked workers (or loaded by each worker's initializer where fork is missing).
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Callable

from maskmtl_cli.masking.config import MaskConfig
from maskmtl_cli.masking.worker import init_worker, run_chunk

ProgressCallback = Callable[[int, int], None]

class _Feeder:
    """Hands chunks of tasks to the pool, at most ``window`` in flight, and can stop early."""

    def __init__(self, tasks: list[tuple[int, str]], chunk: int, window: int) -> None:
        self._chunks = [tasks[start:start + chunk] for start in range(0, len(tasks), chunk)]
        self._slots = threading.Semaphore(window)
        self._stopped = False

    def __iter__(self):
        for chunk in self._chunks:
            self._slots.acquire()
            if self._stopped:
                return
            yield chunk

    def finished_one(self) -> None:
        self._slots.release()

    def stop(self) -> None:
        self._stopped = True
        self._slots.release()


def run_pool(
    tasks: list[tuple[int, str]],
    config: MaskConfig,
    workers: int,
    records: list[dict],
    progress: ProgressCallback | None,
) -> None:
    """Mask in ``workers`` processes, appending their records to ``records`` as chunks finish.

    On Ctrl-C the images in flight are finished, then the interrupt is re-raised. A worker's
    exception (an ``OutputError``: the output cannot be written) terminates the pool and is
    re-raised here; the records it did not deliver are in the run's journal.
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    # Chunks amortise the inter-process overhead. imap runs with chunksize=1 on purpose: with
    # larger ones it returns a generator that dies on Ctrl-C, losing the images in flight.
    chunk = max(1, min(8, len(tasks) // (workers * 16)))
    feeder = _Feeder(tasks, chunk, window=workers * 3)
    pool = context.Pool(workers, initializer=init_worker, initargs=(config,))

    def collect(results) -> None:
        for chunk_records in results:
            records.extend(chunk_records)
            feeder.finished_one()
            if progress is not None:
                progress(len(records), len(tasks))

    try:
        results = pool.imap(run_chunk, feeder)
        try:
            collect(results)
        except KeyboardInterrupt:
            feeder.stop()  # no new tasks; the records of images in flight still arrive
            collect(results)
            raise
        pool.close()
    except BaseException:
        feeder.stop()  # unblocks the pool's task thread so terminate() can join it
        pool.terminate()
        raise
    finally:
        pool.join()
