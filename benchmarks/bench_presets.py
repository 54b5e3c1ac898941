"""Training and inference speed of network shapes, on random data.

For each candidate (a preset at an input size, hierarchical + non-local, RGB, label-distribution
age head): training images/s of ``MultiTaskTrainer.train_on_batch`` with the training
augmentation (3 warm-up steps, then 15 timed steps of batch 64), and inference faces/s of its
ONNX export on ONNX Runtime at batch 256 (what `predict` and `eval` run). The figures compare
network shapes on one machine; ``bench_train.py`` measures the real `maskmtl train` loop and
``bench_predict.py`` the whole `predict` path.

Usage (from the repository root):

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_presets.py [NAME ...]

NAME is one of the candidates below (default: all of them).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskmtl_cli.models import MultiTaskTrainer  # noqa: E402
from maskmtl_cli.models.architectures import build_network, count_parameters  # noqa: E402

#: name -> (preset, input size).
CANDIDATES: dict[str, tuple[str, int]] = {
    "compact48": ("compact", 48),
    "compact-gap48": ("compact-gap", 48),
    "compact-gap64": ("compact-gap", 64),
    "deep48": ("deep", 48),
    "wide48": ("wide", 48),
    "wide-gap48": ("wide-gap", 48),
    "wide64": ("wide", 64),
}
BATCH, WARMUP, STEPS = 64, 3, 15
TASKS = ("age", "gender", "race")


def training_rate(network) -> float:
    """Training images/s of one network with augmentation and the multi-task losses."""
    import keras

    trainer = MultiTaskTrainer(network, TASKS, age_loss="ldl", augment=True)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    size = network.input_shape[1]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH, size, size, 3)).astype("float32")
    y = {"age": rng.uniform(1, 90, BATCH).astype("float32"),
         "gender": rng.integers(0, 2, BATCH).astype("float32"),
         "race": rng.integers(0, 5, BATCH).astype("int32")}
    for _ in range(WARMUP):
        trainer.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(STEPS):
        trainer.train_on_batch(x, y)
    return STEPS * BATCH / (time.perf_counter() - start)


def inference_rate(network, batch: int = 256, repeats: int = 5) -> float:
    """Faces/s of the network's ONNX export on ONNX Runtime (median of ``repeats``)."""
    from maskmtl_cli.inference import OnnxModel
    from maskmtl_cli.models.export import export_onnx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(network, path)
        model = OnnxModel(path)
        size = network.input_shape[1]
        x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
        model.predict_on_batch(x)
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict_on_batch(x)
            rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main(names: list[str]) -> None:
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    for name in names or list(CANDIDATES):
        preset, size = CANDIDATES[name]
        network = build_network("hierarchical", preset=preset, image_size=size,
                                color_mode="rgb", nonlocal_block=True, age_loss="ldl")
        parameters = count_parameters(network)["total"]
        onnx_rate = inference_rate(network)
        train_rate = training_rate(network)
        print(f"{name:<14} {parameters:>10,} parameters  train {train_rate:6.0f} images/s  "
              f"ONNX Runtime {onnx_rate:7.0f} faces/s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
