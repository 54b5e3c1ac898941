"""`maskmtl split`: label, de-duplicate and split an image folder into a manifest CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.data.split_config import SplitConfig

_D = SplitConfig(data_dir=Path())  # the defaults, shown in the help


def _check_ratios(text: str) -> str:
    """A bad --ratios is a usage error (exit 2), reported before any image is read."""
    from maskmtl_cli.data.split import parse_ratios
    from maskmtl_cli.errors import InputError

    try:
        parse_ratios(text)
    except InputError as error:
        raise typer.BadParameter(str(error).removeprefix("--ratios ")) from None
    return text


@app.command("split")
@guarded
def split_command(
    data_dir: Annotated[Path, typer.Argument(help="Folder of face images (searched recursively).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest CSV to write.")
    ] = _D.output,
    labels: Annotated[Optional[Path], typer.Option(
        help="CSV with 'filename' and label columns: any of age, gender, race, and any others "
             "(kept for tasks of their own). Default: UTKFace file names.")] = None,
    strategy: Annotated[str, typer.Option(
        help="random (seeded, stratified by gender, race, age band) or parts (the paper's "
             "protocol: part1 trains; the rest is split test:val 10,719:3,252).")] = _D.strategy,
    ratios: Annotated[str, typer.Option(
        help="train,val,test shares for --strategy random: three numbers >= 0 that sum to 1.",
        callback=_check_ratios)] = ",".join(f"{share:g}" for share in _D.ratios),
    parts: Annotated[Optional[Path], typer.Option(
        help="CSV with filename,part for --strategy parts (e.g. utkface_meta/parts.csv).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = _D.seed,
    keep_duplicates: Annotated[bool, typer.Option(
        help="Keep every copy of byte-identical images (always in one split).")
    ] = _D.keep_duplicates,
    keep_conflicts: Annotated[bool, typer.Option(
        help="Keep duplicate groups whose copies carry different labels.")
    ] = _D.keep_conflicts,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing manifest.")
                         ] = _D.overwrite,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Label, de-duplicate and split a folder of face images into a manifest CSV.

    Labels come from UTKFace names (AGE_GENDER_RACE_DATETIME.jpg.chip.jpg) or from --labels,
    whose every column is kept. In a folder written by `maskmtl mask --save-masks`, each
    image's mask PNG is recorded (column 'mask'). Malformed names, unreadable files and
    out-of-range labels are listed as skipped. Byte-identical copies never straddle two splits.

    Example: maskmtl split UTKFace/ -o manifest.csv --strategy random --seed 0
    """
    from maskmtl_cli.cli.split_summary import render_split_summary
    from maskmtl_cli.data.split import make_split, parse_ratios, summarize

    config = SplitConfig(data_dir=data_dir, output=output, labels_csv=labels, strategy=strategy,
                         ratios=parse_ratios(ratios), parts_csv=parts, seed=seed,
                         keep_duplicates=keep_duplicates, keep_conflicts=keep_conflicts,
                         overwrite=overwrite)
    summary = summarize(make_split(config), config)
    render_split_summary(summary, json_output=json_output)
