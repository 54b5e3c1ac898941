"""The Ray backend of ``maskmtl mask --ray``: the local pool's work, as tasks on a cluster.

A sibling of ``maskmtl_cli.masking.pool``. The sorted task list is cut into shards of
consecutive images; each shard is one Ray task that runs ``MaskWorker.process`` on its images in
a worker process of some node. That worker reads the photos and writes the outputs (atomically)
and its journal on the shared filesystem, and returns the masks.csv records. Image ``i`` still
draws from ``default_rng([seed, i])``, so the outputs are byte-identical to a local run.

* Journals: each worker process appends to a journal of its own
  (``masks.journal.<host>-<pid>.jsonl``, see ``maskmtl_cli.masking.journal``): appends from
  several machines to one file over NFS are not atomic. It is closed after every shard, which
  flushes it to the file server.
* A worker that dies (killed, out of memory, its node lost) fails its shard only. The images it
  finished have their rows in its journal and their outputs in place, so they are taken from
  there; the others go out again as a new task, up to ``MAX_ATTEMPTS`` times. Temporary files it
  left are removed at the end of the run.
* At most ``--workers`` shards run at once (default: two per CPU of the cluster are queued, so
  no CPU waits for the driver). Progress counts images as their shards come back.
* Ctrl-C or an error cancels the shards in flight (the images being written are abandoned
  cleanly: their temporary files go, their rows without output are ignored) and waits for them.
"""

from __future__ import annotations

import math
import os
import socket
from collections import deque
from pathlib import Path
from typing import Callable

from maskmtl_cli.errors import ClusterError, MaskmtlError
from maskmtl_cli.masking.cluster import RayCluster
from maskmtl_cli.masking.config import MaskConfig
from maskmtl_cli.masking.journal import read_journals, worker_journal_name
from maskmtl_cli.masking.worker import MaskWorker

ProgressCallback = Callable[[int, int], None]
#: Tries per image when workers die: the first and this many minus one resubmissions.
MAX_ATTEMPTS = 3
#: Largest shard: the unit of retry after a dead worker and of progress updates.
MAX_SHARD = 32
#: Seconds to wait for cancelled shards to stop after Ctrl-C or an error.
CANCEL_WAIT_S = 30.0

_SHARD_WORKER: MaskWorker | None = None


def mask_shard(config: MaskConfig, tasks: list[tuple[int, str]]) -> list[dict]:
    """Ray task: mask a shard of images in this worker process; returns their records.

    The worker (landmarker loaded, journal open) is kept for the next shard of the same run.
    """
    global _SHARD_WORKER
    if _SHARD_WORKER is None or _SHARD_WORKER.config != config:
        import cv2

        cv2.setNumThreads(1)  # one task per CPU, as the local pool's processes
        journal = worker_journal_name(f"{socket.gethostname()}-{os.getpid()}")
        _SHARD_WORKER = MaskWorker(config, journal=journal)
        _SHARD_WORKER.landmarker.load()
    try:
        return [_SHARD_WORKER.process(task) for task in tasks]
    finally:
        _SHARD_WORKER.journal.close()  # flushed for the driver, maybe on another machine


def shard_size(total: int, cpus: int) -> int:
    """Images per shard: about 16 shards per CPU, between 1 and ``MAX_SHARD`` images."""
    return max(1, min(MAX_SHARD, math.ceil(total / (16 * max(1, cpus)))))


def run_ray(
    tasks: list[tuple[int, str]],
    config: MaskConfig,
    cluster: RayCluster,
    records: list[dict],
    progress: ProgressCallback | None,
    since: dict[str, int],
) -> None:
    """Mask ``tasks`` as Ray tasks, appending their records to ``records`` as shards finish.

    Args:
        tasks: ``(index, source)`` pairs in sorted order.
        config: The run's settings (paths resolved: the workers use them as they are).
        cluster: The connected cluster.
        records: Receives one record per image.
        progress: Called as ``progress(done, total)`` after each shard.
        since: ``journal_marks`` taken at the start of the run: rows after them are this run's.

    Raises:
        OutputError: A worker could not write an output (the same error as the local pool's).
        ClusterError: Workers died ``MAX_ATTEMPTS`` times on the same images.
        KeyboardInterrupt: After the shards in flight were cancelled.
    """
    import ray

    remote = ray.remote(num_cpus=1, max_retries=0)(mask_shard)
    config_ref = ray.put(config)
    size = shard_size(len(tasks), cluster.cpus())
    queue = deque((tasks[start:start + size], 1) for start in range(0, len(tasks), size))
    in_flight: dict = {}
    output_root = Path(config.output_dir)
    try:
        while queue or in_flight:
            capacity = config.workers or 2 * cluster.cpus()
            while queue and len(in_flight) < capacity:
                shard, attempt = queue.popleft()
                in_flight[remote.remote(config_ref, shard)] = (shard, attempt)
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                shard, attempt = in_flight.pop(ref)
                rest = _collect(ray, ref, shard, output_root, since, records)
                if rest and attempt >= MAX_ATTEMPTS:
                    raise ClusterError(
                        f"Ray workers died {attempt} times while masking {rest[0][1]} and "
                        f"{len(rest) - 1} more images. The finished images are kept and "
                        "recorded; check the cluster (`ray status`, the workers' memory), "
                        "then rerun the same command to resume."
                    )
                if rest:
                    queue.appendleft((rest, attempt + 1))
                if progress is not None:
                    progress(len(records), len(tasks))
    except BaseException:
        _cancel(ray, list(in_flight))
        raise


def _collect(ray, ref, shard, output_root: Path, since: dict[str, int],
             records: list[dict]) -> list[tuple[int, str]]:
    """Add a finished shard's records; for a shard whose worker died, add what its journal
    holds and return the images still to do."""
    try:
        records.extend(ray.get(ref))
        return []
    except ray.exceptions.RayTaskError as error:
        # An exception of our code in the task: an OutputError stops the run as locally.
        cause = getattr(error, "cause", None)
        if isinstance(cause, MaskmtlError):
            raise cause from None
        raise
    except ray.exceptions.RayError:  # the worker process or its node died
        finished = read_journals(output_root, since)
        rest = []
        for task in shard:
            row = finished.get(task[1])
            if row is None:
                rest.append(task)
            else:
                records.append(row)
        return rest


def _cancel(ray, refs: list) -> None:
    """Cancel shards in flight and wait (boundedly) until they have stopped writing."""
    for ref in refs:
        try:
            ray.cancel(ref)
        except Exception:  # noqa: BLE001 - finished meanwhile, or the cluster is gone
            pass
    if refs:
        try:
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
        except Exception:  # noqa: BLE001 - the cluster is gone: nothing is writing
            pass
