"""Cost of one training step of the unmasking network at 64x64 and 128x128 crops.

Times `fit` of the segmenter + inpainter (the L1 and segmentation losses, Adam) on random
images, batch 32, after one warm-up pass, and prints ms per face and the minutes an epoch of a
given number of faces would take (16,179: the random split's train share of all UTKFace;
6,846: of crop_part1, the only faces at 200 px, which a 128x128 model needs).

Usage (repository root): python benchmarks/bench_unmask_train.py [--sizes 64 128] [--faces 512]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import numpy as np

    from maskmtl_cli.backend import import_keras_quietly
    from maskmtl_cli.unmasking.config import UnmaskTrainConfig
    from maskmtl_cli.unmasking.training import _compile, build_training_graph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--faces", type=int, default=512)
    args = parser.parse_args()
    import_keras_quietly()
    rng = np.random.default_rng(0)
    print(f"{'size':>5s} {'ms/face':>8s} {'min/epoch 16,179':>17s} {'min/epoch 6,846':>16s}")
    for size in args.sizes:
        cfg = UnmaskTrainConfig(manifest=None, image_size=size, perceptual_weight=0.0)
        graph = build_training_graph(cfg)
        _compile(graph, cfg, 1000)
        images = rng.uniform(0, 255, (args.faces, size, size, 3)).astype("float32")
        holes = (rng.random((args.faces, size, size, 1)) < 0.4).astype("float32")
        inputs = {"image": images, "mask": holes}
        targets = {"painted": np.concatenate([images, holes], axis=-1),
                   "mask_probability": holes}
        graph.fit(inputs, targets, batch_size=32, epochs=1, verbose=0)
        started = time.perf_counter()
        graph.fit(inputs, targets, batch_size=32, epochs=1, verbose=0)
        per_face = (time.perf_counter() - started) / args.faces
        print(f"{size:5d} {1000 * per_face:8.2f} {per_face * 16179 / 60:17.1f} "
              f"{per_face * 6846 / 60:16.1f}", flush=True)


if __name__ == "__main__":
    main()
