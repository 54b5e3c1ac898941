"""`maskmtl train-unmask`: train the unmasking network on ``mask --save-masks`` triples.

Each step draws, for each face of the batch, one of its masked versions (``mask --variants``:
fresh masks on every pass), shows a ``bare_share`` of the faces bare (an empty mask: nothing to
find, nothing to paint), flips a random half, and grows each mask by 0 to ``max_growth`` pixels
before the inpainter sees it (the segmenter's estimate is grown at prediction time). Losses:
the segmenter's per-image cross-entropy plus Dice (``models.segmentation.segmentation_loss``)
against the exact mask; the inpainter's L1 distance to the bare face, ``hole_weight`` times
heavier on the hidden pixels; and, with ``perceptual_weight``, the perceptual distance of
``unmasking.perceptual``. Only the train split is trained on; the val split picks the best
epoch (by the inpainter's loss).

The run folder holds ``config.json``, ``history.csv``, ``last.weights.h5`` (network and
optimizer state, written after every epoch, so ``--resume`` continues an interrupted run),
``state.json``, ``unmask.keras`` (the best epoch's inference graph), its ONNX export
``unmask.onnx`` and ``summary.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import InputError, TrainingError
from maskmtl_cli.io import write_json
from maskmtl_cli.runs import CONFIG_FILE, HISTORY_FILE, STATE_FILE, SUMMARY_FILE
from maskmtl_cli.unmasking.config import (
    UNMASK_KERAS,
    UNMASK_LAST,
    UNMASK_ONNX,
    UnmaskTrainConfig,
)

#: Outputs of the training graph: the inpainter's painting and the segmenter's probability
#: (and, with a perceptual weight, the perceptual distance per face).
PAINTED, PERCEPTUAL = "painted", "perceptual"

DEFAULT_RUN_NAME = "unmask"


@dataclass(frozen=True)
class UnmaskTrainResult:
    run_dir: Path
    summary: dict


def inpainting_loss(y_true, y_pred, hole_weight: float = 6.0):
    """Per-image L1 distance (in units of 127.5) to the bare face, heavier inside the hole.

    ``y_true`` packs the bare face (channels 0-2, 0..255) and the hole (channel 3, 0/1).
    """
    from keras import ops

    target, hole = y_true[..., :3], y_true[..., 3:]
    weights = 1.0 + (hole_weight - 1.0) * hole
    error = ops.abs(ops.cast(y_pred, "float32") - target) / 127.5 * weights
    return ops.mean(ops.reshape(error, (ops.shape(error)[0], -1)), axis=-1)


def grow_masks(masks: np.ndarray, growth: np.ndarray) -> np.ndarray:
    """Grow each uint8 mask (N, S, S, 1) by its number of pixels (a 3x3 max filter each)."""
    import cv2

    grown = masks.copy()
    kernel = np.ones((3, 3), np.uint8)
    for index, pixels in enumerate(growth):
        if pixels:
            grown[index, :, :, 0] = cv2.dilate(masks[index, :, :, 0], kernel,
                                               iterations=int(pixels))
    return grown


def make_batch(triples, indices: np.ndarray, rng: np.random.Generator, max_growth: int,
               augment: bool = True, bare_share: float = 0.0):
    """Inputs and targets of the training graph for the faces at ``indices``.

    With ``augment``: a random masked version per face, a random half mirrored, masks grown by
    0..``max_growth`` pixels for the inpainter, and a ``bare_share`` of the faces shown bare
    (nothing to find, nothing to paint).
    """
    count = len(indices)
    if augment:
        choices = [np.flatnonzero(triples.versions[i]) for i in indices]
        version = np.array([rng.choice(options) for options in choices])
    else:
        version = np.zeros(count, dtype=int)
    masked = triples.masked[indices, version]
    masks = triples.masks[indices, version]
    bare = triples.bare[indices]
    if augment and bare_share > 0:
        shown_bare = rng.random(count) < bare_share
        masked[shown_bare], masks[shown_bare] = bare[shown_bare], 0
    if augment:
        flip = rng.random(count) < 0.5
        masked[flip], masks[flip], bare[flip] = (masked[flip, :, ::-1], masks[flip, :, ::-1],
                                                 bare[flip, :, ::-1])
        hole = grow_masks(masks, rng.integers(0, max_growth + 1, count))
    else:
        hole = masks
    hole = hole.astype("float32")
    inputs = {"image": masked.astype("float32"), "mask": hole, "bare": bare.astype("float32")}
    targets = {PAINTED: np.concatenate([bare.astype("float32"), hole], axis=-1),
               "mask_probability": masks.astype("float32")}
    return inputs, targets


def _sequence(triples, batch_size: int, seed: int, max_growth: int, augment: bool,
              bare_share: float = 0.0, with_perceptual: bool = False):
    import keras

    class Batches(keras.utils.PyDataset):
        """Batches of one pass; the order and augmentation depend on (seed, pass)."""

        def __init__(self):
            super().__init__()
            self.start_at(0)

        def start_at(self, epoch: int):
            """Draw the order of pass ``epoch`` (a resumed run goes on where it stopped)."""
            self.epoch = epoch
            rng = np.random.default_rng((seed, self.epoch))
            self.order = rng.permutation(len(triples)) if augment else np.arange(len(triples))

        def __len__(self):
            return math.ceil(len(triples) / batch_size)

        def __getitem__(self, index):
            picked = self.order[index * batch_size:(index + 1) * batch_size]
            rng = np.random.default_rng((seed, self.epoch, index))
            batch = make_batch(triples, picked, rng, max_growth, augment, bare_share)
            if with_perceptual:
                batch[1][PERCEPTUAL] = np.zeros(len(picked), "float32")
            else:
                del batch[0]["bare"]
            return batch

        def on_epoch_end(self):
            self.start_at(self.epoch + 1)

    return Batches()


def build_training_graph(cfg: UnmaskTrainConfig):
    """The segmenter and inpainter and the graph that trains both (true mask in).

    With a perceptual weight the graph also takes the bare face and outputs, per face, the mean
    distance between the attribute model's encoder features (``PERCEPTUAL_LAYERS``, frozen) of
    the reconstruction and of the bare face, both shrunk to that model's input.
    """
    import keras

    from maskmtl_cli.unmasking.network import build_inpainter, build_segmenter

    perceptual = cfg.perceptual_weight > 0
    segmenter = build_segmenter(cfg.image_size)
    inpainter = build_inpainter(cfg.image_size, cfg.width)
    shape = (cfg.image_size, cfg.image_size)
    image = keras.Input((*shape, 3), name="image")
    hole = keras.Input((*shape, 1), name="mask")
    bare = keras.Input((*shape, 3), name="bare")
    painted = keras.layers.Identity(name=PAINTED)(inpainter([image, hole]))
    probability = keras.layers.Identity(name="mask_probability")(segmenter(image))
    outputs = {PAINTED: painted, "mask_probability": probability}
    inputs = {"image": image, "mask": hole}
    if perceptual:
        from maskmtl_cli.unmasking.perceptual import PerceptualDistance

        outputs[PERCEPTUAL] = PerceptualDistance(name=PERCEPTUAL)([painted, hole, image, bare])
        inputs["bare"] = bare
    return keras.Model(inputs, outputs, name="unmask_train")


def _distance_is_the_loss(y_true, y_pred):
    """The perceptual output is already the per-face loss."""
    return y_pred


def _compile(graph, cfg: UnmaskTrainConfig, steps: int) -> None:
    import keras

    from maskmtl_cli.models.segmentation import segmentation_loss

    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, max(1, steps),
                                                      alpha=0.05)

    def painted_loss(y_true, y_pred):
        return inpainting_loss(y_true, y_pred, cfg.hole_weight)

    losses = {PAINTED: painted_loss, "mask_probability": segmentation_loss}
    weights = {PAINTED: 1.0, "mask_probability": 1.0}
    if cfg.perceptual_weight > 0:
        losses[PERCEPTUAL] = _distance_is_the_loss
        weights[PERCEPTUAL] = cfg.perceptual_weight
    graph.compile(optimizer=keras.optimizers.Adam(schedule), loss=losses, loss_weights=weights)


def inference_graph(graph, image_size: int, width: float):
    """The unmasking inference graph with the weights of a training graph."""
    from maskmtl_cli.unmasking.network import build_unmask_network

    network = build_unmask_network(image_size, width)
    network.get_layer("segmenter").set_weights(graph.get_layer("segmenter").get_weights())
    network.get_layer("inpainter").set_weights(graph.get_layer("inpainter").get_weights())
    return network


def train_unmask(cfg: UnmaskTrainConfig, run_dir: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> UnmaskTrainResult:
    """Train (or, with an existing ``run_dir``, resume) an unmasking run; export its ONNX.

    Args:
        cfg: The run's config.
        run_dir: The folder of a run to resume; None starts a new one.
        progress: Called with one line per epoch (the CLI prints it on stderr).
    """
    from maskmtl_cli.backend import import_keras_quietly, select_backend
    from maskmtl_cli.unmasking.data import load_triples
    from maskmtl_cli.unmasking.export import export_unmask_file

    select_backend(None)
    keras = import_keras_quietly()
    keras.utils.set_random_seed(cfg.seed)
    train = load_triples(cfg.manifest, "train", cfg.image_size)
    val = load_triples(cfg.manifest, "val", cfg.image_size, versions=False)
    if cfg.limit is not None:
        train = _first(train, cfg.limit)
        val = _first(val, max(1, cfg.limit // 4))
    perceptual = cfg.perceptual_weight > 0
    batches = _sequence(train, cfg.batch_size, cfg.seed, cfg.max_growth, augment=True,
                        bare_share=cfg.bare_share, with_perceptual=perceptual)
    val_batches = _sequence(val, cfg.batch_size, cfg.seed, 0, augment=False,
                            with_perceptual=perceptual)
    graph, state, run_dir = _start_or_resume(cfg, run_dir, cfg.epochs * len(batches))
    batches.start_at(state["epoch"])
    started = time.perf_counter()
    if state["epoch"] < cfg.epochs:
        keeper = _keeper(keras, graph, cfg, run_dir, state, progress, started)
        graph.fit(batches, validation_data=val_batches, epochs=cfg.epochs,
                  initial_epoch=state["epoch"], verbose=0,
                  callbacks=[keeper, keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE),
                                                               append=True)])
    differences = export_unmask_file(run_dir / UNMASK_KERAS, run_dir / UNMASK_ONNX)
    summary = {"run_dir": str(run_dir), "epochs": state["epoch"],
               "best_epoch": state["best_epoch"], "best_val_painted_loss": state["best_val"],
               "train_faces": len(train), "val_faces": len(val),
               "seconds": round(time.perf_counter() - started, 1),
               "onnx_parity": differences}
    write_json(run_dir / SUMMARY_FILE, summary)
    return UnmaskTrainResult(run_dir=run_dir, summary=summary)


def _start_or_resume(cfg: UnmaskTrainConfig, run_dir: Path | None, steps: int):
    """The compiled training graph, the run's state and its folder (new, or resumed)."""
    from maskmtl_cli.training.run_folder import new_run_dir, read_state

    graph = build_training_graph(cfg)
    _compile(graph, cfg, steps)
    if run_dir is None:
        run_dir = new_run_dir(cfg.project, cfg.name, DEFAULT_RUN_NAME,
                              "maskmtl train-unmask")
        write_json(run_dir / CONFIG_FILE, cfg.to_dict())
        return graph, {"epoch": 0, "best_epoch": None, "best_val": None}, run_dir
    state = read_state(run_dir)
    graph.optimizer.build(graph.trainable_variables)  # so that its state loads too
    graph.load_weights(run_dir / UNMASK_LAST)
    return graph, state, run_dir


