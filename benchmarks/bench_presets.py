"""Training speed of network widths and depths: ``train_on_batch`` images/s on random data.

Builds hierarchical + non-local RGB networks with training augmentation, compiles them with
plain per-task losses, warms up 3 steps, then times 15 steps of batch 64. The figures compare
network shapes on one machine; ``bench_train.py`` measures the real `maskmtl train` loop.

Usage (from the repository root):

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_presets.py [NAME ...]

NAME is one of the candidates below (default: all of them).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskmtl_cli.models.architectures import PRESETS, Preset, build_network, count_parameters  # noqa: E402,E501

_COMPACT = PRESETS["compact"]
_TWO = replace(_COMPACT, encoder_filters=(24, 48, 96), convs_per_block=2)
CANDIDATES: dict[str, tuple[Preset, int]] = {
    "compact48": (_COMPACT, 48),
    "compact64": (_COMPACT, 64),
    "wide64": (PRESETS["wide"], 64),
    "two-convs48": (_TWO, 48),
    "two-convs64": (_TWO, 64),
}
BATCH, WARMUP, STEPS = 64, 3, 15


def images_per_second(preset: Preset, size: int) -> tuple[int, float]:
    """Parameter count and training images/s of one network shape."""
    model = build_network("hierarchical", preset=preset, image_size=size, color_mode="rgb",
                          nonlocal_block=True, augment=True)
    model.compile(optimizer="adam", loss={"age": "mae", "gender": "binary_crossentropy",
                                          "race": "sparse_categorical_crossentropy"})
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH, size, size, 3)).astype("float32")
    y = {"age": rng.uniform(1, 90, (BATCH, 1)), "gender": rng.integers(0, 2, (BATCH, 1)),
         "race": rng.integers(0, 5, (BATCH, 1))}
    for _ in range(WARMUP):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(STEPS):
        model.train_on_batch(x, y)
    return count_parameters(model)["total"], STEPS * BATCH / (time.perf_counter() - start)


def main(names: list[str]) -> None:
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    for name in names or list(CANDIDATES):
        preset, size = CANDIDATES[name]
        parameters, rate = images_per_second(preset, size)
        print(f"{name:<12} {parameters:>10,} parameters  {rate:6.0f} images/s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
