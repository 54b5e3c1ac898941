"""`maskmtl mask`: put synthetic masks on every face photo in a folder tree."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.masking.config import (
    DEFAULT_VARIANTS,
    FACE_MODES,
    MAX_PREVIEW,
    MAX_VARIANTS,
    ON_FAIL_MODES,
    MaskConfig,
)
from maskmtl_cli.schema import MASK_DETECTORS

#: The defaults, shown in the help (read from the fields: building a MaskConfig loads the
#: mask styles, which the help must not wait for).
_D = {field.name: field.default for field in dataclasses.fields(MaskConfig)}
_STYLE = "Mask style"
_FACES = "Faces and landmarks"
_RUN = "Run"


@app.command("mask")
@guarded
def mask_command(
    input_dir: Annotated[Path, typer.Argument(
        help="Folder of face photos (searched recursively).")],
    output_dir: Annotated[Path, typer.Argument(
        help="Folder for the masked copies (same tree, names and formats), masks.csv and "
             "failures.csv. Must not be inside INPUT_DIR.")],
    mask_type: Annotated[str, typer.Option(
        "--mask-type", "-t", rich_help_panel=_STYLE,
        help="Template: surgical, n95, kn95, cloth, valved, duckbill, or random "
             "(one drawn per face by --mix).")] = _D["mask_type"],
    mix: Annotated[Optional[str], typer.Option(
        rich_help_panel=_STYLE,
        help="Template weights for random mode, e.g. surgical=0.4,cloth=0.3,n95=0.3 "
             "(normalised; default: every template).")] = None,
    colour: Annotated[Optional[str], typer.Option(
        "--colour", "--color", rich_help_panel=_STYLE,
        help="Palette name or #RRGGBB hex; default: a realistic random colour per mask.")] = None,
    texture: Annotated[Optional[str], typer.Option(
        rich_help_panel=_STYLE,
        help="Texture: plain, weave, check, stripes, dots, floral, camouflage...; "
             "default: random.")] = None,
    texture_weight: Annotated[Optional[float], typer.Option(
        rich_help_panel=_STYLE, min=0.0, max=1.0,
        help="Blend of the texture over the colour (0-1); default: random.")] = None,
    seed: Annotated[int, typer.Option(
        rich_help_panel=_STYLE, min=0,
        help="Seed: image i (sorted order) uses seed and i, so results do not depend on "
             "--workers.")] = _D["seed"],
    variants: Annotated[int, typer.Option(
        rich_help_panel=_STYLE, min=1, max=MAX_VARIANTS,
        help="Masked versions of each photo: version 0 in OUTPUT_DIR, versions 1..K-1 in "
             "OUTPUT_DIR/_variants/K (seeded). `split` keeps them with their photo; `train` "
             "draws one per face per epoch.")] = DEFAULT_VARIANTS,
    aligned: Annotated[bool, typer.Option(
        "--aligned", rich_help_panel=_FACES,
        help="Images are aligned face crops (like UTKFace): use the crop as the face box, no "
             "detector, so no face is missed. The mode for aligned crops.")] = _D["aligned"],
    detector: Annotated[Literal[MASK_DETECTORS], typer.Option(
        rich_help_panel=_FACES,
        help="Face detector: auto (dlib HOG, then RetinaFace where HOG finds nothing), hog "
             "(fast, bare faces), retinaface (masked and turned faces), or cnn (dlib CNN, slow "
             "on CPU).")] = _D["detector"],
    faces: Annotated[Literal[FACE_MODES], typer.Option(
        rich_help_panel=_FACES, help="Mask the largest face of each photo, or all faces.")
    ] = _D["faces"],
    on_fail: Annotated[Literal[ON_FAIL_MODES], typer.Option(
        rich_help_panel=_FACES,
        help="Images without a usable face: leave them out, or copy them unmasked.")
    ] = _D["on_fail"],
    save_masks: Annotated[bool, typer.Option(
        "--save-masks", rich_help_panel=_RUN,
        help="Also write a binary mask PNG per image to OUTPUT_DIR/_masks/<path>.png.")
    ] = _D["save_masks"],
    preview: Annotated[int, typer.Option(
        rich_help_panel=_RUN, min=0, max=MAX_PREVIEW,
        help="Write OUTPUT_DIR/preview.png, a contact sheet of N inputs beside their outputs.")
    ] = _D["preview"],
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-w", rich_help_panel=_RUN, min=1,
        help="Worker processes (default: all cores); with --ray, Ray tasks at once "
             "(default: the cluster's CPUs).")] = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", rich_help_panel=_RUN, metavar="ADDRESS",
        help="Mask on a Ray cluster: HOST:PORT of its head, ray://HOST:PORT, or auto "
             "($RAY_ADDRESS, else the cluster started here with `ray start --head`). Every "
             "node must see INPUT_DIR and OUTPUT_DIR at the same paths (a shared filesystem "
             "such as NFS); outputs are identical to a local run. Needs "
             "pip install 'maskmtl\\[ray]'. See docs/scale.md.")] = None,
    limit: Annotated[Optional[int], typer.Option(
        rich_help_panel=_RUN, min=1, help="Only the first N images in sorted order.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", rich_help_panel=_RUN,
        help="Redo images whose output exists (default: skip them, so a rerun resumes).")
    ] = _D["overwrite"],
    jpeg_quality: Annotated[int, typer.Option(
        rich_help_panel=_RUN, min=1, max=100, help="JPEG/WebP output quality.")
    ] = _D["jpeg_quality"],
    as_json: Annotated[bool, typer.Option(
        "--json", rich_help_panel=_RUN, help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Overlay synthetic face masks on every photo in INPUT_DIR, writing to OUTPUT_DIR.

    Faces and 68 landmarks come from dlib; each mask is warped onto the
    landmarks. OUTPUT_DIR mirrors the input tree with the same file names and
    formats. masks.csv lists every image (template, colour, texture, face box,
    status); failures.csv the ones left unmasked, with the reason. Existing
    outputs are skipped, so rerunning resumes an interrupted run. With --ray
    the images are masked as Ray tasks on a cluster whose nodes share the
    two folders.

    Example:

        maskmtl mask UTKFace/ masked/ --aligned --seed 1 --preview 16
    """
    from maskmtl_cli.masking.batch import run_mask
    from maskmtl_cli.masking.config import MaskConfig, parse_mix_option
    from maskmtl_cli.masking.variants import variant_configs

    config = MaskConfig(
        input_dir=input_dir, output_dir=output_dir, mask_type=mask_type,
        mix=parse_mix_option(mix), colour=colour, texture=texture,
        texture_weight=texture_weight, seed=seed, detector=detector, aligned=aligned,
        faces=faces, on_fail=on_fail, save_masks=save_masks, overwrite=overwrite,
        workers=workers, limit=limit, preview=preview, jpeg_quality=jpeg_quality,
        ray_address=ray,
    )
    from maskmtl_cli.console import CountProgress

    summaries = []
    for version in variant_configs(config, variants):  # one bar per masked version
        with CountProgress("masking") as progress:
            summaries.append(run_mask(version, progress=progress))
    for summary in summaries:
        _render_summary(summary)
    if as_json:
        records = [summary.to_dict() for summary in summaries]
        typer.echo(json.dumps(records[0] if variants == 1 else {"variants": records}, indent=2))