def _keeper(keras, graph, cfg: UnmaskTrainConfig, run_dir: Path, state: dict, progress,
            started: float):
    """The callback that, after each epoch, saves the weights and optimizer, the best epoch's
    inference graph and ``state.json``, and reports the epoch."""
    from maskmtl_cli.training.run_folder import save_keras_atomic

    class Keeper(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = float(logs.get(f"val_{PAINTED}_loss", math.nan))
            if not math.isfinite(float(logs.get("loss", math.nan))):
                raise TrainingError(f"The loss became {logs.get('loss')} at epoch {epoch + 1}; "
                                    "lower --learning-rate and start again.")
            _save_weights(graph, run_dir / UNMASK_LAST)
            if state["best_val"] is None or value < state["best_val"]:
                state.update(best_val=value, best_epoch=epoch + 1)
                save_keras_atomic(inference_graph(graph, cfg.image_size, cfg.width),
                                  run_dir / UNMASK_KERAS)
            state["epoch"] = epoch + 1
            write_json(run_dir / STATE_FILE, state)
            if progress:
                progress(f"epoch {epoch + 1}/{cfg.epochs}: loss {logs.get('loss', 0):.4f}, "
                         f"val painted {value:.4f}, val mask "
                         f"{logs.get('val_mask_probability_loss', math.nan):.4f} "
                         f"({time.perf_counter() - started:.0f} s)")

    return Keeper()


def resume_config(run_dir: Path) -> UnmaskTrainConfig:
    """The saved config of an unmasking run that has finished at least one epoch."""
    run_dir = Path(run_dir)
    missing = [name for name in (CONFIG_FILE, STATE_FILE, UNMASK_LAST)
               if not (run_dir / name).is_file()]
    if missing:
        raise InputError(f"Cannot resume '{run_dir}': it has no {', '.join(missing)} (not an "
                         "unmasking run, or no epoch finished). Start a new run instead.")
    return UnmaskTrainConfig.load(run_dir / CONFIG_FILE)


def _first(triples, count: int):
    from dataclasses import replace

    return replace(triples, masked=triples.masked[:count], masks=triples.masks[:count],
                   bare=triples.bare[:count], versions=triples.versions[:count],
                   rows=triples.rows.iloc[:count])


def _save_weights(graph, path: Path) -> None:
    from maskmtl_cli.io import atomic_path

    with atomic_path(path, suffix=".weights.h5") as temp:
        graph.save_weights(temp)
