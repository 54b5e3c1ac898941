"""Rendering of the ``maskmtl split`` summary: rich tables on stderr, JSON on stdout."""

from __future__ import annotations

import json

from rich.table import Table

from maskmtl_cli.console import err_console

_MAX_LISTED = 10


def _counts_table(summary: dict) -> Table:
    splits = summary["splits"]
    table = Table(title=f"Manifest {summary['manifest']}: {summary['images']} images",
                  title_justify="left")
    table.add_column("")
    for name in splits:
        table.add_column(name, justify="right")
    table.add_row("[bold]images", *(str(splits[s]["images"]) for s in splits))
    for field in ("gender", "race", "age_band"):
        table.add_section()
        for key in next(iter(splits.values()))[field]:
            table.add_row(f"{field.replace('_', ' ')} {key}",
                          *(str(splits[s][field][key]) for s in splits))
    return table


def render_split_summary(summary: dict, json_output: bool = False) -> None:
    """Print the per-split counts and everything skipped or dropped (stderr), or JSON (stdout)."""
    if json_output:
        print(json.dumps(summary, indent=2))
        return
    err_console.print(_counts_table(summary))
    skipped = summary["skipped"]
    if skipped:
        err_console.print(f"[yellow]Skipped {len(skipped)} files:[/]")
        for item in skipped[:_MAX_LISTED]:
            err_console.print(f"  {item['file']}: {item['reason']}", highlight=False)
        if len(skipped) > _MAX_LISTED:
            err_console.print(f"  ... and {len(skipped) - _MAX_LISTED} more (see --json)")
    if summary["lenient_names"]:
        err_console.print(f"Parsed {len(summary['lenient_names'])} malformed names leniently "
                          f"(age/gender/race prefix intact): {', '.join(summary['lenient_names'])}",
                          highlight=False)
    conflicts = summary["conflicting_groups"]
    err_console.print(
        f"Duplicates: {summary['duplicate_groups']} groups of byte-identical files; "
        f"{summary['duplicate_files_removed']} files removed; {len(conflicts)} groups with "
        f"conflicting labels {'kept' if summary['config']['keep_conflicts'] else 'dropped'}.")
    for group in conflicts[:3]:
        err_console.print(f"  conflict: {' = '.join(group)}", highlight=False)
    if summary["groups_moved_to_train"]:
        err_console.print(f"{summary['groups_moved_to_train']} duplicate groups straddled part1 "
                          "and the other parts: kept whole in train.")
    if summary.get("label_columns"):
        err_console.print("Other label columns (images labelled): " + ", ".join(
            f"{name} ({count})" for name, count in summary["label_columns"].items()),
            highlight=False)
    if summary.get("masks"):
        err_console.print(f"Ground-truth masks: {summary['masks']} images have one (column "
                          "'mask', for `maskmtl train --segmentation`).", highlight=False)
    if summary["ignored_non_image_files"]:
        err_console.print(f"Ignored {summary['ignored_non_image_files']} non-image files.")
    err_console.print(f"[green]Wrote[/] {summary['manifest']}")
