"""Core of `maskmtl unmask`: photos in, one reconstructed image per photo and records out.

Outputs keep the inputs' relative names (``collect_images``, as ``predict --annotate``). An
output that exists already is skipped, so an interrupted run resumes; inputs are never written
to. ``OUT_DIR/unmask.json`` records every photo (its output, faces and what was done to each),
also when the run is interrupted; a photo without a face is written unchanged (one output per
readable input), an unreadable one is listed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.unmasking.config import UnmaskConfig
from maskmtl_cli.unmasking.reconstruct import NO_MASK, UNMASKED

#: Records of a run, in the output folder.
RECORDS_FILE = "unmask.json"
#: Subfolder of ``--crops`` strips.
CROPS_DIR = "_crops"


@dataclass
class UnmaskResult:
    """What a run did, for the CLI to render."""

    out_dir: Path
    model: Path
    photos: list[dict] = field(default_factory=list)
    records_path: Path | None = None

    def count(self, status: str) -> int:
        return sum(photo["status"] == status for photo in self.photos)

    @property
    def faces(self) -> list[dict]:
        return [face for photo in self.photos for face in photo.get("faces", [])]


def run_unmask(config: UnmaskConfig, progress: Callable[[int, int], None] | None = None
               ) -> UnmaskResult:
    """Unmask every photo of ``config.inputs`` into ``config.out_dir``.

    Args:
        config: The run's options.
        progress: Called with (photos done, photos in all) after each photo.
    """
    from maskmtl_cli.faces.detection import check_detector_name
    from maskmtl_cli.io import write_json
    from maskmtl_cli.data.files import mask_run_extras
    from maskmtl_cli.prediction.inputs import collect_images
    from maskmtl_cli.unmasking.model import UnmaskModel, resolve_unmask_model

    out_dir = config.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"OUT_DIR '{out_dir}' is a file; pass a folder to write into.")
    for given in config.inputs:
        if given.is_dir() and (given.resolve() == out_dir.resolve()
                               or given.resolve() in out_dir.resolve().parents):
            raise InputError(f"OUT_DIR '{out_dir}' is inside the input folder '{given}'; its "
                             "outputs would be read as inputs on a rerun. Pass another folder.")
    # a `maskmtl mask` output's own masks, preview and other versions are not more photos
    extras = [path for given in config.inputs if given.is_dir()
              for path in mask_run_extras(given)]
    found = collect_images(config.inputs, exclude=(out_dir, *extras))
    images = [image for image in found if not image.is_video]
    videos = [image for image in found if image.is_video]
    if not images:
        raise InputError("No photos among the inputs (unmask reads images; videos are not "
                         "supported). Pass image files or folders.")
    input_files = {image.path.resolve() for image in images}
    for image in images:
        if (out_dir / image.relative).resolve() in input_files:
            raise InputError(f"OUT_DIR '{out_dir}' would overwrite the input '{image.path}'. "
                             "Pass another folder.")
    model_path = resolve_unmask_model(config.model)
    model = UnmaskModel(model_path)
    if not config.aligned:
        check_detector_name(config.detector)
    result = UnmaskResult(out_dir=out_dir, model=model_path)
    result.photos.extend({"file": str(video.relative), "output": None,
                          "status": "skipped (a video)"} for video in videos)
    previous = _previous_records(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for done, item in enumerate(images, start=1):
            target = out_dir / item.relative
            name = str(item.relative)
            if target.exists() and not config.overwrite:
                result.photos.append(previous.get(name) or {"file": name, "output": str(target),
                                                            "status": "kept (output exists)"})
            else:
                result.photos.append(_unmask_file(item.path, name, target, model, config))
            if progress:
                progress(done, len(images))
    finally:
        result.records_path = write_json(out_dir / RECORDS_FILE, {
            "model": str(model_path),
            "detector": "aligned" if config.aligned else config.detector,
            "photos": result.photos})
    return result


def _unmask_file(path: Path, name: str, target: Path, model, config: UnmaskConfig) -> dict:
    """Unmask one photo file into ``target``; its record."""
    from maskmtl_cli.io import atomic_path
    from maskmtl_cli.prediction.crops import face_crops
    from maskmtl_cli.prediction.inputs import read_image
    from maskmtl_cli.prediction.render import save_image
    from maskmtl_cli.unmasking.reconstruct import crop_strip, side_by_side, unmask_photo

    try:
        photo = read_image(path)
    except DataError as error:
        return {"file": name, "output": None, "status": "unreadable", "reason": str(error)}
    pairs = face_crops(photo, None if config.aligned else config.detector, config.faces,
                       config.min_face)
    output, results = unmask_photo(photo, model, pairs, file=name)
    statuses = {face.record.status for face in results}
    status = UNMASKED if UNMASKED in statuses else NO_MASK if results else "no face"
    if config.crops:
        for face in results:
            strip = (config.out_dir / CROPS_DIR / name).with_name(
                f"{Path(name).stem}_face{face.record.face}.png")
            save_image(strip, crop_strip(face))
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=target.suffix) as temp:  # a killed run leaves no half file
        save_image(temp, side_by_side(photo, output) if config.side_by_side else output)
    return {"file": name, "output": str(target), "status": status,
            "faces": [face.record.to_dict() for face in results]}


def _previous_records(out_dir: Path) -> dict[str, dict]:
    """The records of an earlier run into ``out_dir`` (by file), to keep them on a resume."""
    import json

    try:
        data = json.loads((out_dir / RECORDS_FILE).read_text(encoding="utf-8"))
        return {photo["file"]: photo for photo in data.get("photos", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
