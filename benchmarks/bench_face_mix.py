"""Speed of composing training batches with the face mix (issue 21), against masking.

``train``'s default recipe builds every batch on the fly (``training.face_mix.compose_batch``):
a masked version, an occluded or a bare face per slot, then photometric jitter. This prints
faces per second on one core for random 48x48 RGB faces (no data set needed), with and without
the jitter, so it can be set beside ``maskmtl mask``'s own rate (its ``--json`` summary:
``images_per_s`` and the per-stage milliseconds) to decide between masking inside the training
pipeline and masking once into ``--variants``.

    python benchmarks/bench_face_mix.py [--faces 4096] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from maskmtl_cli.training.config import DEFAULT_FACE_MIX
from maskmtl_cli.training.face_mix import compose_batch
from maskmtl_cli.training.versions import FaceVersions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=48)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.faces, args.size, args.size, 3)
    versions = FaceVersions(
        masked=rng.integers(0, 256, (args.faces, 4, *shape[1:]), dtype=np.uint8),
        bare=rng.integers(0, 256, shape, dtype=np.uint8),
        has_bare=np.ones(args.faces, bool), versions=np.ones((args.faces, 4), bool))
    batches = args.faces // args.batch_size
    for strength in (0.0, 1.0):
        started = time.perf_counter()
        for index in range(batches):
            rows = np.arange(index * args.batch_size, (index + 1) * args.batch_size)
            compose_batch(versions, rows, DEFAULT_FACE_MIX, strength,
                          np.random.default_rng([0, index]))
        seconds = time.perf_counter() - started
        print(f"photometric {strength:g}: {batches * args.batch_size / seconds:,.0f} faces/s, "
              f"{seconds / batches * 1000:.1f} ms per batch of {args.batch_size}")


if __name__ == "__main__":
    main()
