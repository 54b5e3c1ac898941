"""``maskmtl mask --variants K``: K masked versions of every photo, for fresh masks each epoch.

Version 0 is the ordinary output (``OUTPUT_DIR/<relative path>``, drawn from
``default_rng([seed, i])`` exactly as a run without ``--variants``), versions ``k = 1..K-1``
go to ``OUTPUT_DIR/_variants/<k>/<relative path>``, each drawn from
``default_rng([seed, i, k])`` and each a complete mask output of its own (``masks.csv``,
``failures.csv``, ``mask_config.json`` with ``variant: k``; resumable like any run).

``maskmtl split`` scans only version 0 (``_variants`` is one of a mask run's own folders), so
the manifest, and which split each photo lands in, do not change with K; ``maskmtl train``
finds the other versions of each manifest row beside it (``training.versions``) and draws one
per face per epoch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from maskmtl_cli.data.files import VARIANTS_DIR
from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.config import MAX_VARIANTS, MaskConfig


def variant_dir(output_dir: Path, variant: int) -> Path:
    """Folder of masked version ``variant`` (0: ``output_dir`` itself)."""
    return Path(output_dir) if variant == 0 else Path(output_dir) / VARIANTS_DIR / str(variant)


def variant_configs(config: MaskConfig, variants: int) -> list[MaskConfig]:
    """The runs of ``--variants``: version 0 as configured, then versions 1..K-1 into their
    folders (no preview of their own).

    Raises:
        InputError: ``variants`` outside 1..MAX_VARIANTS.
    """
    if not 1 <= variants <= MAX_VARIANTS:
        raise InputError(f"--variants must be between 1 and {MAX_VARIANTS} (got {variants}).")
    return [config] + [
        dataclasses.replace(config, output_dir=variant_dir(config.output_dir, variant),
                            variant=variant, preview=0)
        for variant in range(1, variants)
    ]
