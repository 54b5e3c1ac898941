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
_VIDEO = "Videos"
_D = PredictConfig(inputs=())  # the defaults, shown in the help


@app.command("predict")
@guarded
def predict_command(
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="Photos, videos (.mp4/.avi/.mov/.mkv/.webm/.m4v, any OpenCV reads), or folders "
             "searched recursively for .jpg/.jpeg/.png/.bmp/.webp/.tif and those videos; "
             "- reads one image from standard input (maskmtl predict - < photo.jpg).",
        metavar="INPUTS", show_default=False)] = None,
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
    every: Annotated[int, typer.Option(
        min=1, rich_help_panel=_VIDEO,
        help="Predict on every Nth frame of a video (1: every frame, fast enough for 640x480 "
             "at 25 frames/s on two cores; docs/predict.md#videos).")] = _D.every,
    video_min_face: Annotated[int, typer.Option(
        min=1, rich_help_panel=_VIDEO,
        help="--min-face for video frames: smaller faces are ignored, larger values are "
             "faster.")] = _D.video_min_face,
    camera: Annotated[Optional[int], typer.Option(
        min=0, rich_help_panel=_VIDEO, show_default=False,
        help="Also read camera N (0: the first) until Ctrl-C; INPUTS may then be left out.")
    ] = None,
    tracks: Annotated[Optional[Path], typer.Option(
        rich_help_panel=_VIDEO, show_default=False,
        help="Write one summary per face track of the videos here: JSON, or CSV if the name "
             "ends in .csv. The table shows the same summary; --json/--csv print one record "
             "per face per processed frame.")] = None,
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
    """Predict age, gender and ethnicity (or the model's own tasks) for every face in photos
    and videos.

    Faces are found with RetinaFace (robust to masks), aligned and cropped like the UTKFace
    training images, then passed to the model; every task of the model is listed by its name.
    In videos each person's face keeps one track id from frame to frame, and each track's
    predictions are averaged over its frames. Results go to stdout as a table, --json or --csv;
    unreadable files and photos without a face are reported on stderr. Exit codes: 0 done
    (also when no face is found), 1 bad input or model, 2 usage error, 3 no face with --strict,
    130 stopped by Ctrl-C (what was done is printed and kept).

    Example: maskmtl predict photo.jpg clip.mp4 --model runs/train --annotate annotated/
    """
    if as_json and as_csv:
        raise typer.BadParameter("Pass at most one of --json and --csv.", param_hint="--json")
    if not inputs and camera is None:
        raise typer.BadParameter("Pass photos, videos or folders (or --camera N).",
                                 param_hint="INPUTS")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from maskmtl_cli.cli.predict_render import print_result, progress_reporter
    from maskmtl_cli.cli.predict_video_render import check_interrupted, video_progress_reporter
    from maskmtl_cli.prediction.predict import check_strict, run_predict

    config = PredictConfig(inputs=tuple(inputs or ()), model=model, detector=detector,
                           aligned=aligned, faces=faces, min_face=min_face, flip=flip,
                           strict=strict, batch_size=batch_size, annotate_dir=annotate,
                           cam_dir=cam, engine=engine, masks_dir=masks, every=every,
                           video_min_face=video_min_face, camera=camera, tracks_path=tracks)
    with progress_reporter() as progress, video_progress_reporter() as video_progress:
        result = run_predict(config, progress=progress, video_progress=video_progress)
    print_result(result, "json" if as_json else "csv" if as_csv else "table")
    check_interrupted(result)
    check_strict(result, config)
