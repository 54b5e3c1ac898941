"""`maskmtl predict`: age, gender and ethnicity for every face in photos, masked or not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.prediction.config import FACE_MODES, PredictConfig
from maskmtl_cli.schema import DETECTOR_HELP, DETECTORS, ENGINES

_FACES = "Faces"
_OUTPUT = "Output"
_D = PredictConfig(inputs=())  # the defaults, shown in the help


@app.command("predict")
@guarded
def predict_command(
    inputs: Annotated[list[Path], typer.Argument(
        help="Photos, or folders searched recursively for .jpg/.jpeg/.png/.bmp/.webp/.tif; "
             "- reads one image from standard input (maskmtl predict - < photo.jpg).",
        show_default=False)],
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m",
        help="Run folder from `maskmtl train` (its best.onnx / best.keras), or a .onnx or "
             ".keras file. Default: the pretrained model shipped with maskmtl.")] = None,
    detector: Annotated[Literal[DETECTORS], typer.Option(
        rich_help_panel=_FACES,
        help="Face detector: " + "; ".join(f"{name}: {what}" for name, what in
                                           DETECTOR_HELP.items()) + ".")] = _D.detector,
    aligned: Annotated[bool, typer.Option(
        "--aligned", rich_help_panel=_FACES,
        help="Inputs are already aligned face crops like UTKFace's: skip detection and "
             "alignment, just resize.")] = _D.aligned,
    faces: Annotated[Literal[FACE_MODES], typer.Option(
        rich_help_panel=_FACES, help="Every face of a photo (left to right), or the largest.")
    ] = _D.faces,
    min_face: Annotated[int, typer.Option(
        rich_help_panel=_FACES, min=1,
        help="Smallest face to find, in pixels; larger values are faster on big photos.")
    ] = _D.min_face,
    as_json: Annotated[bool, typer.Option(
        "--json", rich_help_panel=_OUTPUT, help="Print a JSON list of faces on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option(
        "--csv", rich_help_panel=_OUTPUT, help="Print CSV (one row per face) on stdout.")] = False,
    annotate: Annotated[Optional[Path], typer.Option(
        rich_help_panel=_OUTPUT, help="Write copies of the photos with boxes and labels here.")
    ] = None,
    cam: Annotated[Optional[Path], typer.Option(
        rich_help_panel=_OUTPUT,
        help="Write Grad-CAM heatmaps over each aligned face here, one PNG per face and task.")
    ] = None,
    masks: Annotated[Optional[Path], typer.Option(
        rich_help_panel=_OUTPUT,
        help="Write each face's predicted mask here as a PNG (255 = covered), in the frame of "
             "its aligned crop; needs a model trained with --segmentation.")] = None,
    flip: Annotated[bool, typer.Option(
        "--flip", help="Also predict on the mirrored face and average (slower, steadier).")
    ] = _D.flip,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit with code 3 when any photo has no face (default: exit 0).")
    ] = _D.strict,
    batch_size: Annotated[int, typer.Option(min=1, help="Faces per forward pass.")
                          ] = _D.batch_size,
    engine: Annotated[Literal[ENGINES], typer.Option(
        help="onnx: ONNX Runtime (fast, no TensorFlow); keras: TensorFlow. --cam always uses "
             "Keras (Grad-CAM needs gradients).")] = _D.engine,
) -> None:
    """Predict age, gender and ethnicity (or the model's own tasks) for every face in photos.

    Faces are found with RetinaFace (robust to masks), aligned and cropped like the UTKFace
    training images, then passed to the model; every task of the model is listed by its name.
    Results go to stdout as a table, --json or --csv;
    unreadable files and photos without a face are reported on stderr. Exit codes: 0 done
    (also when no face is found), 1 bad input or model, 2 usage error, 3 no face with --strict.

    Example: maskmtl predict photo.jpg --model runs/train --annotate annotated/
    """
    if as_json and as_csv:
        raise typer.BadParameter("Pass at most one of --json and --csv.", param_hint="--json")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from maskmtl_cli.cli.predict_render import print_result, progress_reporter
    from maskmtl_cli.prediction.predict import check_strict, run_predict

    config = PredictConfig(inputs=tuple(inputs), model=model, detector=detector, aligned=aligned,
                           faces=faces, min_face=min_face, flip=flip, strict=strict,
                           batch_size=batch_size, annotate_dir=annotate, cam_dir=cam,
                           engine=engine, masks_dir=masks)
    with progress_reporter() as progress:
        result = run_predict(config, progress=progress)
    print_result(result, "json" if as_json else "csv" if as_csv else "table")
    check_strict(result, config)
