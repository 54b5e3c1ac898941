"""`maskmtl eval --reconstruction`: how close unmasked faces come to the bare ones.

On one split of a ``maskmtl mask --save-masks`` manifest, every masked face is reconstructed

- by the unmasking model with the mask it finds itself (``model, own mask``: what ``unmask``
  does),
- by the model given the exact mask (``model, exact mask``),
- by OpenCV's Telea inpainting given the exact mask, and given it grown by one pixel (the
  masked image's anti-aliased mask edge lies just outside the exact mask; the better of the two
  is the floor a learned model must clear),

and scored against the bare face (``metrics.face_scores``: PSNR and SSIM over the exact mask and
over the whole face), together with the masked face itself for reference. The attribute model
then predicts on the bare, masked and reconstructed versions of the same faces: does
reconstructing first help?
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from maskmtl_cli.unmasking.config import ReconstructionEvalConfig
from maskmtl_cli.unmasking.metrics import face_scores, summarise, telea
from maskmtl_cli.unmasking.reconstruct import MIN_MASK_FRACTION

#: The versions of each face that are scored, in table order.
OURS_OWN, OURS_EXACT = "model, own mask", "model, exact mask"
TELEA, TELEA_GROWN = "Telea, exact mask", "Telea, mask + 1 px"
MASKED, BARE = "masked (no reconstruction)", "bare (reference)"
METHODS = (OURS_OWN, OURS_EXACT, TELEA, TELEA_GROWN, MASKED)
#: Versions the attribute model is run on.
ATTRIBUTE_VERSIONS = (BARE, MASKED, OURS_OWN, OURS_EXACT, TELEA)
RESULTS_FILES = ("reconstruction.json", "reconstruction.csv", "reconstruction.md")
GRID_FILE = "reconstruction_grid.png"


@dataclass
class ReconstructionOutcome:
    metrics: dict
    out_dir: Path
    files: list[Path]


def reconstruct_all(model, masked: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Every reconstruction of ``METHODS`` for uint8 faces (N, S, S, 3) and exact masks
    (N, S, S, 1) of 0/1; also the model's own mask under ``"own_mask"``."""
    import cv2

    own = model.run(masked)
    exact = model.run(masked, masks.astype(np.float32))
    kernel = np.ones((3, 3), np.uint8)
    return {
        OURS_OWN: _to_uint8(own["face"]),
        OURS_EXACT: _to_uint8(exact["face"]),
        TELEA: np.stack([telea(face, mask) for face, mask in zip(masked, masks)]),
        TELEA_GROWN: np.stack([telea(face, cv2.dilate(mask[:, :, 0], kernel))
                               for face, mask in zip(masked, masks)]),
        MASKED: masked,
        "own_mask": own["used_mask"] >= 0.5,
    }


def score_methods(bare: np.ndarray, versions: dict[str, np.ndarray], masks: np.ndarray
                  ) -> tuple[dict[str, dict], list[dict]]:
    """Mean scores per method and one row per face and method."""
    rows = []
    for method in METHODS:
        for index, (reference, result, hole) in enumerate(zip(bare, versions[method], masks)):
            rows.append({"face": index, "method": method,
                         **face_scores(reference, result, hole[:, :, 0] > 0)})
    summary = {method: summarise([row for row in rows if row["method"] == method])
               for method in METHODS}
    return summary, rows