def _render_summary(summary) -> None:
    """Counts, failure reasons, rate and output paths on stderr."""
    from maskmtl_cli.console import err_console

    err_console.print(
        f"[bold]{summary.masked}[/] masked, [bold]{summary.failed}[/] failed"
        + (f" ({summary.copied} copied unmasked)" if summary.copied else "")
        + f", {summary.skipped_existing} skipped (output exists)"
        + f" of {summary.selected} images"
        + (f" in {summary.processing_s:.1f} s, {summary.images_per_s:.1f} images/s with "
           f"{summary.workers} worker{'s' if summary.workers != 1 else ''}"
           + (f" on {summary.ray_nodes} Ray node{'s' if summary.ray_nodes != 1 else ''}"
              if summary.ray_nodes else "")
           if summary.processed else ""),
        highlight=False,
    )
    for reason, count in summary.failures_by_reason.items():
        err_console.print(f"  failed, {reason}: {count}", highlight=False)
    if summary.ignored_files:
        err_console.print(f"  {summary.ignored_files} non-image files ignored", highlight=False)
    for warning in summary.warnings:
        err_console.print(f"[yellow]Warning:[/] {warning}", highlight=False)
    err_console.print(f"Records: {summary.masks_csv}", highlight=False, soft_wrap=True)
    if summary.failed or summary.failures_by_reason:
        err_console.print(f"Failures: {summary.failures_csv}", highlight=False, soft_wrap=True)
    if summary.preview:
        err_console.print(f"Preview: {summary.preview}", highlight=False, soft_wrap=True)
