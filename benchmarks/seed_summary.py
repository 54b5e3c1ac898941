"""Mean and spread over training seeds of evaluated runs, as a Markdown table.

Runs named ``<row>`` and ``<row>-s<N>`` (what ``reproduce_table1.sh`` writes for SEEDS="0 1 2")
are grouped by ``<row>``; each run's ``eval/metrics.json`` (from ``maskmtl eval``) gives its
headline metrics. The spread is the sample standard deviation over the seeds.

Usage:

    python benchmarks/seed_summary.py table1/runs/hier-nl table1/runs/hier-nl-s1 ...
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

METRICS = (("gender_accuracy", "gender acc", 4), ("race_accuracy", "ethnicity acc", 4),
           ("age_mae", "age MAE", 2))


def group_runs(runs: list[Path]) -> dict[str, list[dict]]:
    """Headline metrics of each evaluated run, grouped by row name (seed suffix removed)."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        metrics_file = run / "eval" / "metrics.json"
        if not metrics_file.is_file():
            print(f"skipping {run}: no eval/metrics.json (run `maskmtl eval {run}`)",
                  file=sys.stderr)
            continue
        row = re.sub(r"-s\d+$", "", run.name)
        groups.setdefault(row, []).append(json.loads(metrics_file.read_text())["headline"])
    return groups


def format_table(groups: dict[str, list[dict]]) -> str:
    """One line per row: mean +- standard deviation (number of seeds) of each metric."""
    lines = ["| row | seeds | " + " | ".join(label for _, label, _ in METRICS) + " |",
             "|---|---:|" + "---:|" * len(METRICS)]
    for row, runs in groups.items():
        cells = []
        for key, _, digits in METRICS:
            values = [run[key] for run in runs if run.get(key) is not None]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                cells.append(f"{values[0]:.{digits}f}")
            else:
                cells.append(f"{statistics.mean(values):.{digits}f} "
                             f"± {statistics.stdev(values):.{digits}f}")
        lines.append(f"| {row} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    print(format_table(group_runs([Path(arg) for arg in argv])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
