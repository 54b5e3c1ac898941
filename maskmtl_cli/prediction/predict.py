"""Core of `maskmtl predict`: faces in photos -> aligned crops -> age, gender and ethnicity.

Python users call ``predict_image(image_rgb, model)`` on an in-memory RGB array; the CLI calls
``run_predict(config)`` over files and folders, which batches the crops of many photos into one
forward pass and writes the optional annotated copies and Grad-CAM overlays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from maskmtl_cli.errors import DataError, InputError, ModelError, NoFaceError
from maskmtl_cli.faces.alignment import to_model_input
from maskmtl_cli.faces.detection import (
    DEFAULT_DETECTOR,
    Face,
    check_detector_name,
    get_detector,
)
from maskmtl_cli.inference import ENGINES
from maskmtl_cli.prediction.config import FACE_MODES, PredictConfig  # noqa: F401  (re-exported)
from maskmtl_cli.prediction.crops import face_crops, select_faces  # noqa: F401  (re-exported)
from maskmtl_cli.prediction.inputs import (
    InputImage,
    check_output_dirs,
    collect_images,
    prefetch,
    read_aligned_input,
    read_image,
)
from maskmtl_cli.prediction.outputs import Pending, cam_batches, save_cams, save_masks
from maskmtl_cli.prediction.records import FaceRecord, make_records

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: The pretrained model shipped inside the package: ``maskmtl_default.onnx`` runs it, the
#: ``.keras`` file beside it serves ``--engine keras`` and ``--cam``.
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "maskmtl_default.onnx"
#: A photo without a face that is about square and at most this many pixels on its longer side
#: looks like an aligned face crop: the message then suggests ``--aligned``.
_CROP_LIKE_SIDE = 512
#: With --annotate, photos are kept in memory until their faces are predicted; flush this often.
_MAX_PENDING_PHOTOS = 16


@dataclass
class PredictResult:
    """Everything a run found, for the CLI to render."""

    records: list[FaceRecord]
    model_path: Path
    detector: str
    images: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    crop_like: list[str] = field(default_factory=list)  # no face, but shaped like a face crop
    annotated: list[Path] = field(default_factory=list)
    cams: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)
    annotate_dir: Path | None = None
    cam_dir: Path | None = None
    masks_dir: Path | None = None
    # videos: files read, frames predicted, one summary per track, notes (truncated files)
    videos: int = 0
    frames: int = 0
    tracks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: str | None = None  # Ctrl-C during a video: what was kept
    tracks_path: Path | None = None


def default_model_path() -> Path:
    """The bundled pretrained model; ModelError saying what to pass when it is missing."""
    if not DEFAULT_MODEL.is_file():
        raise ModelError(
            f"No --model given and the pretrained model is missing from this installation "
            f"(expected {DEFAULT_MODEL}). Reinstall maskmtl, or pass --model runs/NAME (a run "
            "folder from `maskmtl train`) or --model path/to/model.onnx."
        )
    return DEFAULT_MODEL


def looks_like_face_crop(image: np.ndarray) -> bool:
    """About square and small: the shape of an aligned face crop such as UTKFace's 200x200."""
    height, width = image.shape[:2]
    return max(height, width) <= _CROP_LIKE_SIDE and 0.75 <= width / max(height, 1) <= 1.34

def predict_image(image: np.ndarray, model: keras.Model | str | Path,
                  detector: str = DEFAULT_DETECTOR, *, aligned: bool = False,
                  faces: str = "all", min_face: int = 20, flip: bool = False, file: str = "",
                  engine: str = "onnx") -> list[FaceRecord]:
    """Predict age, gender and ethnicity for every face in one in-memory photo.

    Args:
        image: RGB uint8 array (H, W, 3), already upright (see ``read_image``).
        model: A loaded maskmtl model, or a run folder / ``.keras`` / ``.onnx`` file to load.
        detector: A name from ``DETECTORS`` (``"retinaface"`` by default); ignored when
            ``aligned``.
        aligned: The photo is already a UTKFace-style aligned face crop: skip detection.
        faces: ``"all"`` or ``"largest"``.
        min_face: Smallest face to find, in pixels.
        flip: Average with the prediction on the mirrored face.
        file: Name to put in the records.
        engine: How a ``model`` given as a path is run: ``"onnx"`` (ONNX Runtime) or ``"keras"``.

    Returns:
        One ``FaceRecord`` per face (empty when none is found).

    Example:
        >>> from maskmtl_cli.prediction.predict import predict_image, read_image
        >>> records = predict_image(read_image("photo.jpg"), "runs/train")
    """
    from maskmtl_cli.inference import input_spec, load_model, predict_arrays, task_specs

    image = _check_image(image)
    if not aligned:
        check_detector_name(detector)
    if not hasattr(model, "predict_on_batch"):
        model = load_model(model, engine)
    size, color_mode = input_spec(model)
    pairs = face_crops(image, None if aligned else detector, faces, min_face)
    if not pairs:
        return []
    inputs = np.stack([to_model_input(crop, size, color_mode) for _, crop in pairs])
    outputs = predict_arrays(model, inputs, batch_size=max(1, len(inputs)), flip=flip)
    return make_records(file, [face for face, _ in pairs], outputs,
                        detector="aligned" if aligned else detector, specs=task_specs(model))


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"Expected an RGB uint8 image of shape (H, W, 3); got {image.dtype} "
                         f"{image.shape}. Read files with read_image(path).")
    return image


