"""The model behind `maskmtl serve`: uploaded bytes in, `maskmtl predict --json`'s JSON out.

``PredictionService`` loads the model and builds the face detector once, then answers any
number of requests, from several threads at once. It knows nothing of HTTP: bad input raises
``RequestError`` with the HTTP status and an error code, which ``app.py`` turns into a JSON
response. Predictions go through ``prediction.predict.predict_image``, the function behind
`maskmtl predict`, so a photo gets the same JSON from both.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from maskmtl_cli import __version__
from maskmtl_cli.errors import DataError, ImageTooLargeError, InputError, MaskmtlError
from maskmtl_cli.serve.config import ServeConfig

#: Pillow formats the server decodes: those of the image suffixes `maskmtl predict` scans for
#: (Pillow's JPEG opener also reads the multi-picture JPEGs of many cameras).
PHOTO_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
#: Name of the photo in the records when the client sends none.
DEFAULT_FILENAME = "upload"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class RequestError(MaskmtlError):
    """A request the server cannot serve; the message says what to send instead.

    Args:
        status: HTTP status code (4xx).
        code: Short machine-readable name of the problem, e.g. ``"not_an_image"``.
        message: What is wrong and what to do.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class PredictOptions:
    """Options of one ``POST /predict`` (defaults are those of `maskmtl predict`).

    Attributes:
        flip: Average with the prediction on the mirrored face.
        faces: ``"all"`` or ``"largest"`` (see ``prediction.predict.FACE_MODES``).
        filename: Name of the photo, reported in each record's ``file``.
    """

    flip: bool
    faces: str
    filename: str = DEFAULT_FILENAME


