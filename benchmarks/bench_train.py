"""Training throughput, epoch time and peak memory of `maskmtl train`, end to end.

Each configuration runs `maskmtl train ... --json` in a fresh process and reads its summary:
images/s over the training steps (the first epoch's first step, which includes graph tracing
and compilation, is excluded), mean seconds per epoch after the first (training + validation +
checkpoints), an estimate of a 40-epoch run (first epoch + 39 later ones; an estimate, not a
measured run), and the process's peak resident memory. `--baseline` adds a bare Keras loop (the
same network, compile(loss=...) and fit on random float32 arrays in memory) for comparison.

Examples:

    # CPU, the full UTKFace train split (make the manifest once with `maskmtl split`):
    python benchmarks/bench_train.py --manifest /tmp/utk/manifest.csv --batch-sizes 32,64,128
    # Encoder widths for the compact preset: conv filters E1/E2/E3 and branch filters B,
    # timed as a bare training epoch on random arrays (wall clock and per CPU-second):
    python benchmarks/bench_train.py --widths 16/32/96:128,32/64/128:96 --batch-sizes 64
    # GPU (e.g. an H100), JAX, synthetic images, large batches, bfloat16:
    KERAS_BACKEND=jax python benchmarks/bench_train.py --synthetic 60000 \\
        --batch-sizes 512,1024 --mixed-precision --steps-per-execution 8 --epochs 4 --baseline
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="Manifest CSV with train/val rows.")
    source.add_argument("--synthetic", type=int, metavar="N",
                        help="Write N random gray images (plus N/5 val) and train on them.")
    source.add_argument("--widths", help="Compare encoder widths E1/E2/E3:B,... (see above).")
    parser.add_argument("--limit", type=int, help="Use only the first LIMIT train rows.")
    parser.add_argument("--batch-sizes", default="32,64", help="Comma-separated batch sizes.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--arch", default="hierarchical")
    parser.add_argument("--nonlocal", dest="nonlocal_block", action="store_true")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--baseline", action="store_true",
                        help="Also time a bare Keras fit on random arrays (same network).")
    args = parser.parse_args()
    if args.widths:
        compare_widths(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench_train_") as scratch:
        scratch = Path(scratch)
        if args.synthetic:
            manifest = write_synthetic(scratch / "data", args.synthetic, args.image_size)
        else:
            manifest = args.manifest.resolve()
        if args.limit:
            manifest = limit_manifest(manifest, args.limit, scratch / "limited.csv")
        print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at start; backend {args.backend}")
        print(f"# {args.preset} {args.arch}{' +nonlocal' if args.nonlocal_block else ''}, "
              f"{args.image_size}x{args.image_size}, epochs {args.epochs}, "
              f"mixed precision {args.mixed_precision}, jit {args.jit}, "
              f"steps/execution {args.steps_per_execution}")
        header = ("batch", "images/s", "images/CPU-s", "epoch s (2+)", "40 epochs (est.)",
                  "peak RSS MiB", "train imgs", "device")
        print(" | ".join(header))
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            row = run_train(args, manifest, batch_size, scratch / f"runs{batch_size}")
            print(" | ".join(str(cell) for cell in row), flush=True)
            if args.baseline:
                print(f"  bare Keras fit, batch {batch_size}: "
                      f"{bare_keras(args, batch_size):,.0f} images/s", flush=True)
        print(f"# load average {os.getloadavg()[0]:.2f} at end")


def run_train(args, manifest: Path, batch_size: int, project: Path) -> tuple:
    """One `maskmtl train` process; returns the table row."""
    command = [
        sys.executable, "-m", "maskmtl_cli", "train", str(manifest), "--json", "--no-progress",
        "--preset", args.preset, "--arch", args.arch, "--image-size", str(args.image_size),
        "--batch-size", str(batch_size), "--epochs", str(args.epochs), "--project", str(project),
        "--backend", args.backend, "--steps-per-execution", str(args.steps_per_execution),
        "--cache-dir", str(project.parent / "cache"),
        "--nonlocal" if args.nonlocal_block else "--no-nonlocal",
        "--mixed-precision" if args.mixed_precision else "--no-mixed-precision",
    ]
    if args.jit != "auto":
        command.append("--jit" if args.jit == "on" else "--no-jit")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=args.backend)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"maskmtl train failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    with open(Path(summary["run_dir"]) / "history.csv", newline="") as stream:
        seconds = [float(row["seconds"]) for row in csv.DictReader(stream)]
    later = seconds[1:] or seconds
    mean_later = sum(later) / len(later)
    estimate = seconds[0] + 39 * mean_later
    return (batch_size, f"{summary['images_per_second']:,.0f}",
            f"{summary['images_per_cpu_second']:,.0f}", f"{mean_later:.1f}",
            f"{estimate / 60:.1f} min", f"{summary['peak_rss_mib']:,.0f}",
            summary["train_images"], summary["device"])


def bare_keras(args, batch_size: int) -> float:
    """Images/s of a plain compile/fit of the same network on random float32 arrays."""
    code = f"""