def validate_config(config: PredictConfig) -> None:
    """InputError for option values the CLI's parser would also reject."""
    if not config.aligned:
        check_detector_name(config.detector)
    if config.faces not in FACE_MODES:
        raise InputError(f"Unknown --faces '{config.faces}'. Choose one of: "
                         f"{', '.join(FACE_MODES)}.")
    if config.min_face < 1:
        raise InputError(f"--min-face must be at least 1 pixel; got {config.min_face}.")
    if config.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {config.batch_size}.")
    if config.engine not in ENGINES:
        raise InputError(f"Unknown --engine '{config.engine}'. Choose one of: "
                         f"{', '.join(ENGINES)}.")
    if config.every < 1 or config.video_min_face < 1:
        raise InputError(f"--every and --video-min-face must be at least 1; got "
                         f"{config.every} and {config.video_min_face}.")
    if config.tracks_path is not None and config.tracks_path.is_dir():
        raise InputError(f"--tracks '{config.tracks_path}' is a folder; pass a file name "
                         "(.json, or .csv for CSV).")


def run_predict(config: PredictConfig, progress: Callable[[int, int], None] | None = None,
                model: keras.Model | None = None,
                video_progress: Callable[[str, int, int], None] | None = None) -> PredictResult:
    """Predict every face in the given files and folders (photos first, then videos and the
    camera, see ``video_run.predict_videos``).

    Args:
        config: The run's options.
        progress: Called as ``progress(done, total)`` after each photo.
        model: An already loaded model to use instead of loading ``config.model`` (for
            repeated runs in one process).
        video_progress: Called as ``video_progress(name, frames read, frames announced or
            0)`` as a video is read.

    Returns:
        The records plus the files that were unreadable or had no face, and the files written.

    Raises:
        InputError: Bad inputs or output folders (see ``collect_images``, ``check_output_dirs``).
        ModelError: The model is missing, corrupt or incompatible.
        DataError: Not one input could be read as an image.
    """
    validate_config(config)
    check_output_dirs(config.inputs, config.annotate_dir, config.cam_dir,
                      masks_dir=config.masks_dir)
    outputs_dirs = tuple(folder for folder in (config.annotate_dir, config.cam_dir,
                                               config.masks_dir) if folder)
    images = (collect_images(config.inputs, exclude=outputs_dirs)
              if config.inputs or config.camera is None else [])
    check_output_dirs(config.inputs, config.annotate_dir, config.cam_dir, images)
    videos = [image for image in images if image.is_video]
    images = [image for image in images if not image.is_video]
    session = _Session.open(config, model)
    result = PredictResult([], session.model_path, session.detector or "aligned",
                           annotate_dir=config.annotate_dir, cam_dir=config.cam_dir,
                           masks_dir=config.masks_dir)
    batches = _Batches(session, result)
    ahead = 2 * config.batch_size if session.fast_aligned else 4
    for done, (image, future) in enumerate(prefetch(session.load, images, ahead), start=1):
        try:
            photo, ready = future.result()
        except DataError as error:
            result.unreadable.append((str(image.path), str(error)))
        else:
            result.images += 1
            batches.add(session.prepare(image, photo, ready, result))
        if progress is not None:
            progress(done, len(images))
    batches.flush()
    if videos or config.camera is not None:
        from maskmtl_cli.prediction.video_run import predict_videos

        predict_videos(session, videos, result, video_progress)
    if result.images == 0 and result.videos == 0:
        listed = "; ".join(reason for _, reason in result.unreadable[:5])
        raise DataError(f"None of the {len(images) + len(videos)} input files could be read "
                        f"as an image or video ({listed}). Pass JPEG, PNG, BMP, WebP or TIFF "
                        "photos, or videos OpenCV reads (.mp4, .avi, .mov, .mkv, .webm).")
    return result