class PredictionService:
    """A loaded model and detector that turn encoded photos into JSON records.

    Args:
        config: The server's options (model, detector, engine, limits, workers).

    Raises:
        InputError: Unknown detector or engine, or a limit out of range.
        ModelError: The model is missing, corrupt or incompatible.
    """

    def __init__(self, config: ServeConfig) -> None:
        from maskmtl_cli.inference import load_model, model_tasks
        from maskmtl_cli.prediction.predict import PredictConfig, default_model_path

        defaults = {field.name: field.default for field in dataclasses.fields(PredictConfig)}
        _check_limits(config)
        self.config = config
        self.detector = config.detector or defaults["detector"]
        self.engine = config.engine or defaults["engine"]
        self.predict_defaults = {"flip": defaults["flip"], "faces": defaults["faces"]}
        started = time.perf_counter()
        self.model_path = Path(config.model) if config.model is not None else default_model_path()
        self.model = load_model(self.model_path, self.engine)
        self.tasks = model_tasks(self.model)
        self._warm_up()
        self.load_seconds = time.perf_counter() - started

    def _warm_up(self) -> None:
        """One forward pass and one detection: checks the detector's name and builds it (the
        prediction core keeps one per process), so the first request is as fast as the rest."""
        import numpy as np

        from maskmtl_cli.inference import input_spec, predict_arrays
        from maskmtl_cli.prediction.predict import predict_image

        size, color_mode = input_spec(self.model)
        predict_arrays(self.model, np.zeros((1, size, size, 1 if color_mode == "gray" else 3),
                                            np.uint8))
        predict_image(np.zeros((64, 64, 3), np.uint8), self.model, self.detector,
                      engine=self.engine)

    def health(self) -> dict:
        """What ``GET /health`` reports: the model, detector, engine, version and limits."""
        from maskmtl_cli.prediction.predict import FACE_MODES

        return {
            "status": "ok",
            "version": __version__,
            "model": str(self.model_path),
            "tasks": list(self.tasks),
            "detector": self.detector,
            "engine": self.engine,
            "faces": list(FACE_MODES),
            "defaults": dict(self.predict_defaults),
            "max_upload_bytes": self.config.max_upload_bytes,
            "max_pixels": self.config.max_pixels,
            "min_face": self.config.min_face,
            "workers": self.config.workers,
        }

    def parse_options(self, fields: Mapping[str, object]) -> PredictOptions:
        """Options from form fields or JSON keys (strings, or JSON booleans for ``flip``).

        Raises:
            RequestError: A value that is not allowed (422), naming the allowed ones.
        """
        from maskmtl_cli.prediction.predict import FACE_MODES

        flip = fields.get("flip", self.predict_defaults["flip"])
        if isinstance(flip, str) and flip.strip().lower() in _TRUE + _FALSE:
            flip = flip.strip().lower() in _TRUE
        if not isinstance(flip, bool):
            raise RequestError(422, "bad_option", f"flip must be true or false; got {flip!r}.")
        faces = fields.get("faces", self.predict_defaults["faces"])
        if faces not in FACE_MODES:
            raise RequestError(422, "bad_option", f"faces must be one of "
                               f"{', '.join(FACE_MODES)}; got {faces!r}.")
        filename = fields.get("filename", DEFAULT_FILENAME)
        if not isinstance(filename, str):
            raise RequestError(422, "bad_option", f"filename must be a string; got {filename!r}.")
        return PredictOptions(flip=flip, faces=faces, filename=clean_filename(filename))

    def predict(self, data: bytes, options: PredictOptions) -> str:
        """Predict every face of one encoded photo (blocking: call it off the event loop).

        Args:
            data: The uploaded file.
            options: Per-request options.

        Returns:
            The JSON text `maskmtl predict --json` prints for the photo: a list with one object
            per face (``FaceRecord.to_dict``), ``[]`` when there is no face.

        Raises:
            RequestError: Empty, oversized, undecodable or non-image data.
        """
        from maskmtl_cli.prediction.inputs import decode_image
        from maskmtl_cli.prediction.predict import predict_image
        from maskmtl_cli.prediction.render import records_to_json

        self.check_size(len(data))
        if not data:
            raise RequestError(400, "empty_upload", "The uploaded file is empty (0 bytes). "
                               "Send the photo's contents, e.g. curl -F image=@photo.jpg.")
        try:
            image = decode_image(data, options.filename, self.config.max_pixels, PHOTO_FORMATS)
        except ImageTooLargeError as error:
            raise RequestError(413, "image_too_large", f"{error}. Send a smaller photo (a few "
                               "megapixels is plenty for faces), or restart the server with "
                               "a larger --max-megapixels.") from None
        except DataError as error:
            raise RequestError(422, "unreadable_image", f"{error}. Send a complete photo in one "
                               f"of these formats: {', '.join(PHOTO_FORMATS)}.") from None
        records = predict_image(image, self.model, self.detector, faces=options.faces,
                                min_face=self.config.min_face, flip=options.flip,
                                file=options.filename, engine=self.engine)
        return records_to_json(records)

    def check_size(self, size: int) -> None:
        """RequestError (413) when ``size`` bytes is over the upload limit."""
        if size > self.config.max_upload_bytes:
            raise self.upload_too_large(size)

    def upload_too_large(self, size: int, complete: bool = True) -> RequestError:
        """The 413 error for an upload of ``size`` bytes (``complete``: or more, so far)."""
        limit = self.config.max_upload_bytes
        return RequestError(413, "upload_too_large", f"The upload is "
                            f"{'' if complete else 'over '}{size / 1e6:.1f} MB; this server "
                            f"accepts photos up to {limit / 1e6:g} MB. Send a smaller or more "
                            "compressed photo, or restart the server with a larger "
                            "--max-upload-mb.")


def clean_filename(name: str) -> str:
    """The last component of a client's file name, without control characters (max 255)."""
    name = PureWindowsPath(name).name  # also strips "C:\\fakepath\\" and POSIX folders
    name = _UNSAFE_NAME_CHARACTERS.sub("", name).strip()[:255]
    return name or DEFAULT_FILENAME


def _check_limits(config: ServeConfig) -> None:
    """InputError for limits a server cannot work with."""
    for option, value in (("--max-upload-mb", config.max_upload_mb),
                          ("--max-megapixels", config.max_megapixels),
                          ("--workers", config.workers)):
        if not value > 0:
            raise InputError(f"{option} must be positive; got {value}.")
    if not 0 <= config.port <= 65535:
        raise InputError(f"--port must be 0-65535; got {config.port}.")
