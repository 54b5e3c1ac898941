"""Wall time of `maskmtl --help` (target: under 0.5 s), and proof it loads no heavy library.

Usage: python benchmarks/bench_cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("tensorflow", "keras", "jax", "torch", "cv2", "dlib", "mtcnn", "pandas", "matplotlib",
         "sklearn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "maskmtl_cli", "--help"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    probe = ("import sys; from typer.testing import CliRunner; from maskmtl_cli.cli import app; "
             "CliRunner().invoke(app, ['--help']); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                            text=True).stdout.strip()
    print(f"maskmtl --help: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {args.runs} runs")
    print(f"heavy modules imported by --help: {loaded or 'none'}")


if __name__ == "__main__":
    main()
