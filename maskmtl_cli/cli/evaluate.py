"""`maskmtl eval`: score a trained run on a manifest split, or compare evaluated runs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.evaluation.config import EvalConfig
from maskmtl_cli.schema import DETECTORS, ENGINES


class Split(str, Enum):
    """Splits ``--split`` accepts (``all``: every row of the manifest)."""

    test = "test"
    val = "val"
    train = "train"
    all = "all"


_D = EvalConfig()  # the defaults, shown in the help
_DEFAULT_SPLIT = Split(_D.split)

@app.command("eval")
@guarded
def evaluate_command(
    runs: Annotated[Optional[list[Path]], typer.Argument(
        help="Run folder or .keras file (default: the most recent run under runs/). With "
             "--compare: any number of runs, eval folders or metrics.json files.",
        show_default=False, metavar="RUN")] = None,
    manifest: Annotated[Optional[Path], typer.Option(
        "--manifest", "-m", help="Manifest CSV (default: the run's own, else ./manifest.csv).",
        show_default=False)] = None,
    split: Annotated[Split, typer.Option(help="Split to evaluate.")] = _DEFAULT_SPLIT,
    report: Annotated[bool, typer.Option(
        "--report", help="Also write report.md with PNG figures.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Output folder (default: RUN/eval).", show_default=False)] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the metrics JSON on stdout instead of tables.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per prediction batch.")
                          ] = _D.batch_size,
    flip: Annotated[bool, typer.Option(
        "--flip", help="Average predictions with the horizontally flipped image.")] = False,
    engine: Annotated[Literal[ENGINES], typer.Option(
        help="onnx: ONNX Runtime (fast); keras: TensorFlow.")] = _D.engine,
    bootstrap: Annotated[int, typer.Option(
        min=0, help=f"Bootstrap resamples for the {100 * _D.metrics.confidence:g}% intervals "
                    "(0: none).")] = _D.metrics.bootstrap,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = _D.metrics.seed,
    min_group: Annotated[int, typer.Option(
        min=1, help="Smallest fairness group that is ranked for worst/best.")
    ] = _D.metrics.min_group_size,
    group_by: Annotated[Optional[str], typer.Option(
        help="Manifest columns whose combinations form the fairness groups, e.g. "
             "gender,template. \\[default: gender,race where labelled]",
        show_default=False)] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        help="Image cache folder (default: $MASKMTL_CACHE_DIR or ~/.cache/maskmtl).",
        show_default=False)] = None,
    detect: Annotated[bool, typer.Option(
        "--detect", help="The manifest lists photos, not aligned crops: find and align their "
                         "faces as `maskmtl predict` does and score the largest of each.")
    ] = _D.detect,
    detector: Annotated[Literal[DETECTORS], typer.Option(
        help="Face detector for --detect (as in `maskmtl predict`).")] = _D.detector,
    min_face: Annotated[int, typer.Option(
        min=1, help="Smallest face --detect searches for, in pixels.")] = _D.min_face,
    reconstruction: Annotated[bool, typer.Option(
        "--reconstruction", help="Score an unmasking model instead: PSNR and SSIM of its "
                                 "reconstructions against the bare faces, OpenCV's Telea "
                                 "inpainting as the floor, and RUN (default: the shipped "
                                 "attribute model) on bare, masked and reconstructed faces. "
                                 "Needs a manifest of a `maskmtl mask --save-masks` output.")
    ] = False,
    unmask_model: Annotated[Optional[Path], typer.Option(
        help="Unmasking model for --reconstruction: a `maskmtl train-unmask` run folder or "
             ".onnx (default: the shipped one).", show_default=False)] = None,
    grid: Annotated[int, typer.Option(
        min=0, help="Faces in --reconstruction's picture grid (0: none).")] = 12,
    limit: Annotated[Optional[int], typer.Option(
        min=1, help="Only the first N faces of the split (--reconstruction; default: all).",
        show_default=False)] = None,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Compare evaluated runs side by side from their metrics.json "
                          "(all runs under runs/ when none are named).")] = False,
) -> None:
    """Evaluate a trained model on a manifest split, or compare evaluated runs.

    Scores every task of the model: classification tasks such as gender and
    ethnicity (accuracy, per-class precision, recall, F1, confusion matrices),
    age (MAE, RMSE, CS(5), MAE per age band), other regression tasks (MAE,
    RMSE, bias) and the segmentation head (IoU, Dice); every metric per group
    (gender x ethnicity, or --group-by) with the worst group, and 95%
    bootstrap intervals. Labels the manifest lacks and tasks the model lacks
    are not scored. Images that fail to load are listed and left out.

    Writes metrics.json and predictions.csv to RUN/eval (or --out), and
    report.md with PNG figures with --report. Tables go to stdout; --json
    prints the metrics JSON only. Without RUN: the most recent run in runs/.

    With --detect the manifest's images are ordinary photos: each photo's
    faces are found and aligned as `maskmtl predict` does, the largest is
    scored, and metrics.json gets a detection section (photos without a
    face are listed, never dropped silently).

    With --reconstruction the model scored is an unmasking model (see `maskmtl
    unmask`); results go to --out (default: reconstruction_eval/).

    Example: maskmtl eval runs/train --report
    """
    from maskmtl_cli.console import err_console

    if reconstruction:
        _evaluate_reconstruction(runs, manifest, split.value, unmask_model, out, grid, limit,
                                 engine, cache_dir, json_output)
        return

    if compare:
        from maskmtl_cli.cli.terminal import print_comparison
        from maskmtl_cli.evaluation.compare import compare_runs
        from maskmtl_cli.evaluation.config import CompareConfig

        print_comparison(compare_runs(CompareConfig(runs=tuple(runs or ()), out_dir=out)),
                         json_output)
        return
    from maskmtl_cli.cli.terminal import print_evaluation
    from maskmtl_cli.evaluation.config import EvalConfig, MetricOptions, parse_group_by
    from maskmtl_cli.evaluation.pipeline import check_single_run, evaluate_run

    config = EvalConfig(
        run=check_single_run(runs), manifest=manifest, split=split.value, out_dir=out,
        report=report, batch_size=batch_size, flip=flip, engine=engine,
        cache_dir=cache_dir if cache_dir is not None else "default",
        metrics=MetricOptions(bootstrap=bootstrap, seed=seed, min_group_size=min_group),
        group_by=parse_group_by(group_by), detect=detect, detector=detector, min_face=min_face)
    outcome = evaluate_run(config, log=lambda line: err_console.print(line, highlight=False,
                                                                       soft_wrap=True))
    print_evaluation(outcome.metrics, json_output)
    err_console.print(f"[green]Wrote[/] {', '.join(path.name for path in outcome.files)} "
                      f"to {outcome.out_dir}", highlight=False, soft_wrap=True)


def _evaluate_reconstruction(runs, manifest, split, unmask_model, out, grid, limit, engine,
                             cache_dir, json_output) -> None:
    """`eval --reconstruction`: build the config, run it, print the tables."""
    import json

    from maskmtl_cli.console import err_console
    from maskmtl_cli.errors import InputError
    from maskmtl_cli.unmasking.config import ReconstructionEvalConfig
    from maskmtl_cli.unmasking.evaluation import evaluate_reconstruction, markdown_report

    if manifest is None:
        raise InputError("--reconstruction needs --manifest: a manifest of a `maskmtl mask "
                         "--save-masks` output (from `maskmtl split`).")
    if runs and len(runs) > 1:
        raise InputError("--reconstruction takes at most one RUN (the attribute model).")
    defaults = ReconstructionEvalConfig(manifest=manifest)
    config = ReconstructionEvalConfig(
        manifest=manifest, split=split, unmask_model=unmask_model,
        attribute_model=runs[0] if runs else None, out_dir=out or defaults.out_dir, grid=grid,
        limit=limit, engine=engine, cache_dir=cache_dir if cache_dir is not None else "default")
    outcome = evaluate_reconstruction(config, log=lambda line: err_console.print(
        line, highlight=False, soft_wrap=True))
    if json_output:
        print(json.dumps(outcome.metrics, indent=2))
    else:
        print(markdown_report(outcome.metrics), end="")
    err_console.print(f"[green]Wrote[/] {', '.join(path.name for path in outcome.files)} "
                      f"to {outcome.out_dir}", highlight=False, soft_wrap=True)
