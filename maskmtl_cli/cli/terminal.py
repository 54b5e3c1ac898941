"""Terminal rendering of what the core returns: tables and JSON on stdout.

The core builds values (``reports.tables.TableSpec``, dicts); only the CLI prints them.
"""

from __future__ import annotations

import json
from typing import Any


def print_json(value: Any, allow_nan: bool = True) -> None:
    """``value`` as indented JSON on stdout (numpy scalars as numbers, NaN as null)."""
    from maskmtl_cli.io import json_ready

    print(json.dumps(json_ready(value), indent=2, allow_nan=allow_nan))


def print_evaluation(metrics: dict[str, Any], json_output: bool = False) -> None:
    """Every table of an evaluation on stdout, or only the metrics JSON (``json_output``)."""
    if json_output:
        print_json(metrics, allow_nan=False)
        return
    from maskmtl_cli.console import out_console
    from maskmtl_cli.reports.tables import evaluation_tables, to_rich

    meta = metrics["meta"]
    out_console.print(f"[bold]{meta['model']}[/] on {meta['manifest']} (split {meta['split']}): "
                      f"{metrics['n']} faces", highlight=False)
    for spec in evaluation_tables(metrics):
        out_console.print(to_rich(spec))


def print_comparison(comparison: dict[str, Any], json_output: bool = False) -> None:
    """The comparison table on stdout, or the comparison JSON alone with ``json_output``."""
    if json_output:
        print_json(comparison)
        return
    from maskmtl_cli.console import out_console
    from maskmtl_cli.evaluation.compare import comparison_table
    from maskmtl_cli.reports.tables import to_rich

    out_console.print(to_rich(comparison_table(comparison, compact=out_console.width < 160)))
