"""Time `maskmtl split` and the image loader (cold and cached) on all of utkface64.

Usage: python benchmarks/bench_data.py [--data ../shared/data/utkface64] [--size 48] [--color gray]
Prints wall times in seconds. The cache goes to a temporary folder so "cold" really is cold
(apart from the OS file cache, which the split run warms up first, as in real use).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "utkface64")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--color", default="gray", choices=["gray", "rgb"])
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"Data folder {args.data} not found; pass --data.")
    with tempfile.TemporaryDirectory() as work:
        manifest = Path(work) / "manifest.csv"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "maskmtl_cli", "split", str(args.data), "-o",
                        str(manifest)], check=True, capture_output=True)
        print(f"split (process start to manifest): {time.perf_counter() - start:.2f} s")
        from maskmtl_cli.data.dataset import load_split

        cache = Path(work) / "cache"
        for label in ("cold", "cached"):
            start = time.perf_counter()
            data = load_split(manifest, None, size=args.size, color_mode=args.color, cache_dir=cache)
            print(f"load {len(data)} images at {args.size}x{args.size} {args.color} ({label}): "
                  f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
