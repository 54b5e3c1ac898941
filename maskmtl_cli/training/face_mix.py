"""Training faces drawn anew every epoch: masked versions, occluded and bare photos (issue 21).

A network shown one fixed mask per face for 40 epochs learns those masks. Here every training
batch is composed on the fly (``MixedFaces``, a Keras ``PyDataset``) from each photo's faces
(``training.versions``): by ``TrainConfig.face_mix`` a share of the batch gets one of the
photo's masked versions (``maskmtl mask --variants``, drawn anew each epoch), a share its bare
photo under a random lower-face occluder (``training.occluders``), the rest the bare photo;
then every face gets mild photometric jitter (``training.photometric``). The ``masked`` target
(does the face wear a mask: yes for masked and occluded faces, no for bare ones) comes free.

Every draw comes from ``numpy.random.default_rng([seed, epoch, batch])``, so a batch does not
depend on the order Keras asks for batches in, and a resumed run continues with the epochs it
would have drawn.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from maskmtl_cli.tasks import CLASSIFICATION, MASKED_CLASSES, MASKED_TASK, TaskSpec
from maskmtl_cli.training.occluders import occlude
from maskmtl_cli.training.photometric import jitter

#: Face kinds by their index in a batch plan.
MASKED, OCCLUDED, BARE = 0, 1, 2


def masked_task_spec() -> TaskSpec:
    """The ``masked`` output: a small head on the shared encoder, classes no/yes."""
    return TaskSpec(MASKED_TASK, CLASSIFICATION, MASKED_CLASSES, attach="encoder")


def batch_kinds(size: int, mix: dict[str, float], has_bare: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """The kind of each face of a batch: shares as close to ``mix`` as whole faces allow,
    shuffled; faces without a bare photo are always masked."""
    shares = np.array([mix.get("masked", 0.0), mix.get("occluded", 0.0), mix.get("bare", 0.0)])
    counts = np.floor(shares * size).astype(int)
    rest = size - counts.sum()
    counts[np.argsort(-(shares * size - counts), kind="stable")[:rest]] += 1
    kinds = rng.permutation(np.repeat(np.arange(3), counts))
    kinds[~has_bare] = MASKED
    return kinds


def compose_batch(versions, rows: np.ndarray, mix: dict[str, float], photometric: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The images of one training batch and each face's kind.

    Args:
        versions: ``training.versions.FaceVersions`` of the training split.
        rows: Indices of the batch's faces.
        mix: Shares by face kind (``TrainConfig.face_mix``).
        photometric: Jitter strength (0: none).
        rng: This batch's random stream.
    """
    kinds = batch_kinds(len(rows), mix, versions.has_bare[rows], rng)
    images = np.empty((len(rows), *versions.masked.shape[2:]), dtype=np.uint8)
    for slot, (row, kind) in enumerate(zip(rows, kinds)):
        if kind == MASKED:
            available = np.flatnonzero(versions.versions[row])
            images[slot] = versions.masked[row, available[rng.integers(len(available))]]
        elif kind == OCCLUDED:
            donor = versions.bare[rows[rng.integers(len(rows))]]
            images[slot] = occlude(versions.bare[row], rng, donor)
        else:
            images[slot] = versions.bare[row]
        if photometric > 0:
            images[slot] = jitter(images[slot], rng, photometric)
    return images, kinds


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of the training faces in ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def make_dataset(versions, targets: dict, batch_size: int, mix: dict[str, float],
                 photometric: float, seed: int, first_epoch: int, pad=None):
    """A Keras ``PyDataset`` of composed batches (``MixedFaces``; Keras imported here).

    ``pad(short)`` says how many faces to add to a short last batch so that every device gets
    its share (``training.devices.Placement.missing``); None adds none.
    """
    import keras

    class MixedFaces(keras.utils.PyDataset):
        """Batches of ``compose_batch`` over an epoch's shuffled order; ``masked`` targets from
        the face kinds."""

        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = first_epoch
            self.count = len(versions.masked)

        def __len__(self):
            return math.ceil(self.count / batch_size)

        def __getitem__(self, index):
            order = epoch_order(self.count, seed, self.epoch)
            rows = order[index * batch_size:(index + 1) * batch_size]
            rng = np.random.default_rng([seed, self.epoch, index, 1])
            images, kinds = compose_batch(versions, rows, mix, photometric, rng)
            missing = pad(len(rows) % batch_size) if pad is not None else 0
            if missing:  # every device gets a share: repeat the first faces of a short batch
                again = np.arange(missing) % len(rows)
                rows = np.concatenate([rows, rows[again]])
                images = np.concatenate([images, images[again]])
                kinds = np.concatenate([kinds, kinds[again]])
            batch = {name: values[rows] for name, values in targets.items()}
            if MASKED_TASK in batch:
                batch[MASKED_TASK] = (kinds != BARE).astype("int32")
            return images, batch

        def on_epoch_end(self):
            self.epoch += 1

    return MixedFaces()


def with_face_versions(cfg, data, rows: dict, cache_dir):
    """``data`` with each photo's faces for the mix, the ``masked`` task and bare val faces.

    Args:
        cfg: The run's ``TrainConfig`` (``face_mix`` set, no segmentation).
        data: ``training.data.TrainingData`` as loaded from the manifest.
        rows: ``{"train": rows, "val": rows}``: the manifest rows of its arrays, in order.
        cache_dir: The image cache folder, or None.

    Returns:
        ``data`` with ``train_versions``; when bare photos were found, validation also holds
        the bare val faces, and with ``cfg.mask_task`` the ``masked`` task is added (targets 1
        for masked faces, 0 for bare ones; training targets are set per batch).
    """
    from maskmtl_cli.training.versions import load_versions

    train = load_versions(rows["train"], data.train_images, cfg.image_size, cfg.color_mode,
                          cache_dir)
    if not train.has_bare.any():
        return dataclasses.replace(data, train_versions=train)
    val = load_versions(rows["val"], data.val_images, cfg.image_size, cfg.color_mode, cache_dir)
    shown = val.has_bare
    val_images = np.concatenate([data.val_images, val.bare[shown]])
    val_targets = {name: np.concatenate([values, values[shown]])
                   for name, values in data.val_targets.items()}
    train_targets, tasks = dict(data.train_targets), data.tasks
    if cfg.mask_task:
        tasks = (*tasks, masked_task_spec())
        train_targets[MASKED_TASK] = np.ones(len(data.train_images), dtype="int32")
        val_targets[MASKED_TASK] = np.concatenate(
            [np.ones(len(data.val_images), "int32"), np.zeros(int(shown.sum()), "int32")])
    return dataclasses.replace(data, train_versions=train, train_targets=train_targets,
                               val_images=val_images, val_targets=val_targets, tasks=tasks)
