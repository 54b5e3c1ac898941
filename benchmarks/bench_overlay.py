"""Time ``apply_mask`` alone (no decoding, detection or encoding) on one CPU thread.

Synthetic landmarks (frontal and turned heads, UTKFace-like face sizes) on a 200x200 and a 64x64
image; random templates and colours, with and without a forced texture. Prints the median and
90th percentile of the wall time and the median process CPU time (the latter is steadier on a
machine shared with other work), in milliseconds.

    python benchmarks/bench_overlay.py --repeats 300
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from maskmtl_cli.masking.overlay import apply_mask, warm_up
from maskmtl_cli.masking.style import choose_style

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tools/
from tools.render_synthetic import synthetic_landmarks  # noqa: E402

TEXTURES = ("weave", "check", "stripes", "dots", "floral", "camouflage")


def _cases(size: int, count: int, textured: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.dstack([150 + 40 * np.sin(xx / 9.0), 120 + 30 * np.cos(yy / 7.0),
                       100 + 0 * xx]).astype(np.uint8)
    for index in range(count):
        landmarks = synthetic_landmarks(size, yaw=rng.uniform(-25, 25), roll=rng.uniform(-12, 12),
                                        face_width=size * rng.uniform(0.55, 0.7))
        texture = TEXTURES[index % len(TEXTURES)] if textured else None
        style = choose_style(np.random.default_rng([seed, index]), texture=texture)
        yield image, landmarks, style, np.random.default_rng([seed, index, 1])


def bench(size: int, repeats: int, textured: bool) -> tuple[float, float, float]:
    cases = list(_cases(size, repeats, textured))
    for image, landmarks, style, rng in cases[:20]:  # first calls fill the small caches
        apply_mask(image, landmarks, style, rng)
    wall, cpu = [], []
    for image, landmarks, style, rng in cases:
        start, start_cpu = time.perf_counter(), time.process_time()
        apply_mask(image, landmarks, style, rng)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
        wall.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(wall)), float(np.percentile(wall, 90)), float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    warm_up()  # template maps and texture tiles, built once per process as a worker would
    print(f"apply_mask, one thread, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.repeats} masks per row")
    print(f"{'image':>8} {'textures':>10} {'median ms':>10} {'p90 ms':>8} {'cpu ms':>8}")
    for size in (200, 64):
        for textured in (False, True):
            median, p90, cpu = bench(size, args.repeats, textured)
            label = "forced" if textured else "random"
            print(f"{size:>5}px {label:>10} {median:>10.2f} {p90:>8.2f} {cpu:>8.2f}")


if __name__ == "__main__":
    main()
