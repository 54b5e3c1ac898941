"""The resolved settings of one ``maskmtl mask`` run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from maskmtl_cli.errors import InputError
from maskmtl_cli.schema import DEFAULT_MASK_DETECTOR, MASK_DETECTORS
from maskmtl_cli.schema import check_choice as _check_choice

FACE_MODES = ("largest", "all")
ON_FAIL_MODES = ("skip", "copy")
#: Largest contact sheet ``--preview`` draws.
MAX_PREVIEW = 256
#: Most masked versions of one photo ``--variants`` makes, and the default (one).
MAX_VARIANTS = 64
DEFAULT_VARIANTS = 1


def variant_seed(seed: int, index: int, variant: int) -> list[int]:
    """Entropy of image ``index``'s random draws: ``[seed, index]`` for version 0 (what every
    run drew before versions existed), ``[seed, index, variant]`` for the others."""
    return [seed, index] if variant == 0 else [seed, index, variant]


@dataclass(frozen=True)
class MaskConfig:
    """Settings of a mask run; validated on creation (``InputError`` names the bad value).

    Attributes:
        input_dir: Folder searched recursively for images.
        output_dir: Folder that receives the masked tree, masks.csv and failures.csv.
        mask_type: A template name, or ``"random"`` to draw one per face by ``mix``.
        mix: Template weights for random mode as ``((name, weight), ...)``; None = default mix.
        colour: A palette name or ``#RRGGBB``; None = a realistic random colour per mask.
        texture: A texture name; None = random.
        texture_weight: Blend of the texture over the colour, 0-1; None = random.
        seed: Base seed; image ``i`` in sorted order draws from ``default_rng([seed, i])``.
        variant: Which masked version of each photo this run draws: 0 (the default) from
            ``default_rng([seed, i])``, ``k > 0`` from ``default_rng([seed, i, k])``
            (``maskmtl mask --variants K`` writes versions 1..K-1 under ``_variants/k``).
        detector: ``auto`` (HOG, then RetinaFace where HOG finds nothing), ``hog``,
            ``retinaface`` or ``cnn``.
        aligned: Treat each image as an aligned face crop (no detector).
        faces: ``largest`` (one mask per image) or ``all`` faces.
        on_fail: ``skip`` images without a usable face, or ``copy`` them unmasked.
        save_masks: Also write a binary mask PNG per image under ``_masks/``.
        overwrite: Redo images whose output already exists.
        workers: Worker processes; None = all available cores. With ``ray_address``: Ray tasks
            running at once; None = one per CPU of the cluster.
        limit: Process only the first N images in sorted order.
        preview: Number of examples in ``preview.png`` (0 = none).
        jpeg_quality: Quality of JPEG (and WebP) outputs.
        ray_address: Run the images as Ray tasks on this cluster (``HOST:PORT``,
            ``ray://HOST:PORT``, or ``auto``: ``RAY_ADDRESS``, else the cluster started on this
            machine); None = the local process pool. Every node must see ``input_dir`` and
            ``output_dir`` at the same paths.
    """

    input_dir: Path
    output_dir: Path
    mask_type: str = "random"
    mix: tuple[tuple[str, float], ...] | None = None
    colour: str | None = None
    texture: str | None = None
    texture_weight: float | None = None
    seed: int = 0
    variant: int = 0
    detector: str = DEFAULT_MASK_DETECTOR
    aligned: bool = False
    faces: str = "largest"
    on_fail: str = "skip"
    save_masks: bool = False
    overwrite: bool = False
    workers: int | None = None
    limit: int | None = None
    preview: int = 0
    jpeg_quality: int = 95
    ray_address: str | None = None

    def __post_init__(self) -> None:
        from maskmtl_cli.masking.style import TEMPLATE_NAMES, TEXTURE_NAMES, parse_colour

        object.__setattr__(self, "input_dir", Path(self.input_dir))
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        _check_choice("mask type", self.mask_type, ("random", *TEMPLATE_NAMES))
        _check_choice("detector", self.detector, MASK_DETECTORS)
        _check_choice("--faces value", self.faces, FACE_MODES)
        _check_choice("--on-fail value", self.on_fail, ON_FAIL_MODES)
        if self.texture is not None:
            _check_choice("texture", self.texture, ("random", *TEXTURE_NAMES))
            if self.texture == "random":
                object.__setattr__(self, "texture", None)
        if self.colour is not None:
            if self.colour.lower() == "random":
                object.__setattr__(self, "colour", None)
            else:
                parse_colour(self.colour)
        if self.mix is not None and self.mask_type != "random":
            raise InputError(
                f"--mix only applies with --mask-type random (got --mask-type {self.mask_type}). "
                "Drop --mix, or use --mask-type random."
            )
        if self.texture_weight is not None and not 0.0 <= self.texture_weight <= 1.0:
            raise InputError(
                f"--texture-weight must be between 0 and 1 (got {self.texture_weight})."
            )
        _check_range("--seed", self.seed, 0, 2**63 - 1)
        _check_range("variant", self.variant, 0, MAX_VARIANTS - 1)
        _check_range("--jpeg-quality", self.jpeg_quality, 1, 100)
        _check_range("--preview", self.preview, 0, MAX_PREVIEW)
        if self.workers is not None:
            _check_range("--workers", self.workers, 1, 1024)
        if self.limit is not None:
            _check_range("--limit", self.limit, 1, 2**63 - 1)
        if self.ray_address is not None and not self.ray_address.strip():
            raise InputError(
                "--ray needs a cluster address: HOST:PORT, ray://HOST:PORT, or auto."
            )

    @property
    def mix_weights(self) -> dict[str, float] | None:
        """``mix`` as the dict ``choose_style`` takes."""
        return dict(self.mix) if self.mix is not None else None

    def to_dict(self) -> dict:
        """JSON-ready settings with absolute paths (saved as mask_config.json)."""
        data = asdict(self)
        data["input_dir"] = str(self.input_dir.resolve())
        data["output_dir"] = str(self.output_dir.resolve())
        data["mix"] = self.mix_weights
        return data

    def style_settings(self) -> dict:
        """The settings that decide what the masks look like (compared when resuming)."""
        keys = ("mask_type", "mix", "colour", "texture", "texture_weight", "seed", "variant",
                "detector", "aligned", "faces")
        data = self.to_dict()
        return {key: data[key] for key in keys}


def parse_mix_option(text: str | None) -> tuple[tuple[str, float], ...] | None:
    """Turn ``--mix surgical=0.4,cloth=0.3`` into normalised ``((name, weight), ...)``."""
    if text is None:
        return None
    from maskmtl_cli.masking.style import parse_mix

    return tuple(parse_mix(text).items())


def _check_range(option: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InputError(f"{option} must be between {low} and {high} (got {value}).")
