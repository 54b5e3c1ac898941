"""The folders of a mask run: checks, image discovery, and which outputs exist already."""

from __future__ import annotations

import os
from pathlib import Path

from maskmtl_cli.data.files import MASKS_DIR, PREVIEW_PNG, scan_image_files
from maskmtl_cli.errors import InputError
from maskmtl_cli.masking.config import MaskConfig
from maskmtl_cli.masking.records import COPIED
from maskmtl_cli.masking.worker import mask_path_for


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def check_folders(input_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """Validate the two folders; returns them resolved.

    Raises:
        InputError: The input is missing or not a folder, the output is a file, or one folder
            lies inside the other.
    """
    if not input_dir.exists():
        raise InputError(f"Input folder {input_dir} does not exist.")
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is a file: pass the folder that holds the images.")
    input_root = input_dir.resolve()
    output_root = output_dir.resolve()
    if output_root == input_root or output_root.is_relative_to(input_root):
        raise InputError(
            f"Output folder {output_dir} is inside the input folder {input_dir}: the masked "
            "images would mix with the originals. Choose an output folder outside it."
        )
    if input_root.is_relative_to(output_root):
        raise InputError(
            f"Input folder {input_dir} is inside the output folder {output_dir}. "
            "Choose an output folder that does not contain the input."
        )
    if output_root.exists() and not output_root.is_dir():
        raise InputError(f"Output path {output_dir} is a file; pass a folder.")
    return input_root, output_root


def discover_images(root: Path) -> tuple[list[str], int]:
    """Image files under ``root`` as sorted relative POSIX paths, and the count of other files.

    Hidden files and folders (names starting with a dot) are skipped; folder links are not
    followed.
    """
    paths, ignored = scan_image_files(root)
    # sorted as relative POSIX strings: image i's seed depends on this exact order
    return sorted(path.relative_to(root).as_posix() for path in paths), ignored


def check_reserved_names(sources: list[str], config: MaskConfig) -> None:
    for source in sources:
        if config.save_masks and source.split("/", 1)[0] == MASKS_DIR:
            raise InputError(
                f"The input holds a top-level {MASKS_DIR}/ folder ({source}), where --save-masks "
                "writes the binary masks. Rename that folder or drop --save-masks."
            )
        if config.preview and source == PREVIEW_PNG:
            raise InputError(
                f"The input holds a top-level {PREVIEW_PNG}, the name --preview writes. "
                "Rename that file or drop --preview."
            )


def is_done(output_root: Path, source: str, config: MaskConfig, old: dict | None) -> bool:
    if not (output_root / source).is_file():
        return False
    if not config.save_masks or (old is not None and old.get("status") == COPIED):
        return True
    return (output_root / mask_path_for(source)).is_file()


def output_folders(output_root: Path, sources: list[str], save_masks: bool) -> list[Path]:
    parents = sorted({os.path.dirname(source) for source in sources})
    folders = [output_root / parent for parent in parents]
    if save_masks:
        folders += [output_root / MASKS_DIR / parent for parent in parents]
    return folders
