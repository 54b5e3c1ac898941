"""Keras callbacks of ``maskmtl train``: the run recorder and the progress display.

``RunRecorder`` owns the run folder while ``fit`` runs: after every epoch it appends
``history.csv``, saves ``best.keras`` when the validation loss improved and ``last.keras`` +
``state.json`` always (so ``--resume`` can continue), stops early when asked, stops on a NaN
loss, and times the training steps for the images/s figure. ``ProgressDisplay`` draws one rich
progress bar on stderr over all steps and prints one line of validation metrics per epoch.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Callable

import keras

from maskmtl_cli.io import write_json
from maskmtl_cli.training import run_folder
from maskmtl_cli.training.state import RunState

#: Metric columns of history.csv, in display order.
METRIC_ORDER = ("loss", "age_mae", "gender_loss", "gender_acc", "race_loss", "race_acc")


class RunRecorder(keras.callbacks.Callback):
    """Write the per-epoch files of a run folder and keep ``state`` up to date.

    Args:
        run_dir: The run folder.
        state: The run state (``training.state.RunState``: ``epochs_done``, ``best_val_loss``,
            ``best_epoch``, ``best_metrics``, the timers), updated in place and
            saved as ``state.json`` after every epoch.
        save_best: Called with the trainer when the validation loss improved; saves best.keras.
        train_size: Number of training images (to count images per step).
        batch_size: Training batch size.
        early_stopping: Patience in epochs (0: never stop early).
    """

    def __init__(
        self,
        run_dir: Path,
        state: RunState,
        save_best: Callable,
        train_size: int,
        batch_size: int,
        early_stopping: int = 0,
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state = state
        self.save_best = save_best
        self.train_size = train_size
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.nan_epoch: int | None = None
        self.last_improved = False
        self._first_epoch_of_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = (time.perf_counter(), time.process_time())
        self._timer_start = None
        self._timer_end = None

    def on_train_batch_end(self, batch, logs=None):
        now = (time.perf_counter(), time.process_time())
        seen = min((batch + 1) * self.batch_size, self.train_size)
        if self._timer_start is None:
            # The first call of a fit includes graph tracing and compilation: time from its end.
            self._timer_start = (now, seen) if self._first_epoch_of_fit else (self._epoch_start, 0)
        self._timer_end = (now, seen)

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        number = epoch + 1
        seconds = time.perf_counter() - self._epoch_start[0]
        self._first_epoch_of_fit = False
        if not all(math.isfinite(logs.get(key, 0.0)) for key in ("loss", "val_loss")):
            self.nan_epoch = number
            self.model.stop_training = True
            return
        if self._timer_start is not None and self._timer_end is not None:
            (wall_end, cpu_end), seen_end = self._timer_end
            (wall_start, cpu_start), seen_start = self._timer_start
            self.state["timed_images"] += seen_end - seen_start
            self.state["timed_seconds"] += wall_end - wall_start
            # CPU time of all threads: a throughput figure other processes skew much less.
            self.state["timed_cpu_seconds"] = (
                self.state.get("timed_cpu_seconds", 0.0) + cpu_end - cpu_start
            )
        # via NumPy: float() refuses a tf.distribute MirroredVariable (train --devices N)
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": number, "lr": _round(learning_rate), "seconds": round(seconds, 3)}
        row.update({key: _round(logs[key]) for key in _ordered_metrics(logs)})
        self._append_history(row)
        val_loss = logs.get("val_loss", math.inf)
        improved = val_loss < self.state.get("best_val_loss", math.inf)
        if improved:
            self.save_best(self.model)
            self.state["best_val_loss"] = val_loss
            self.state["best_epoch"] = number
            self.state["best_metrics"] = {k: v for k, v in logs.items() if k.startswith("val_")}
        self.state["epochs_done"] = number
        self.state["last_metrics"] = logs
        if self.early_stopping and number - self.state.get("best_epoch", 0) >= self.early_stopping:
            self.state["stopped_early"] = True
            self.model.stop_training = True
        run_folder.save_keras_atomic(self.model, self.run_dir / run_folder.LAST_FILE)
        write_json(self.run_dir / run_folder.STATE_FILE, self.state)
        self.last_improved = improved  # read by ProgressDisplay, which runs after this callback

    def _append_history(self, row: dict) -> None:
        """Append one row; a resumed run keeps the columns of its existing file."""
        path = self.run_dir / run_folder.HISTORY_FILE
        exists = path.is_file() and path.stat().st_size > 0
        fields = list(row)
        if exists:
            with path.open(newline="", encoding="utf-8") as stream:
                fields = next(csv.reader(stream))
        with path.open("a", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=fields, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)


class ProgressDisplay(keras.callbacks.Callback):
    """One rich progress bar over all training steps and one summary line per epoch (stderr).

    Args:
        epochs: Total epochs of the run.
        initial_epoch: Epochs already done (resumed runs).
        steps_per_epoch: Training steps per epoch.
        recorder: The run's ``RunRecorder`` (to mark improved epochs).
    """

    def __init__(self, epochs: int, initial_epoch: int, steps_per_epoch: int, recorder=None):
        super().__init__()
        self.epochs = epochs
        self.initial_epoch = initial_epoch
        self.steps_per_epoch = steps_per_epoch
        self.recorder = recorder
        self._progress = None

    def on_train_begin(self, logs=None):
        from maskmtl_cli.console import make_progress

        self._progress = make_progress()
        self._progress.start()
        self._task = self._progress.add_task(
            self._describe(self.initial_epoch),
            total=(self.epochs - self.initial_epoch) * self.steps_per_epoch,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._task, description=self._describe(epoch))

    def on_train_batch_end(self, batch, logs=None):
        if self._progress is not None:
            done = (self._epoch - self.initial_epoch) * self.steps_per_epoch + batch + 1
            self._progress.update(self._task, completed=done)

    def on_epoch_end(self, epoch, logs=None):
        if self._progress is None:
            return
        logs = logs or {}
        seconds = time.perf_counter() - self._epoch_start
        if self.recorder is not None and self.recorder.nan_epoch == epoch + 1:
            line = f"epoch {epoch + 1}/{self.epochs}: [bold red]loss is NaN[/], stopping"
        else:
            improved = self.recorder is not None and self.recorder.last_improved
            line = format_epoch_line(epoch + 1, self.epochs, logs, seconds, improved)
        self._progress.console.print(line, highlight=False)

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Stop drawing (also called when training is interrupted)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _describe(self, epoch: int) -> str:
        return f"epoch {min(epoch + 1, self.epochs)}/{self.epochs}"


def format_epoch_line(
    number: int, epochs: int, logs: dict, seconds: float, improved: bool = False
) -> str:
    """``epoch 3/40: loss 1.23 | val loss 1.31, age MAE 7.12, gender 88.1%, race 76.0% (12 s)``."""
    metrics = [f"loss {logs.get('val_loss', math.nan):.4g}"]
    if "val_age_mae" in logs:
        metrics.append(f"age MAE {logs['val_age_mae']:.2f}")
    if "val_gender_acc" in logs:
        metrics.append(f"gender {logs['val_gender_acc']:.1%}")
    if "val_race_acc" in logs:
        metrics.append(f"race {logs['val_race_acc']:.1%}")
    metrics += other_task_metrics(logs)
    marker = " [green]* best[/]" if improved else ""
    return (f"epoch {number}/{epochs}: loss {logs.get('loss', math.nan):.4g} | val "
            f"{', '.join(metrics)} ({seconds:.0f} s){marker}")


def other_task_metrics(logs: dict, prefix: str = "val_") -> list[str]:
    """Short texts for the validation metrics of tasks beyond UTKFace's three, and mask IoU."""
    texts = []
    for key in sorted(logs):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.endswith("_acc") and name not in ("gender_acc", "race_acc"):
            texts.append(f"{name[:-4]} {logs[key]:.1%}")
        elif name.endswith("_mae") and name != "age_mae":
            texts.append(f"{name[:-4]} MAE {logs[key]:.3g}")
        elif name == "segmentation_iou":
            texts.append(f"mask IoU {logs[key]:.3f}")
    return texts


def _round(value: float) -> float:
    """Six significant digits: float32 metrics carry no more."""
    return float(f"{value:.6g}")


def _ordered_metrics(logs: dict) -> list[str]:
    """Train metrics in METRIC_ORDER, then their val_ twins, then anything else."""
    keys = [key for key in METRIC_ORDER if key in logs]
    keys += [f"val_{key}" for key in METRIC_ORDER if f"val_{key}" in logs]
    keys += sorted(key for key in logs if key not in keys)
    return keys

