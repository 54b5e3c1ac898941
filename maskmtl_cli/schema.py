"""Names shared by the CLI and the core library: the one home of each, standard library only.

The CLI reads its choices and defaults from here without importing numpy, OpenCV or Keras, so
``maskmtl --help`` stays instant.
"""

from __future__ import annotations

from typing import Any

#: Inference engines: ONNX Runtime (default) or Keras.
ENGINES: tuple[str, ...] = ("onnx", "keras")
DEFAULT_ENGINE = "onnx"

#: Face detectors of `maskmtl mask` (dlib's 68 landmarks are then found inside each box):
#: ``auto`` runs RetinaFace only where HOG finds nothing.
MASK_DETECTORS: tuple[str, ...] = ("auto", "hog", "retinaface", "cnn")
DEFAULT_MASK_DETECTOR = "auto"

#: Face detectors of `maskmtl predict`, and what each is good for.
DETECTORS: tuple[str, ...] = ("retinaface", "mtcnn", "hog", "cnn")
DEFAULT_DETECTOR = "retinaface"
DETECTOR_HELP = {
    "retinaface": "masked, turned and small faces, fast (default)",
    "mtcnn": "the earlier default, on TensorFlow: slower, misses more masked faces",
    "hog": "dlib HOG: bare frontal faces only",
    "cnn": "dlib CNN: bare faces, slow on a CPU",
}

#: Network layouts of `maskmtl train --arch` (``models.architectures``).
ARCHITECTURES: tuple[str, ...] = ("hierarchical", "hard", "soft")
#: Layer-width presets of `maskmtl train --preset` (``models.architectures.PRESETS``).
PRESET_NAMES: tuple[str, ...] = ("compact", "wide", "notebook", "compact-gap", "wide-gap", "deep",
                                 "tiny")
#: Options that a preset's meaning depends on, by ``TrainConfig`` field: `train --preset NAME`
#: applies them unless that option is given on the command line. "notebook" is the released
#: notebook's network (13,225,767 parameters) only with all of these (docs/train.md).
PRESET_SETTINGS: dict[str, dict[str, object]] = {
    "notebook": {"arch": "hierarchical", "tasks": "age,gender,race", "image_size": 48,
                 "color_mode": "gray", "nonlocal_block": False, "age_loss": "l1",
                 "segmentation": False},
}
#: Colour modes of the network input, the data layer's arrays and `--color`.
COLOR_MODES: tuple[str, ...] = ("gray", "rgb")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "plateau")
BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")
#: How the age head models age (``models.age_layers``): L1 in years on a standardised output,
#: L1 on log-age, or label-distribution learning over 0-116 years.
AGE_LOSSES: tuple[str, ...] = ("l1", "log-l1", "ldl")
#: Class balancing of the ethnicity loss: none, or logit adjustment by the training prior
#: (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).
RACE_BALANCES: tuple[str, ...] = ("none", "logit-adjust")
#: Reweighting of the age loss by how common each age is in the training labels: none, or the
#: inverse square root of the kernel-smoothed label density ("label distribution smoothing",
#: Yang et al., "Delving into Deep Imbalanced Regression", ICML 2021).
AGE_REWEIGHTS: tuple[str, ...] = ("none", "sqrt-inv")
#: What happens to images without a label for a trained task: its loss and metrics leave
#: them out ("mask"; a face labelled only for gender still trains the gender head), they are
#: dropped from training ("drop"), or training refuses to start ("require").
MISSING_LABELS: tuple[str, ...] = ("mask", "drop", "require")

#: Age bands, as their lower edges in years (the last band is open-ended). `maskmtl split`
#: stratifies by decade up to 100+; `maskmtl eval` reports errors by decade up to 80+ (its
#: ``--age-bands`` default), because UTKFace's test part has too few faces above 80 to score
#: a band.
SPLIT_AGE_BAND_EDGES: tuple[float, ...] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
EVAL_AGE_BAND_EDGES: tuple[float, ...] = (0, 10, 20, 30, 40, 50, 60, 70, 80)


def age_band_labels(edges: tuple[float, ...]) -> list[str]:
    """Names of the age bands, e.g. ``0-9``, ``10-19``, ..., ``80+`` for decade edges."""
    names = [f"{low:g}-{high - 1:g}" for low, high in zip(edges[:-1], edges[1:])]
    return names + [f"{edges[-1]:g}+"]


def check_choice(option: str, value, choices) -> None:
    """InputError naming the option, the bad value and the allowed ones."""
    if value not in choices:
        from maskmtl_cli.errors import InputError

        raise InputError(f"Unknown {option} '{value}'. Choose one of: {', '.join(choices)}.")


#: Headline metrics of each kind of task (they get bootstrap intervals), in ``metrics.json``'s
#: ``headline`` as ``<task>_<metric>``.
CLASSIFICATION_HEADLINE: tuple[str, ...] = ("accuracy", "macro_f1")
AGE_HEADLINE: tuple[str, ...] = ("mae", "rmse", "cs")
REGRESSION_HEADLINE: tuple[str, ...] = ("mae", "rmse")


def headline_pairs(classification: dict, age: dict | None,
                   regression: dict | None = None) -> list[tuple[str, str]]:
    """(task, metric) of each headline number: classification tasks, then age, then others."""
    pairs = [(task, metric) for task in classification for metric in CLASSIFICATION_HEADLINE]
    if age is not None:
        pairs += [("age", metric) for metric in AGE_HEADLINE]
    return pairs + [(task, metric) for task in (regression or {})
                    for metric in REGRESSION_HEADLINE]


#: Above this share of faces with one and the same prediction (and at least
#: ``COLLAPSE_MIN_FACES`` faces), a head counts as collapsed.
COLLAPSE_WARNING_SHARE = 0.02
COLLAPSE_MIN_FACES = 5


def is_collapsed(summary: dict[str, Any]) -> bool:
    """Whether a ``collapse_summary`` shows a collapsed head."""
    shared = summary["share"] * summary["n"]
    return summary["share"] > COLLAPSE_WARNING_SHARE and shared >= COLLAPSE_MIN_FACES
