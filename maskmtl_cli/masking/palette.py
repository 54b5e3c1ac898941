"""Named mask colours and the small colour helpers textures and styles need."""

from __future__ import annotations

import re

import numpy as np

from maskmtl_cli.errors import InputError

#: Named colours (sRGB). Realistic mask colours first: surgical light blue, white, black...
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (242, 242, 238),
    "light-blue": (150, 198, 226),
    "light-grey": (204, 206, 208),
    "grey": (132, 134, 138),
    "charcoal": (66, 68, 72),
    "black": (30, 30, 32),
    "silver": (196, 198, 204),
    "blue": (52, 100, 176),
    "navy": (32, 44, 84),
    "teal": (30, 126, 128),
    "mint": (164, 214, 194),
    "green": (62, 128, 72),
    "olive": (106, 108, 60),
    "khaki": (192, 174, 132),
    "beige": (222, 204, 176),
    "yellow": (238, 198, 62),
    "orange": (232, 122, 42),
    "red": (188, 40, 46),
    "maroon": (112, 32, 42),
    "pink": (238, 172, 192),
    "lilac": (198, 172, 222),
    "purple": (104, 62, 140),
}

_ALIASES = {"gray": "grey", "light-gray": "light-grey", "lightblue": "light-blue",
            "lightgrey": "light-grey", "lightgray": "light-grey", "camo-green": "olive"}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def parse_colour(text: str) -> tuple[str, tuple[int, int, int]]:
    """Turn a palette name or a hex code (``#RRGGBB`` or ``#RGB``) into ``(name, rgb)``.

    Names are case-insensitive and may use spaces or underscores (``"Light blue"``); a hex code
    comes back as its lower-case ``#rrggbb`` form.

    Raises:
        InputError: the text is neither, with the valid names listed.
    """
    cleaned = str(text).strip()
    key = re.sub(r"[\s_]+", "-", cleaned.lower())
    key = _ALIASES.get(key, key)
    if key in PALETTE:
        return key, PALETTE[key]
    match = _HEX.match(cleaned)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        rgb = tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
        return "#" + digits.lower(), rgb
    raise InputError(
        f"Unknown colour {text!r}. Use a name ({', '.join(PALETTE)}) or a hex code such as "
        "#1f77b4."
    )


def to_unit(rgb) -> np.ndarray:
    """An sRGB triple as float32 values in 0..1."""
    return np.asarray(rgb, dtype=np.float32) / 255.0


def luminance(colour: np.ndarray) -> float:
    """Relative brightness (Rec. 601 weights) of a 0..1 colour."""
    r, g, b = (float(c) for c in colour)
    return 0.299 * r + 0.587 * g + 0.114 * b


def mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Linear blend from colour ``a`` (t=0) to colour ``b`` (t=1)."""
    return (1.0 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)


#: Brightness of every palette colour, for picking colours that contrast.
PALETTE_LUMINANCE: dict[str, float] = {
    name: (0.299 * r + 0.587 * g + 0.114 * b) / 255.0 for name, (r, g, b) in PALETTE.items()
}


def contrasting(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second colour that reads well on ``base``: white, black, a shade or a palette colour."""
    pick = rng.random()
    brightness = luminance(base)
    if pick < 0.35:
        return to_unit(PALETTE["black"] if brightness > 0.55 else PALETTE["white"])
    if pick < 0.6:
        return mix(base, np.zeros(3), 0.45) if brightness > 0.55 else mix(base, np.ones(3), 0.5)
    names = [n for n, v in PALETTE_LUMINANCE.items() if abs(v - brightness) > 0.25]
    return to_unit(PALETTE[names[int(rng.integers(len(names)))]]) if names else 1.0 - base
