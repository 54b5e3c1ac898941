"""How a mask looks: template, colour and texture, chosen by the user or drawn at random."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.palette import PALETTE, parse_colour
from maskmtl_cli.masking.templates import TEMPLATE_NAMES, check_template, template_spec
from maskmtl_cli.masking.textures import TEXTURE_NAMES

__all__ = ["MaskStyle", "TEMPLATE_NAMES", "TEXTURE_NAMES", "PALETTE", "DEFAULT_MIX",
           "parse_colour", "parse_mix", "choose_style"]

#: Template weights of ``--mask-type random`` when no ``--mix`` is given.
DEFAULT_MIX: dict[str, float] = {"surgical": 0.34, "n95": 0.12, "kn95": 0.14, "cloth": 0.22,
                                 "valved": 0.08, "duckbill": 0.10}
_RANDOM = ("random", "")


@dataclass(frozen=True)
class MaskStyle:
    """The look of one mask.

    Attributes:
        template: one of TEMPLATE_NAMES, e.g. "surgical".
        colour_name: palette name, or the hex code given by the user (``#rrggbb``).
        colour: RGB base colour.
        texture: one of TEXTURE_NAMES; "plain" means no pattern.
        texture_weight: 0..1 blend of the texture over the base colour.
    """

    template: str
    colour_name: str
    colour: tuple[int, int, int]
    texture: str
    texture_weight: float


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``"surgical=0.4,cloth=0.3,..."`` into template weights that sum to 1.

    Templates left out get weight 0. Raises InputError on bad syntax, an unknown or repeated
    template, a negative or non-finite weight, or weights that are all zero.
    """
    example = "for example --mix surgical=0.5,cloth=0.3,kn95=0.2"
    weights: dict[str, float] = {}
    for part in [p.strip() for p in str(text).split(",")]:
        if not part:
            continue
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or not value:
            raise InputError(f"Bad mix entry {part!r}: write template=weight, {example}.")
        name = name.lower()
        if name not in TEMPLATE_NAMES:
            raise InputError(f"Unknown mask template {name!r} in the mix. Choose from: "
                             f"{', '.join(TEMPLATE_NAMES)}.")
        if name in weights:
            raise InputError(f"Template {name!r} appears twice in the mix {text!r}.")
        try:
            weight = float(value)
        except ValueError:
            raise InputError(f"Weight {value!r} of {name!r} in the mix is not a number, "
                             f"{example}.") from None
        if not math.isfinite(weight) or weight < 0:
            raise InputError(f"Weight of {name!r} in the mix must be a number >= 0, got {value!r}.")
        weights[name] = weight
    total = sum(weights.values())
    if not weights or total <= 0:
        raise InputError(f"The mix {text!r} gives no template a weight above zero, {example}.")
    return {name: weights.get(name, 0.0) / total for name in TEMPLATE_NAMES if name in weights}


def _pick(weights: dict[str, float], draw: float) -> str:
    """The key whose cumulative-weight interval holds ``draw`` (0..1)."""
    names = [n for n, w in weights.items() if w > 0]
    cumulative = np.cumsum([weights[n] for n in names])
    index = int(np.searchsorted(cumulative, draw * cumulative[-1], side="right"))
    return names[min(index, len(names) - 1)]


def choose_style(rng: np.random.Generator, mask_type: str = "random",
                 mix: dict[str, float] | None = None, colour: str | None = None,
                 texture: str | None = None, texture_weight: float | None = None) -> MaskStyle:
    """Pick a mask style; anything left as None (or "random") is drawn from ``rng``.

    Random colours and textures follow each template's own habits (surgical masks are mostly
    light blue or white and plain, N95s white, cloth masks any colour with patterns). Exactly four
    numbers are drawn from ``rng`` whatever is fixed, so fixing one choice never changes another.

    Args:
        rng: the image's random generator.
        mask_type: a template name, or "random" to draw one by the ``mix`` weights.
        mix: template weights for "random" (default DEFAULT_MIX); see ``parse_mix``.
        colour: palette name or hex code.
        texture: one of TEXTURE_NAMES.
        texture_weight: 0..1 strength of the texture over the base colour.

    Raises:
        InputError: an unknown template, colour or texture, a weight outside 0..1, or a mix
            given with a fixed mask type.
    """
    draws = rng.random(4)
    mask_type = (mask_type or "random").strip().lower()
    if mask_type in _RANDOM:
        template = _pick(mix if mix else DEFAULT_MIX, draws[0])
    else:
        template = check_template(mask_type)
        if mix:
            raise InputError(f"A mix only applies to --mask-type random, not to {mask_type!r}. "
                             "Drop --mix or use --mask-type random.")
    spec = template_spec(template)
    if colour is None or colour.strip().lower() in _RANDOM:
        colour_name = _pick(spec["colours"], draws[1])
        rgb = PALETTE[colour_name]
    else:
        colour_name, rgb = parse_colour(colour)
    if texture is None or texture.strip().lower() in _RANDOM:
        texture_name = _pick(spec["textures"], draws[2])
    else:
        texture_name = re.sub(r"[\s_]+", "-", texture.strip().lower())
        texture_name = {"camo": "camouflage", "none": "plain"}.get(texture_name, texture_name)
        if texture_name not in TEXTURE_NAMES:
            raise InputError(f"Unknown texture {texture!r}. Choose one of: "
                             f"{', '.join(TEXTURE_NAMES)}.")
    if texture_weight is None:
        weight = 0.0 if texture_name == "plain" else round(0.6 + 0.4 * float(draws[3]), 3)
    else:
        weight = float(texture_weight)
        if not 0.0 <= weight <= 1.0:
            raise InputError(f"Texture weight must be between 0 and 1, got {texture_weight!r}.")
    return MaskStyle(template, colour_name, tuple(int(c) for c in rgb), texture_name, weight)