import os, time, numpy as np
os.environ["KERAS_BACKEND"] = {args.backend!r}
import keras
from maskmtl_cli.models import build_network
if {args.mixed_precision}:
    keras.config.set_dtype_policy("mixed_bfloat16")
net = build_network({args.arch!r}, preset={args.preset!r}, image_size={args.image_size},
                    nonlocal_block={args.nonlocal_block})
jit = {{"auto": "auto", "on": True, "off": False}}[{args.jit!r}]
net.compile("adam", loss={{"age": "mae", "gender": "binary_crossentropy",
            "race": "sparse_categorical_crossentropy"}}, jit_compile=jit,
            steps_per_execution={args.steps_per_execution})
n = max(40 * {batch_size}, 8192)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (n, {args.image_size}, {args.image_size}, 1)).astype("float32")
y = {{"age": rng.uniform(1, 90, n).astype("float32"),
     "gender": rng.integers(0, 2, n).astype("float32"), "race": rng.integers(0, 5, n)}}
net.fit(x, y, batch_size={batch_size}, epochs=1, verbose=0)
start = time.perf_counter()
net.fit(x, y, batch_size={batch_size}, epochs=1, verbose=0)
print(n / (time.perf_counter() - start))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"baseline failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def compare_widths(args) -> None:
    """Time one epoch of the training wrapper on random data for each width variant."""
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; backend {args.backend}, hierarchical, "
          f"{args.image_size}x{args.image_size} gray, dense 128-64, jit {args.jit}")
    print("widths | batch | conv params | total params | images/s | images per CPU-second")
    for spec in args.widths.split(","):
        encoder, branch = spec.split(":")
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            code = f"""
import os, time, numpy as np, keras
from maskmtl_cli.models import MultiTaskTrainer, build_network
from maskmtl_cli.models.architectures import Preset
preset = Preset(tuple(int(w) for w in {encoder!r}.split("/")), (0.3, 0.3, 0.1),
                ("max", "avg", "avg"), {int(branch)}, 0.1, "avg", (128, 64), 0.3)
net = build_network("hierarchical", preset=preset, image_size={args.image_size})
conv = sum(l.count_params() for l in net.layers if "block" in l.name or "branch" in l.name)
trainer = MultiTaskTrainer(net, ("age", "gender", "race"), [0.1, 1.0, 1.0])
jit = {{"auto": False, "on": True, "off": False}}[{args.jit!r}]
trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
n, rng = 2048, np.random.default_rng(0)
x = rng.integers(0, 256, (n, {args.image_size}, {args.image_size}, 1)).astype("uint8")
y = {{"age": rng.uniform(1, 90, n).astype("float32"),
     "gender": rng.integers(0, 2, n).astype("float32"), "race": rng.integers(0, 5, n)}}
trainer.fit(x[:3 * {batch_size}], {{k: v[:3 * {batch_size}] for k, v in y.items()}},
            batch_size={batch_size}, epochs=1, verbose=0)
wall, cpu = time.perf_counter(), time.process_time()
trainer.fit(x, y, batch_size={batch_size}, epochs=1, verbose=0)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(conv, net.count_params(), n / wall, n / cpu)
"""
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=args.backend)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env=env)
            if done.returncode != 0:
                raise SystemExit(f"width run failed:\n{done.stderr[-3000:]}")
            conv, total, speed, per_cpu = done.stdout.split()[-4:]
            print(f"{encoder}:{branch} | {batch_size} | {int(conv):,} | {int(total):,} | "
                  f"{float(speed):,.0f} | {float(per_cpu):,.0f}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


def write_synthetic(folder: Path, count: int, size: int) -> Path:
    """Random gray PNGs with random labels: `count` train and count/5 val images."""
    import cv2
    import numpy as np
    import pandas as pd

    from maskmtl_cli.data.manifest import write_manifest

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    val = max(1, count // 5)
    rows = []
    for index in range(count + val):
        name = f"{index:06d}.png"
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (size, size), dtype=np.uint8))
        rows.append({"path": str(folder / name), "filename": name, "age": int(rng.integers(1, 90)),
                     "gender": int(rng.integers(0, 2)), "race": int(rng.integers(0, 5)),
                     "sha1": f"{index:040x}", "split": "train" if index < count else "val"})
    return write_manifest(pd.DataFrame(rows), folder / "manifest.csv")


def limit_manifest(manifest: Path, limit: int, output: Path) -> Path:
    """A copy of the manifest with the first `limit` train rows and all val rows, paths absolute."""
    with manifest.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    kept, train = [], 0
    for row in rows:
        if row["split"] == "train":
            train += 1
            if train > limit:
                continue
        if row["split"] in ("train", "val"):
            row["path"] = str((manifest.parent / row["path"]).resolve())
            kept.append(row)
    with output.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return output


if __name__ == "__main__":
    main()