@dataclass(frozen=True)
class _Session:
    """The model and detector of one run, and how each photo becomes model inputs."""

    config: PredictConfig
    model: object
    model_path: Path
    specs: tuple
    size: int
    color_mode: str
    detector: str | None
    cam: object | None

    @classmethod
    def open(cls, config: PredictConfig, model=None) -> _Session:
        """Load the model (unless given) and build the detector, so failures come first."""
        from maskmtl_cli.inference import has_segmentation, input_spec, load_model, task_specs

        model_path = Path(config.model) if config.model is not None else default_model_path()
        if model is None:
            # Grad-CAM needs Keras' gradients; everything else runs on ONNX Runtime by default.
            model = load_model(model_path,
                               "keras" if config.cam_dir is not None else config.engine)
        if config.masks_dir is not None and not has_segmentation(model):
            raise InputError(f"--masks needs a model with a segmentation head; {model_path} "
                             "has none. Train one with `maskmtl train --segmentation`.")
        detector = None if config.aligned else config.detector
        if detector is not None:
            get_detector(detector)  # Build it now so a failure is reported before any work.
        cam = None
        if config.cam_dir is not None:
            from maskmtl_cli.inference import model_tasks
            from maskmtl_cli.prediction.gradcam import GradCam

            cam = GradCam(model, model_tasks(model))
        return cls(config, model, model_path, task_specs(model), *input_spec(model), detector,
                   cam)

    @property
    def fast_aligned(self) -> bool:
        """--aligned without image outputs: decode straight to the model input, as training
        does."""
        return self.config.aligned and self.config.annotate_dir is None and self.cam is None

    def load(self, image: InputImage):
        """``(photo, None)``, or ``(None, (model input, box))`` when ``fast_aligned``."""
        if self.fast_aligned:
            return None, read_aligned_input(image.path, self.size, self.color_mode)
        return read_image(image.path), None

    def prepare(self, image: InputImage, photo, ready, result: PredictResult) -> Pending | None:
        """The photo's faces, crops and model inputs; notes a photo without a face in
        ``result``. None when nothing of it waits for the forward pass."""
        config = self.config
        if ready is not None:
            pairs, model_inputs = [(Face(ready[1], None, {}, "none"), None)], [ready[0]]
        else:
            pairs = face_crops(photo, self.detector, config.faces, config.min_face)
            model_inputs = [to_model_input(crop, self.size, self.color_mode)
                            for _, crop in pairs]
        if not pairs:
            result.no_face.append(str(image.path))
            if photo is not None and looks_like_face_crop(photo):
                result.crop_like.append(str(image.path))
        if not pairs and config.annotate_dir is None:
            return None
        return Pending(image, photo if config.annotate_dir is not None else None,
                       [face for face, _ in pairs],
                       [crop for _, crop in pairs] if self.cam is not None else [],
                       model_inputs)


class _Batches:
    """Photos whose faces wait for one batched forward pass, flushed into the result."""

    def __init__(self, session: _Session, result: PredictResult):
        self.session = session
        self.result = result
        self.pending: list[Pending] = []

    def add(self, item: Pending | None) -> None:
        """Queue a photo; run the batch once it holds ``batch_size`` faces (or, with
        --annotate, ``_MAX_PENDING_PHOTOS`` photos)."""
        if item is not None:
            self.pending.append(item)
        config = self.session.config
        if sum(len(item.faces) for item in self.pending) >= config.batch_size or (
                config.annotate_dir is not None and len(self.pending) >= _MAX_PENDING_PHOTOS):
            self.flush()

    def flush(self) -> None:
        """Predict every queued face at once, then write each photo's records and files."""
        from maskmtl_cli.inference import predict_arrays

        session, config = self.session, self.session.config
        batch = [array for item in self.pending for array in item.inputs]
        outputs, heatmaps = {}, {}
        if batch:
            inputs = np.stack(batch)
            outputs = predict_arrays(session.model, inputs, batch_size=config.batch_size,
                                     flip=config.flip, segmentation=config.masks_dir is not None)
            if session.cam is not None:
                heatmaps = cam_batches(session.cam, inputs, config.batch_size)
        offset = 0
        for item in self.pending:
            records = make_records(str(item.image.path), item.faces, outputs, offset,
                                   self.result.detector, session.specs)
            self.result.records.extend(records)
            self._write_files(item, records, outputs, heatmaps, offset)
            offset += len(item.faces)
        self.pending.clear()

    def _write_files(self, item: Pending, records, outputs, heatmaps, offset: int) -> None:
        config, result = self.session.config, self.result
        if config.annotate_dir is not None:
            from maskmtl_cli.prediction.render import annotate, save_image

            result.annotated.append(save_image(config.annotate_dir / item.image.relative,
                                               annotate(item.photo, records)))
        if self.session.cam is not None:
            result.cams.extend(save_cams(config.cam_dir, item, heatmaps, offset))
        if config.masks_dir is not None:
            result.masks.extend(save_masks(config.masks_dir, item, outputs, offset,
                                           config.aligned))


def check_strict(result: PredictResult, config: PredictConfig) -> None:
    """With ``--strict``, NoFaceError (exit 3) when any readable photo had no face."""
    if config.strict and result.no_face:
        shown = ", ".join(result.no_face[:5]) + (" ..." if len(result.no_face) > 5 else "")
        raise NoFaceError(
            f"No face found in {len(result.no_face)} of {result.images + result.videos} "
            f"{'inputs' if result.videos else 'images'} ({shown}) and "
            "--strict is set. Try a smaller --min-face, another --detector, or --aligned for "
            "face crops.")


__all__ = ["FaceRecord", "PredictConfig", "PredictResult", "predict_image", "read_image",
           "run_predict"]
