"""`maskmtl unmask` and `maskmtl train-unmask`: reconstruct the face under the mask."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.schema import DETECTORS
from maskmtl_cli.unmasking.config import UnmaskConfig, UnmaskTrainConfig

_D = UnmaskConfig(inputs=(), out_dir=Path())  # the defaults, shown in the help
_T = UnmaskTrainConfig(manifest=Path())


@app.command("unmask")
@guarded
def unmask_command(
    paths: Annotated[list[Path], typer.Argument(
        help="Photo files or folders (searched recursively), then OUT_DIR: the folder for one "
             "reconstructed image per photo, with the same names.", show_default=False,
        metavar="PHOTOS... OUT_DIR")],
    model: Annotated[Path | None, typer.Option(
        "--model", help="Unmasking model: a run folder of `maskmtl train-unmask` or its "
                        ".onnx file (default: the shipped model).", show_default=False)] = None,
    detector: Annotated[Literal[DETECTORS], typer.Option(
        help="Face detector (as in `maskmtl predict`).")] = _D.detector,
    min_face: Annotated[int, typer.Option(
        min=1, help="Smallest face to find, in pixels.")] = _D.min_face,
    faces: Annotated[Literal["all", "largest"], typer.Option(
        help="Unmask every face of a photo, or only the largest.")] = _D.faces,
    aligned: Annotated[bool, typer.Option(
        "--aligned", help="The photos are aligned face crops (like UTKFace's): no detection, "
                          "the centred square is the face.")] = _D.aligned,
    side_by_side: Annotated[bool, typer.Option(
        "--side-by-side", help="Write each photo and its reconstruction side by side.")
    ] = _D.side_by_side,
    crops: Annotated[bool, typer.Option(
        "--crops", help="Also write each face's aligned crop, the mask the model found (red) "
                        "and the reconstruction to OUT_DIR/_crops/.")] = _D.crops,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Redo photos whose output exists (default: skip them, so a rerun "
                            "resumes).")] = _D.overwrite,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the records (unmask.json) on stdout instead of a table.")
    ] = False,
) -> None:
    """Reconstruct the faces under the masks in photos, writing one image per photo.

    Each face is found and aligned as `maskmtl predict` does; the unmasking model
    finds the mask on the aligned face and paints the face under it; the
    painting is warped back into the photo inside the mask only (pixels more
    than a few pixels from the mask are left as they were). A face without a
    mask is left as it is and reported. OUT_DIR/unmask.json records every photo
    and face. Existing outputs are skipped, so a rerun resumes.

    Example: maskmtl unmask photo.jpg photos/ unmasked/ --side-by-side
    """
    import json

    from maskmtl_cli.console import CountProgress
    from maskmtl_cli.errors import InputError
    from maskmtl_cli.unmasking.pipeline import run_unmask

    if len(paths) < 2:
        raise InputError("Pass at least one photo or folder and then OUT_DIR, e.g. "
                         "maskmtl unmask photo.jpg unmasked/.")
    config = UnmaskConfig(inputs=tuple(paths[:-1]), out_dir=paths[-1], model=model,
                          detector=detector, min_face=min_face, faces=faces, aligned=aligned,
                          side_by_side=side_by_side, crops=crops, overwrite=overwrite)
    with CountProgress("unmasking") as progress:
        result = run_unmask(config, progress)
    if json_output:
        print(json.dumps({"model": str(result.model), "photos": result.photos}, indent=2))
    else:
        _print_unmask(result)


@app.command("train-unmask")
@guarded
def train_unmask_command(
    manifest: Annotated[Path | None, typer.Argument(
        help="Manifest CSV of a `maskmtl mask --save-masks` output (from `maskmtl split`); "
             "its train split is trained on, val picks the best epoch.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option(
        help="Run name (default: unmask, unmask2, ...).", show_default=False)] = None,
    project: Annotated[Path, typer.Option(help="Folder of run folders.")] = _T.project,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the train split.")
                      ] = _T.epochs,
    batch_size: Annotated[int, typer.Option(min=1, help="Faces per step.")] = _T.batch_size,
    image_size: Annotated[int, typer.Option(
        min=16, help="Side of the aligned crops (a multiple of 8).")] = _T.image_size,
    width: Annotated[float, typer.Option(help="Multiplier of the inpainter's filters.")
                     ] = _T.width,
    learning_rate: Annotated[float, typer.Option(help="Adam's starting learning rate.")
                             ] = _T.learning_rate,
    hole_weight: Annotated[float, typer.Option(
        help="Weight of the L1 loss on hidden pixels relative to visible ones.")
    ] = _T.hole_weight,
    bare_share: Annotated[float, typer.Option(
        help="Share of training faces shown bare, with no mask to find.")] = _T.bare_share,
    perceptual_weight: Annotated[float, typer.Option(
        help="Weight of the perceptual loss (the shipped attribute model's features of the "
             "reconstruction vs the bare face; 0: none).")] = _T.perceptual_weight,
    seed: Annotated[int, typer.Option(help="Seed of weights, order and augmentation.")
                    ] = _T.seed,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Only the first N training faces (quick trials).", show_default=False)
    ] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue an interrupted run folder (its own config; --epochs may raise it).",
        show_default=False)] = None,
) -> None:
    """Train the unmasking model: find the mask, paint the face under it.

    Trains on the triples `maskmtl mask --save-masks` writes (masked face, its
    exact mask, the bare face), one masked version per face per epoch when the
    faces were masked with --variants. Writes runs/NAME with the best epoch's
    unmask.keras and its ONNX export unmask.onnx (what `maskmtl unmask --model`
    takes). Needs the train extra: pip install 'maskmtl[train]'.

    Example: maskmtl train-unmask masked/manifest.csv --epochs 15 --name unmask64
    """
    import dataclasses

    from maskmtl_cli.console import err_console
    from maskmtl_cli.errors import InputError
    from maskmtl_cli.extras import EXPORT_PACKAGES, require_extra

    require_extra("train", "`maskmtl train-unmask`", EXPORT_PACKAGES)
    from maskmtl_cli.unmasking.training import resume_config, train_unmask

    if resume is not None:
        config = resume_config(resume)
        if epochs != _T.epochs:
            config = dataclasses.replace(config, epochs=epochs)
    elif manifest is None:
        raise InputError("Pass the manifest to train on (from `maskmtl split` of a `maskmtl "
                         "mask --save-masks` output), or --resume RUN.")
    else:
        if not manifest.is_file():
            raise InputError(f"Manifest '{manifest}' does not exist. Make one with `maskmtl "
                             "split MASKED_DIR -o manifest.csv`.")
        config = UnmaskTrainConfig(manifest=manifest, project=project, name=name,
                                   image_size=image_size, width=width, epochs=epochs,
                                   batch_size=batch_size, learning_rate=learning_rate,
                                   hole_weight=hole_weight, bare_share=bare_share,
                                   perceptual_weight=perceptual_weight, seed=seed, limit=limit)
    result = train_unmask(config, resume, progress=lambda line: err_console.print(
        line, highlight=False))
    summary = result.summary
    print(f"Trained {summary['epochs']} epochs (best: epoch {summary['best_epoch']}) on "
          f"{summary['train_faces']} faces: {result.run_dir / 'unmask.onnx'}")


def _print_unmask(result) -> None:
    """A table of the faces on stdout and a one-line summary on stderr."""
    from rich.console import Console
    from rich.table import Table

    from maskmtl_cli.console import err_console

    table = Table("file", "face", "box", "status", "mask share", "confidence")
    for photo in result.photos:
        if not photo.get("faces"):
            table.add_row(photo["file"], "", "", photo["status"], "", "")
        for face in photo.get("faces", []):
            table.add_row(photo["file"], str(face["face"]), " ".join(map(str, face["box"])),
                          face["status"], f"{face['mask_fraction']:.2f}",
                          f"{face['mask_confidence']:.2f}")
    Console().print(table)
    faces = result.faces
    unmasked = sum(face["status"] == "unmasked" for face in faces)
    err_console.print(
        f"{len(result.photos)} photos: {unmasked} faces unmasked, "
        f"{len(faces) - unmasked} without a mask left as they were, "
        f"{result.count('no face')} photos without a face, {result.count('unreadable')} "
        f"unreadable. Wrote {result.out_dir} (records: {result.records_path}).",
        highlight=False, soft_wrap=True)
