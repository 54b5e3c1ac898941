"""Why an age head collapses: dead hidden units, measured on a model's own faces.

For a `.keras` model with a dense age head (``age_dense1``, ``age_dense2``, ... then ``age``),
prints per manifest split: how many hidden units of each age layer never activate on any face
(dead ReLUs), the share of faces for which a whole layer is zero (its output is then a
constant: only the next layer's bias is left), that share per band of true age, and the share
of faces that get the most common predicted age.

Usage (repository root):

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/diagnose_age_head.py MODEL.keras MANIFEST.csv \\
        [--splits train,test]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


BANDS = ((0, 10), (10, 20), (20, 30), (30, 60), (60, 200))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--splits", default="train,test")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import maskmtl_cli.models  # noqa: F401  (registers the custom layers)
    from maskmtl_cli.data.dataset import load_split
    from maskmtl_cli.data.manifest import read_manifest
    from maskmtl_cli.evaluation.metrics import collapse_summary
    from maskmtl_cli.inference import input_spec

    model = keras.saving.load_model(args.model, compile=False)
    hidden = [layer.name for layer in model.layers if layer.name.startswith("age_dense")]
    if not hidden:
        raise SystemExit(f"{args.model} has no age_dense layers (a pooled or other head).")
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in hidden] +
                        [model.get_layer("age").output])
    size, colour = input_spec(model)
    table = read_manifest(args.manifest)
    for split in args.splits.split(","):
        arrays = load_split(table, split, size, colour, cache_dir="default")
        *activations, ages = probe.predict(arrays.images.astype("float32"), batch_size=256,
                                           verbose=0)
        collapse = collapse_summary("age", ages[:, 0])
        print(f"{split}: {len(ages)} faces; most common predicted age {collapse['value']} "
              f"for {collapse['share']:.1%} of them")
        for name, values in zip(hidden, activations):
            never = int((values.max(axis=0) <= 0).sum())
            all_zero = (values <= 0).all(axis=1)
            bands = ", ".join(
                f"{lo}-{hi - 1 if hi < 200 else '+'}: {all_zero[(arrays.age >= lo) & (arrays.age < hi)].mean():.1%}"
                for lo, hi in BANDS)
            print(f"  {name}: {never} of {values.shape[1]} units never active; whole layer "
                  f"zero for {all_zero.mean():.1%} of the faces (by true age {bands})")


if __name__ == "__main__":
    main()