def mask_agreement(own: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Mean IoU of the model's own masks with the exact ones, and the share it covers."""
    own = own.reshape(len(own), -1)
    exact = exact.reshape(len(exact), -1) > 0
    union = (own | exact).sum(axis=1)
    iou = np.where(union > 0, (own & exact).sum(axis=1) / np.maximum(union, 1), 1.0)
    covered = (own & exact).sum(axis=1) / np.maximum(exact.sum(axis=1), 1)
    return {"iou": float(iou.mean()), "exact_mask_covered": float(covered.mean())}


def attribute_table(model, versions: dict[str, np.ndarray], rows) -> dict[str, dict]:
    """The headline metrics of ``model`` (as `maskmtl eval` scores them: gender and ethnicity
    accuracy, age MAE, ...) on each version of the faces."""
    from maskmtl_cli.data.dataset import split_arrays
    from maskmtl_cli.evaluation.config import MetricOptions
    from maskmtl_cli.evaluation.metrics import evaluate_predictions
    from maskmtl_cli.faces.alignment import to_model_input
    from maskmtl_cli.inference import input_spec, predict_arrays
    from maskmtl_cli.model_schema import task_specs

    size, color_mode = input_spec(model)
    known = split_arrays(np.zeros(len(rows)), rows, [])
    labels = {"age": known.age, "gender": known.gender, "race": known.race}
    table = {}
    for name in ATTRIBUTE_VERSIONS:
        inputs = np.stack([to_model_input(face, size, color_mode) for face in versions[name]])
        outputs = predict_arrays(model, inputs, batch_size=256)
        scored = evaluate_predictions(labels, outputs, MetricOptions(bootstrap=0),
                                      specs=task_specs(model))
        table[name] = {"faces": len(inputs), **scored.headline()}
    return table


def evaluate_reconstruction(config: ReconstructionEvalConfig,
                            log: Callable[[str], None] = lambda line: None
                            ) -> ReconstructionOutcome:
    """Score the unmasking model, the Telea floor and the attribute model's view of both."""
    import time

    from maskmtl_cli.inference import load_model
    from maskmtl_cli.prediction.predict import default_model_path
    from maskmtl_cli.unmasking.data import load_triples
    from maskmtl_cli.unmasking.model import UnmaskModel, resolve_unmask_model

    model_path = resolve_unmask_model(config.unmask_model)
    model = UnmaskModel(model_path)
    split = None if config.split == "all" else config.split
    triples = load_triples(config.manifest, split, model.image_size, config.cache_dir,
                           versions=False)
    count = len(triples) if config.limit is None else min(config.limit, len(triples))
    masked, masks = triples.masked[:count, 0], triples.masks[:count, 0]
    bare, rows = triples.bare[:count], triples.rows.iloc[:count]
    log(f"Reconstructing {count} faces of split '{config.split}' with {model_path} ...")
    started = time.perf_counter()
    versions = reconstruct_all(model, masked, masks)
    seconds = time.perf_counter() - started
    versions[BARE] = bare
    summary, per_face = score_methods(bare, versions, masks)
    found_on_bare = model.run(bare)["used_mask"].reshape(count, -1).mean(axis=1)
    found_on_masked = versions["own_mask"].reshape(count, -1).mean(axis=1)
    attribute_path = config.attribute_model or default_model_path()
    log(f"Attribute model {attribute_path} on bare, masked and reconstructed faces ...")
    attributes = attribute_table(load_model(attribute_path, config.engine), versions, rows)
    floor = max((TELEA, TELEA_GROWN), key=lambda name: summary[name]["psnr_hole"])
    metrics = {
        "manifest": str(config.manifest), "split": config.split, "faces": count,
        "dropped": [list(item) for item in triples.dropped],
        "unmask_model": str(model_path), "attribute_model": str(attribute_path),
        "image_size": model.image_size, "mask_share": float(masks.mean()),
        "methods": summary, "floor": floor,
        "margin_over_floor": {
            "psnr_hole_db": summary[OURS_OWN]["psnr_hole"] - summary[floor]["psnr_hole"],
            "ssim_face": summary[OURS_OWN]["ssim_face"] - summary[floor]["ssim_face"],
            "psnr_hole_db_exact_mask": (summary[OURS_EXACT]["psnr_hole"]
                                        - summary[floor]["psnr_hole"]),
        },
        "own_mask": mask_agreement(versions["own_mask"], masks),
        "mask_found": {  # what `unmask` would do: unmask, or leave a face without a mask alone
            "threshold": MIN_MASK_FRACTION,
            "masked_faces_unmasked": float(np.mean(found_on_masked >= MIN_MASK_FRACTION)),
            "bare_faces_left_alone": float(np.mean(found_on_bare < MIN_MASK_FRACTION)),
            "share_found_on_masked": _quantiles(found_on_masked),
            "share_found_on_bare": _quantiles(found_on_bare),
        },
        "attributes": attributes,
        "model_ms_per_face": 1000 * seconds / max(count, 1),
    }
    files = _write_outputs(config, metrics, per_face, rows, versions)
    return ReconstructionOutcome(metrics=metrics, out_dir=config.out_dir, files=files)


def _write_outputs(config: ReconstructionEvalConfig, metrics: dict, per_face: list[dict], rows,
                   versions: dict[str, np.ndarray]) -> list[Path]:
    """reconstruction.json, .csv, .md and the picture grid in ``config.out_dir``."""
    import pandas as pd

    from maskmtl_cli.io import write_json, write_text_atomic

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = [write_json(out / RESULTS_FILES[0], metrics)]
    table = pd.DataFrame(per_face)
    table.insert(1, "filename", rows["filename"].to_numpy()[table["face"].to_numpy()])
    files.append(write_text_atomic(out / RESULTS_FILES[1],
                                   table.to_csv(index=False, float_format="%.4f")))
    files.append(write_text_atomic(out / RESULTS_FILES[2], markdown_report(metrics)))
    if config.grid:
        from maskmtl_cli.unmasking.grid import save_grid

        count = len(versions[BARE])
        pick = np.sort(np.random.default_rng(config.seed).choice(
            count, min(config.grid, count), replace=False))
        files.append(save_grid(out / GRID_FILE, versions, pick))
    return files


def markdown_report(metrics: dict) -> str:
    """The quality and attribute tables as Markdown."""
    lines = [f"# Reconstruction: {metrics['faces']} faces, split {metrics['split']}", "",
             f"Unmasking model: `{metrics['unmask_model']}`; attribute model: "
             f"`{metrics['attribute_model']}`. Mask share of the crop: "
             f"{metrics['mask_share']:.3f}. Own mask: IoU {metrics['own_mask']['iou']:.3f} "
             f"with the exact mask, covering {metrics['own_mask']['exact_mask_covered']:.3f} "
             f"of it. Faces `unmask` would unmask (mask found on >= "
             f"{metrics['mask_found']['threshold']:.2f} of the crop): "
             f"{metrics['mask_found']['masked_faces_unmasked']:.3f} of the masked faces; the "
             f"bare versions of the same faces it would leave alone: "
             f"{metrics['mask_found']['bare_faces_left_alone']:.3f}.", "",
             "| method | PSNR mask (dB) | PSNR face (dB) | SSIM mask | SSIM face |",
             "|---|---:|---:|---:|---:|"]
    for method, row in metrics["methods"].items():
        lines.append(f"| {method} | {row['psnr_hole']:.2f} | {row['psnr_face']:.2f} | "
                     f"{row['ssim_hole']:.4f} | {row['ssim_face']:.4f} |")
    margin = metrics["margin_over_floor"]
    lines += ["", f"Floor: {metrics['floor']}. Model (own mask) minus floor: PSNR over the mask "
              f"{margin['psnr_hole_db']:+.2f} dB, SSIM over the face {margin['ssim_face']:+.4f}"
              f"; with the exact mask {margin['psnr_hole_db_exact_mask']:+.2f} dB.", "",
              "| faces shown to the attribute model | gender accuracy | ethnicity accuracy | "
              "age MAE |", "|---|---:|---:|---:|"]
    for name, row in metrics["attributes"].items():
        cells = [f"{row[key]:.4f}" if key in row else "" for key in
                 ("gender_accuracy", "race_accuracy")]
        age = f"{row['age_mae']:.2f}" if "age_mae" in row else ""
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {age} |")
    return "\n".join(lines) + "\n"


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (5, 25, 50, 75, 95)}


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
