"""``TrainConfig``: every setting of ``maskmtl train``, with its default, in one place.

This module imports only the standard library so that the CLI can read the defaults for its
help text without starting Keras.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from maskmtl_cli.errors import InputError
from maskmtl_cli.schema import (  # noqa: F401  (re-exported: the choices of `maskmtl train`)
    AGE_LOSSES,
    AGE_REWEIGHTS,
    ARCHITECTURES,
    BACKENDS,
    COLOR_MODES,
    LR_SCHEDULES,
    MISSING_LABELS,
    PRESET_NAMES,
    RACE_BALANCES,
)
from maskmtl_cli.schema import check_choice as _check_choice
from maskmtl_cli.tasks import (
    SEGMENTATION,
    UTKFACE_TASK_NAMES,
    UTKFACE_TASKS,
    TaskSpec,
    parse_task_list,
)

#: UTKFace's tasks: the default of ``--tasks`` (``maskmtl_cli.tasks`` describes them).
TASKS = UTKFACE_TASK_NAMES
#: Default strength of the soft-sharing L2 penalty (``--arch soft``).
DEFAULT_SOFT_L2 = 1e-3
#: Default task weights: age L1 is in years (a typical MAE of 5-8) while the two
#: cross-entropies are below 1, so age gets 0.1 to keep the three terms comparable.
DEFAULT_LOSS_WEIGHTS = {"age": 0.1, "gender": 1.0, "race": 1.0}
#: The default age weight of each age loss: log-age L1 and the label-distribution loss are
#: already on the scale of the two cross-entropies.
DEFAULT_AGE_WEIGHT = {"l1": 0.1, "log-l1": 1.0, "ldl": 1.0}


#: What settings added after the first release were, in effect, before they existed: a saved
#: config.json without them resumes with these, not with today's defaults.
LEGACY_SETTINGS = {"age_loss": "l1", "age_sigma": 2.5, "race_balance": "none",
                   "age_reweight": "none", "weight_decay": 0.0, "face_mix": {},
                   "photometric": 0.0, "align_rotation": 0.0, "align_scale": 0.0,
                   "mask_task": False}
#: Shares of the faces of each training batch (issue 21): one of the photo's masked versions,
#: the bare photo under a random lower-face occluder, the bare photo.
FACE_KINDS = ("masked", "occluded", "bare")
DEFAULT_FACE_MIX = {"masked": 0.5, "occluded": 0.35, "bare": 0.15}


@dataclass(frozen=True)
class TrainConfig:
    """Resolved settings of one training run (saved as ``config.json`` in the run folder).

    Attributes:
        manifest: Manifest CSV with train and val rows (absolute once resolved).
        arch: "hierarchical" (the paper's), "hard" or "soft" parameter sharing.
        nonlocal_block: Add a non-local block after the encoder.
        tasks: Tasks to train (``maskmtl_cli.tasks.TaskSpec``; names, a comma-separated
            string or dicts are parsed): UTKFace's age, gender, race, or label columns of the
            manifest. Classes still empty are read from the labels when training starts.
        preset: Layer widths: "compact" (default), "wide" (twice compact's early widths),
            "notebook" (13.2M, the released notebook) or "tiny" (smoke tests).
        image_size: Input height and width in pixels.
        color_mode: "gray" or "rgb".
        batch_size: Training batch size.
        epochs: Total number of epochs.
        lr: Adam learning rate.
        lr_schedule: "constant", "cosine" (to 0 over all epochs) or "plateau" (halve after 3
            epochs without a better validation loss).
        early_stopping: Stop after this many epochs without a better validation loss (0: off).
        augment: Random flip, shift and brightness while training.
        face_mix: Shares of each training batch by face kind (``FACE_KINDS``): a masked
            version of the photo (one of ``maskmtl mask --variants``, drawn anew each epoch),
            the bare photo under a random lower-face occluder, the bare photo. Bare photos are
            found through the mask run the manifest was split from (``training.versions``);
            rows without one always give a masked version. Empty: the manifest's images as
            they are, in fixed arrays (the recipe before issue 21).
        photometric: Strength of the photometric jitter of training faces (colour, contrast,
            gray, sepia, blur, noise, JPEG quality; ``training.photometric``): 1 the mild
            default, 0 off. Needs ``face_mix``.
        align_rotation: Largest random rotation of training faces, in degrees (0: none).
        align_scale: Largest random zoom in or out of training faces, as a fraction (0: none).
        mask_task: Train one more output, ``masked`` (does the face wear a mask; classes
            no/yes, free labels from the face kind), when bare photos are found.
        age_loss: "l1" (L1 in years, standardised output), "log-l1" (L1 on log-age) or "ldl"
            (label-distribution learning: KL to a Gaussian around the true age plus L1 on the
            expected age).
        age_sigma: Standard deviation in years of the Gaussian label distribution ("ldl").
        race_balance: "none" or "logit-adjust" (the ethnicity loss adds the log training prior
            to the logits, so rare classes such as "Others" are not drowned out).
        race_tau: Strength of the logit adjustment (0 none, 1 the full log prior).
        age_reweight: "none" or "sqrt-inv" (rare ages, children and the old, weigh more in the
            age loss, against the pull towards the mean age).
        weight_decay: Decoupled weight decay (AdamW) per step; 0 is plain Adam.
        loss_weights: Fixed weight of each task loss (the age default depends on age_loss).
        uncertainty_weighting: Learn the task weights instead (Kendall et al., CVPR 2018).
        soft_l2: Strength of the L2 penalty tying the per-task encoders (``arch="soft"`` only;
            None means ``DEFAULT_SOFT_L2`` for soft and 0 otherwise).
        missing_labels: "mask" (leave a missing label out of that task's loss), "drop" (leave
            images without every trained label out) or "require" (refuse them).
        segmentation: Add the mask-segmentation head (``models.segmentation``), trained on the
            manifest's ``mask`` column.
        seed: Seed of weights, shuffling, dropout and augmentation.
        backend: Keras backend; None keeps the current one (TensorFlow by default).
        mixed_precision: bfloat16 compute; None means on when a GPU is used.
        jit_compile: XLA compilation; None means on with JAX, or TensorFlow on a GPU; off on
            CPUs (no faster there, and slower to start).
        steps_per_execution: Training steps per compiled call (raise on GPU for throughput).
        devices: Devices to train on in parallel, on this host: a number, or "auto" (every
            GPU, else one CPU). The batch is split over them (``training.devices``).
        run_eagerly: Skip graph compilation (Keras ``run_eagerly``): each step is slower but
            training starts at once; for debugging and smoke runs on tiny data.
        name: Run folder name under ``project``; None picks train, train2, ...
        project: Folder that holds run folders.
        cache_dir: Image cache folder; None uses the data layer's default cache.
    """

    manifest: str = "manifest.csv"
    arch: str = "hierarchical"
    nonlocal_block: bool = True
    tasks: tuple[TaskSpec, ...] = UTKFACE_TASKS
    preset: str = "deep"
    image_size: int = 48
    color_mode: str = "rgb"
    batch_size: int = 64
    epochs: int = 40
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    early_stopping: int = 0
    augment: bool = True
    face_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FACE_MIX))
    photometric: float = 1.0
    align_rotation: float = 6.0
    align_scale: float = 0.1
    mask_task: bool = True
    age_loss: str = "ldl"
    age_sigma: float = 2.5
    race_balance: str = "logit-adjust"
    race_tau: float = 0.25
    age_reweight: str = "none"
    weight_decay: float = 0.0
    loss_weights: dict[str, float] = field(default_factory=dict)
    uncertainty_weighting: bool = False
    soft_l2: float | None = None
    missing_labels: str = "mask"
    segmentation: bool = False
    seed: int = 0
    backend: str | None = None
    mixed_precision: bool | None = None
    jit_compile: bool | None = None
    steps_per_execution: int = 1
    devices: int | str = 1
    run_eagerly: bool = False
    name: str | None = None
    project: str = "runs"
    cache_dir: str | None = None

    def __post_init__(self):
        _check_choice("arch", self.arch, ARCHITECTURES)
        _check_choice("preset", self.preset, PRESET_NAMES)
        _check_choice("color", self.color_mode, COLOR_MODES)
        _check_choice("lr-schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("age-loss", self.age_loss, AGE_LOSSES)
        _check_choice("race-balance", self.race_balance, RACE_BALANCES)
        _check_choice("age-reweight", self.age_reweight, AGE_REWEIGHTS)
        if self.backend is not None:
            _check_choice("backend", self.backend, BACKENDS)
        _check_choice("missing-labels", self.missing_labels, MISSING_LABELS)
        object.__setattr__(self, "tasks", parse_task_list(self.tasks))
        object.__setattr__(self, "loss_weights", self._resolved_weights())
        object.__setattr__(self, "face_mix", parse_face_mix(self.face_mix))
        for option, value, largest in (("photometric", self.photometric, 3.0),
                                       ("align-rotation", self.align_rotation, 45.0),
                                       ("align-scale", self.align_scale, 0.5)):
            if not (math.isfinite(value) and 0 <= value <= largest):
                raise InputError(f"--{option} must be between 0 and {largest:g}; got {value}.")
        for option, value, smallest in (
            ("image-size", self.image_size, 8),
            ("batch-size", self.batch_size, 1),
            ("epochs", self.epochs, 1),
            ("steps-per-execution", self.steps_per_execution, 1),
        ):
            if int(value) != value or value < smallest:
                raise InputError(
                    f"--{option} must be an integer of at least {smallest}; got {value}."
                )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"--lr must be a positive number; got {self.lr}.")
        if not (math.isfinite(self.age_sigma) and self.age_sigma > 0):
            raise InputError(f"--age-sigma must be a positive number of years; got "
                             f"{self.age_sigma}.")
        if not (math.isfinite(self.race_tau) and self.race_tau >= 0):
            raise InputError(f"--race-tau must be 0 or more; got {self.race_tau}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"--weight-decay must be 0 or more; got {self.weight_decay}.")
        if self.early_stopping < 0:
            raise InputError(
                f"--early-stopping must be 0 (off) or more epochs; got {self.early_stopping}."
            )
        if self.soft_l2 is not None:
            if self.arch != "soft" and self.soft_l2 > 0:
                raise InputError(
                    f"--soft-l2 ties the per-task encoders of --arch soft; it has no effect with "
                    f"--arch {self.arch}. Drop it or use --arch soft."
                )
            if not (math.isfinite(self.soft_l2) and self.soft_l2 >= 0):
                raise InputError(f"--soft-l2 must be 0 or more; got {self.soft_l2}.")
        object.__setattr__(self, "devices", parse_devices(self.devices))
        bad_name = not self.name or "/" in self.name or self.name in (".", "..")
        if self.name is not None and bad_name:
            raise InputError(f"--name must be a plain folder name; got {self.name!r}.")

    @property
    def soft_l2_strength(self) -> float:
        """The penalty strength actually used."""
        if self.soft_l2 is not None:
            return float(self.soft_l2)
        return DEFAULT_SOFT_L2 if self.arch == "soft" else 0.0

    @property
    def task_names(self) -> tuple[str, ...]:
        """Names of the trained tasks, in order."""
        return tuple(spec.name for spec in self.tasks)

    def _resolved_weights(self) -> dict[str, float]:
        """Defaults < each task spec's weight < ``loss_weights`` (UTKFace's three always)."""
        weights = {**DEFAULT_LOSS_WEIGHTS, "age": DEFAULT_AGE_WEIGHT[self.age_loss]}
        for spec in self.tasks:
            weights.setdefault(spec.name, 1.0)
            if spec.weight is not None:
                weights[spec.name] = spec.weight
        if self.segmentation:
            weights.setdefault(SEGMENTATION, 1.0)
        weights.update(parse_loss_weights(self.loss_weights, tuple(weights)))
        return weights

    def task_loss_weights(self) -> list[float]:
        """Fixed loss weights of the trained tasks, in task order (then segmentation's)."""
        names = self.task_names + ((SEGMENTATION,) if self.segmentation else ())
        return [self.loss_weights[name] for name in names]

    def to_dict(self) -> dict:
        """JSON-ready dict: ``tasks`` lists the names, ``task_specs`` the full specs."""
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.task_names)
        data["task_specs"] = [spec.to_dict() for spec in self.tasks]
        return data

    def save(self, path: Path) -> None:
        """Write the config as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        """Read a saved ``config.json``; InputError naming the file if it is unusable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("task_specs"):
                data["tasks"] = data["task_specs"]
            if "drop_missing" in data and "missing_labels" not in data:  # runs before issue 17
                data["missing_labels"] = "drop" if data["drop_missing"] else "require"
            known = {f.name for f in dataclasses.fields(cls)}
            # Runs saved before a setting existed trained the way it did then.
            data = {**LEGACY_SETTINGS, **data}
            return cls(**{key: value for key, value in data.items() if key in known})
        except (OSError, ValueError, TypeError) as error:
            raise InputError(
                f"Cannot read the run config '{path}': {error}. The run folder may be damaged; "
                "start a new run instead of resuming it."
            ) from None

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def parse_devices(devices) -> int | str:
    """``"auto"``, or a whole number of at least 1 (``"2"`` becomes 2); InputError otherwise."""
    if isinstance(devices, str) and devices.strip().lower() == "auto":
        return "auto"
    try:
        count = int(str(devices).strip())
    except ValueError:
        count = 0
    if count < 1 or str(count) != str(devices).strip():
        raise InputError(f"--devices must be a number of devices (1 or more) or auto; "
                         f"got {devices!r}.")
    return count


def parse_face_mix(mix) -> dict[str, float]:
    """``"masked=0.5,occluded=0.35,bare=0.15"``, a dict, or ``"none"`` -> normalised shares
    ({} for none); InputError for unknown kinds or bad numbers."""
    if isinstance(mix, str) and mix.strip().lower() in ("", "none", "off"):
        return {}
    shares = parse_loss_weights(mix, FACE_KINDS, option="--face-mix", example=(
        "--face-mix masked=0.5,occluded=0.35,bare=0.15"))
    total = sum(shares.values())
    if shares and total <= 0:
        raise InputError("--face-mix needs at least one share above 0 (or none).")
    return {kind: shares[kind] / total for kind in FACE_KINDS if shares.get(kind, 0) > 0}


def parse_loss_weights(weights, allowed=TASKS, option: str = "--loss-weights",
                       example: str = "--loss-weights age=0.1,gender=1,race=1"
                       ) -> dict[str, float]:
    """``"age=0.1,race=2"`` or a dict -> {task: weight}; InputError for bad entries.

    Args:
        weights: The option's text, or a dict.
        allowed: Names that may be weighted (the trained tasks, UTKFace's, segmentation).
        option, example: How error messages name the option and show its use.
    """
    if isinstance(weights, dict):
        items = list(weights.items())
    else:
        items = []
        for part in str(weights).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise InputError(
                    f"Bad {option} entry '{part.strip()}'. Use "
                    f"{'TASK=WEIGHT' if option == '--loss-weights' else 'NAME=SHARE'} pairs, "
                    f"for example {example}."
                )
            key, value = part.split("=", 1)
            items.append((key.strip(), value.strip()))
    parsed = {}
    what = "Loss weight" if option == "--loss-weights" else "Share"
    for task, value in items:
        if task not in allowed:
            raise InputError(
                f"Unknown {'task' if option == '--loss-weights' else 'name'} '{task}' in "
                f"{option}. Choose from: {', '.join(allowed)}."
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{what} of {task} must be a number; got '{value}'.") from None
        if not (math.isfinite(number) and number >= 0):
            raise InputError(f"{what} of {task} must be 0 or more; got {value}.")
        parsed[task] = number
    return parsed
