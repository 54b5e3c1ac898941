"""``train --devices``: data-parallel training with each Keras backend's own mechanism.

* TensorFlow: ``tf.distribute.MirroredStrategy`` over N local GPUs (or, where there are none,
  logical CPU devices: how the tests split one CPU in two). Several hosts are refused: a
  ``TF_CONFIG`` naming more than one task would need ``MultiWorkerMirroredStrategy``, which
  Keras 3's ``fit`` does not run (keras-team/keras#20585).
* JAX: the Keras 3 distribution API, ``keras.distribution.DataParallel`` over N of
  ``jax.devices()`` (``XLA_FLAGS=--xla_force_host_platform_device_count=N`` splits a CPU).
  Several hosts: ``keras.distribution.initialize()`` with ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
  ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``.
* PyTorch: one device.

Every device holds a full copy of the weights; ``--batch-size`` is the global batch, split
evenly, so each device computes ``batch_size / N`` images a step and the gradients are averaged
over the whole batch. That is the same update as on one device, so ``--lr`` keeps its meaning and
is not rescaled (up to batch normalisation, whose statistics are per device). A larger
``--batch-size`` to keep each device's share is the user's choice; the usual rule is then to
scale ``--lr`` by the same factor (Goyal et al., arXiv:1706.02677). With one device (the
default) nothing here is used and training runs exactly as without this module.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.errors import InputError


@dataclass(frozen=True)
class Placement:
    """Where training runs.

    Attributes:
        devices: Devices training in sync, on all hosts.
        hosts: Processes (hosts) taking part.
        chief: This process writes the run folder (the only one, or the first host).
        description: e.g. ``"2 x GPU (MirroredStrategy)"``, for the summary.
    """

    devices: int = 1
    hosts: int = 1
    chief: bool = True
    description: str = "1 device"
    _strategy: object | None = None
    _distribution: object | None = None

    def scope(self):
        """Context in which to build, compile, load and fit the trainer."""
        if self._strategy is not None:
            return self._strategy.scope()
        if self._distribution is not None:
            return self._distribution.scope()
        return contextlib.nullcontext()

    def batch(self, size: int) -> int:
        """``size`` rounded down to a multiple of the devices where batches must split evenly
        (JAX); unchanged elsewhere."""
        if self._distribution is None:
            return size
        return max(self.devices, size - size % self.devices)

    def missing(self, short: int) -> int:
        """How many images to add to a last batch of ``short`` images (see ``even``)."""
        if self._distribution is not None:
            return (self.devices - short % self.devices) % self.devices
        if self._strategy is not None and 0 < short < self.devices:
            return self.devices - short
        return 0

    def even(self, images, targets: dict, batch_size: int):
        """``(images, targets)`` whose last batch gives every device its share.

        JAX shards each batch over the devices in equal parts, so a short last batch of, say,
        3 images on 2 devices cannot run; TensorFlow splits it unevenly (2 and 1) but a device
        left with no image fails in batch normalisation. Where that would happen, the first
        images are repeated to fill the batch (fewer than ``devices`` of them, once an epoch),
        as PyTorch's ``DistributedSampler`` does; otherwise nothing changes.
        """
        import numpy as np

        missing = self.missing(len(images) % batch_size)
        if not missing:
            return images, targets
        extra = np.arange(missing) % len(images)
        return (np.concatenate([images, images[extra]]),
                {task: np.concatenate([values, values[extra]])
                 for task, values in targets.items()})


def place(devices: int | str, backend: str, batch_size: int) -> Placement:
    """The placement for ``--devices`` on ``backend`` (Keras imported with it).

    Args:
        devices: A number of devices on this host, or ``"auto"`` (every GPU, else 1 CPU).
        backend: The Keras backend.
        batch_size: The global batch size, which must split evenly.

    Raises:
        InputError: Fewer devices than asked for, a backend without data parallelism, or a
            batch that does not split evenly.
    """
    if backend == "tensorflow":
        placement = _tensorflow(devices)
    elif backend == "jax":
        placement = _jax(devices)
    elif devices in (1, "auto"):
        placement = Placement()
    else:
        raise InputError(
            f"--devices {devices} needs the TensorFlow or JAX backend; the {backend} backend "
            "trains on one device here. Use --backend tensorflow or --backend jax."
        )
    if batch_size % placement.devices:
        raise InputError(
            f"--batch-size {batch_size} does not split evenly over {placement.devices} "
            f"devices. Use a multiple of {placement.devices}, for example "
            f"{placement.devices * max(1, round(batch_size / placement.devices))}."
        )
    return placement


def _count(devices: int | str, found: list, what: str, hint: str) -> int:
    """Devices to use of ``found`` on this host."""
    if devices == "auto":
        return len(found)
    if devices > len(found):
        raise InputError(
            f"--devices {devices}: {what} sees {len(found)} device"
            f"{'s' if len(found) != 1 else ''} here. {hint}"
        )
    return int(devices)


def _tensorflow(devices: int | str) -> Placement:
    import tensorflow as tf

    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    tasks = sum(len(addresses) for kind, addresses in cluster.items() if kind in
                ("chief", "worker"))
    if tasks > 1:
        # TensorFlow's multi-host strategy, MultiWorkerMirroredStrategy, fails in Keras 3's
        # fit (it reduces a distributed first batch to build the model; tried here with Keras
        # 3.15 and TensorFlow 2.21 on two local workers): keras-team/keras#20585.
        raise InputError(
            f"TF_CONFIG names {tasks} TensorFlow tasks, but Keras 3 cannot train with "
            "TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585). Train on "
            "several hosts with --backend jax and the KERAS_DISTRIBUTION_* variables (see "
            "docs/scale.md), or unset TF_CONFIG to train on this host's devices."
        )
    gpus = tf.config.list_logical_devices("GPU")
    found = gpus or tf.config.list_logical_devices("CPU")
    count = _count(devices, found if (gpus or devices != "auto") else found[:1], "TensorFlow",
                   "Pass at most that many, or --devices auto.")
    if count == 1:
        return Placement()
    kind = "GPU" if gpus else "CPU"
    strategy = tf.distribute.MirroredStrategy([device.name for device in found[:count]])
    return Placement(count, 1, True, f"{count} x {kind} (MirroredStrategy)", _strategy=strategy)


def _jax(devices: int | str) -> Placement:
    import jax
    import keras

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1)
    if processes > 1:
        keras.distribution.initialize()
    local = jax.local_devices()
    count = _count(devices, local if (local[0].platform != "cpu" or devices != "auto")
                   else local[:1], "JAX",
                   "Pass at most that many, or --devices auto; on a CPU, "
                   "XLA_FLAGS=--xla_force_host_platform_device_count=N splits it.")
    hosts = jax.process_count()
    if count * hosts == 1:
        return Placement()
    per_host: dict[int, list] = {}
    for device in jax.devices():
        per_host.setdefault(device.process_index, []).append(device)
    chosen = [device for group in per_host.values() for device in group[:count]]
    distribution = keras.distribution.DataParallel(devices=chosen)
    kind = local[0].platform.upper()
    where = f" on {hosts} hosts" if hosts > 1 else ""
    return Placement(len(chosen), hosts, jax.process_index() == 0,
                     f"{len(chosen)} x {kind}{where} (DataParallel)", _distribution=distribution)


def worker_folders(placement: Placement, project: str, resume: str | Path | None):
    """Where a process that is not the chief writes: a temporary copy, never the run folder.

    Every host of a multi-host run computes the same weights; only the chief's run folder is
    kept. The others get a temporary project folder (and a copy of the run to resume).

    Returns:
        ``(project, resume)`` to use (the temporary folder goes when the process ends).
    """
    if placement.chief:
        return project, resume
    scratch = Path(tempfile.mkdtemp(prefix="maskmtl-worker-"))
    atexit.register(shutil.rmtree, scratch, True)
    if resume is not None:
        copy = scratch / Path(resume).name
        shutil.copytree(resume, copy)
        resume = copy
    return str(scratch / "runs"), resume
