"""`maskmtl train --devices 2` on one CPU split in two, against the same run on one device.

TensorFlow (the default backend) splits the CPU into two logical devices
(``tf.config.set_logical_device_configuration``) for ``MirroredStrategy``; JAX into two host
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) for
``keras.distribution.DataParallel``. Each run is a fresh process (a device split must come before
the backend starts) that records, as every training step computes its loss, the pixel sum of each
image it was given: the multiset of those per epoch is the images the epoch saw.

Tolerance: one epoch on 2 devices reaches a training loss within 5% of one device's. Measured
here: TensorFlow 0.6% (batch-norm statistics and dropout streams are per device), JAX 1e-7 (one
program sees the whole batch: round-off only). Where an image is repeated to fill the last batch
(``Placement.even``), the epoch is shuffled as a different number of images, so the steps see
other batches: 15% there (measured 5%).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.training.devices import Placement

from test_train_cli import write_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
LOSS_TOLERANCE = 0.05
#: With a repeated image the shuffled order differs from one device's (see the docstring).
REPEATED_LOSS_TOLERANCE = 0.15
#: The instrumented run: split the device, wrap the trainer's loss, run the real CLI.
RUNNER = '''
import json, os, sys
backend, devices, manifest, project, seen_file = sys.argv[1:6]
if backend == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras import ops
from maskmtl_cli.models.multi_task_trainer import MultiTaskTrainer
seen, compute_loss = [], MultiTaskTrainer.compute_loss
def recording(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
    if training:  # the pixel sum of every image this step trains on, on whichever device
        sums = ops.sum(ops.cast(x, "float32"), axis=(1, 2, 3))
        if backend == "tensorflow":
            import tensorflow as tf
            tf.py_function(lambda v: seen.extend(v.numpy().tolist()) or 0, [sums], tf.int32)
        else:
            import jax
            jax.debug.callback(lambda v: seen.extend(v.tolist()), sums)
    return compute_loss(self, x, y, y_pred, sample_weight, training)
MultiTaskTrainer.compute_loss = recording
from maskmtl_cli.cli import app
try:
    app(["train", manifest, "--preset", "tiny", "--image-size", "32", "--batch-size", "16",
         "--epochs", "1", "--no-progress", "--project", project, "--devices", devices, "--json"],
        standalone_mode=False)
finally:
    with open(seen_file, "w") as handle:
        json.dump(sorted(seen), handle)
'''


def train_on(backend: str, devices: int, manifest: Path, folder: Path) -> tuple[dict, list]:
    """One instrumented epoch; the summary and the sorted pixel sums of the images trained on."""
    script = folder / "runner.py"
    script.write_text(RUNNER)
    seen = folder / f"seen{devices}.json"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [
               os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, str(script), backend, str(devices), str(manifest),
                             str(folder / f"runs{devices}"), str(seen)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout[result.stdout.index("{"):]), json.loads(seen.read_text())


def compare_one_and_two_devices(backend: str, train_count: int, repeated: int,
                                tmp_path: Path) -> None:
    """Train ``train_count`` images on 1 and 2 devices; ``repeated`` of them fill the last
    batch on 2 (see ``Placement.even``)."""
    splits = ["train"] * train_count + ["val"] * 16
    manifest = write_dataset(tmp_path / "data", count=train_count + 20, splits=splits)
    one, seen_one = train_on(backend, 1, manifest, tmp_path)
    two, seen_two = train_on(backend, 2, manifest, tmp_path)
    assert (one["devices"], two["devices"]) == (1, 2)
    assert two["distribution"].startswith("2 x CPU")
    assert one["train_images"] == two["train_images"] == train_count
    # The same images in the epoch on either placement, each once (but the repeated ones).
    assert len(seen_one) == train_count and len(set(seen_one)) == train_count
    assert len(seen_two) == train_count + repeated and set(seen_two) == set(seen_one)
    loss_one, loss_two = one["last_metrics"]["loss"], two["last_metrics"]["loss"]
    assert np.isfinite(loss_two)
    tolerance = REPEATED_LOSS_TOLERANCE if repeated else LOSS_TOLERANCE
    assert abs(loss_two - loss_one) <= tolerance * loss_one, (loss_one, loss_two)
    # The same run folder.
    folders = [Path(summary["run_dir"]) for summary in (one, two)]
    assert sorted(p.name for p in folders[0].iterdir()) == sorted(
        p.name for p in folders[1].iterdir())
    assert json.loads((folders[1] / "config.json").read_text())["devices"] == 2


@pytest.mark.parametrize("train_count, repeated", [
    (67, 0),  # 4 batches of 16, then 3 images: 2 on one device, 1 on the other
    (65, 1),  # 4 batches of 16, then 1: repeated once so that no device goes without
])
def test_two_tensorflow_devices_see_the_same_images_and_reach_the_same_loss(
        tmp_path, train_count, repeated):
    compare_one_and_two_devices("tensorflow", train_count, repeated, tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_two_jax_devices_see_the_same_images_and_reach_the_same_loss(tmp_path):
    # 66 = 4 batches of 16, then 2: one image a device.
    compare_one_and_two_devices("jax", 66, 0, tmp_path)


def test_a_short_batch_is_filled_to_split_evenly_only_where_it_must():
    images = np.arange(67 * 4, dtype=np.uint8).reshape(67, 2, 2, 1)
    targets = {"age": np.arange(67.0)}
    jax_like = Placement(devices=2, _distribution=object())
    padded, padded_targets = jax_like.even(images, targets, 16)  # last batch 3: one more
    assert len(padded) == 68 and (padded[67] == images[0]).all()
    assert padded_targets["age"][67] == 0.0
    assert jax_like.even(images[:66], {"age": targets["age"][:66]}, 16)[0].shape[0] == 66
    assert jax_like.batch(256) == 256
    assert Placement(devices=3, _distribution=object()).batch(256) == 255
    tensorflow_like = Placement(devices=2, _strategy=object())
    assert tensorflow_like.even(images, targets, 16)[0] is images  # 2 + 1 is fine there
    assert len(tensorflow_like.even(images[:65], targets, 16)[0]) == 66  # 1 + 0 is not
    assert tensorflow_like.batch(256) == 256
    assert Placement().even(images[:65], targets, 16)[0].shape[0] == 65


@pytest.mark.parametrize("devices, expected", [
    ("0", "--devices must be a number of devices (1 or more) or auto"),
    ("two", "--devices must be a number of devices (1 or more) or auto"),
    ("2", "--devices 2: TensorFlow sees 1 device here"),
])
def test_bad_device_counts_fail_clearly(tmp_path, devices, expected):
    manifest = write_dataset(tmp_path / "data", count=24)
    result = CliRunner().invoke(app, ["train", str(manifest), "--preset", "tiny",
                                      "--image-size", "32", "--epochs", "1", "--no-progress",
                                      "--project", str(tmp_path / "runs"), "--devices", devices])
    assert result.exit_code == 1, result.output
    assert expected in " ".join(result.stderr.split())
    assert not (tmp_path / "runs").exists()


def test_several_tensorflow_hosts_are_refused_with_the_way_out(tmp_path, monkeypatch):
    manifest = write_dataset(tmp_path / "data", count=24)
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 0}}))
    result = CliRunner().invoke(app, ["train", str(manifest), "--preset", "tiny",
                                      "--image-size", "32", "--epochs", "1", "--no-progress",
                                      "--project", str(tmp_path / "runs"), "--devices", "auto"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "TF_CONFIG names 2 TensorFlow tasks" in message
    assert "keras-team/keras#20585" in message and "--backend jax" in message
    assert not (tmp_path / "runs").exists()
