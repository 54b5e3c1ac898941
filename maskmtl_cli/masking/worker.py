"""Masking one image: decode, find faces, landmark, overlay, encode and write atomically.

Runs inside the worker processes of ``maskmtl_cli.masking.batch`` (or in-process with one
worker). Every per-image problem becomes a failure record, never an exception, so one bad file
cannot stop a batch; only an ``OutputError`` (no permission, a read-only or full disk) does.
Each image's row goes to the run's journal before its output is put in place (see
``maskmtl_cli.masking.journal``), so no output is ever left without a record.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import cv2
import numpy as np

from maskmtl_cli.data.files import MASKS_DIR
from maskmtl_cli.errors import DataError, OutputError
from maskmtl_cli.faces.landmarks import DlibLandmarker
from maskmtl_cli.masking.config import variant_seed
from maskmtl_cli.masking.config import MaskConfig
from maskmtl_cli.masking.io import (
    ImageReadError,
    encode_image,
    encode_png,
    output_writes,
    read_image,
    write_atomic,
)
from maskmtl_cli.masking.journal import JOURNAL, JournalWriter
from maskmtl_cli.masking.records import COPIED, FAILED, new_record

#: Timed stages, reported per image in the summary (``encode`` includes the file writes).
STAGES = ("decode", "detect", "landmarks", "overlay", "encode")
#: Folder of the binary masks inside the output folder.
#: Images smaller than this on either side are refused as ``too_small``.
MIN_IMAGE_SIDE = 24
#: Failures whose source is not worth copying with ``--on-fail copy`` (not a usable image).
_NOT_COPIED = ("unreadable", "truncated")


def mask_path_for(source: str) -> str:
    """Relative path of the binary mask PNG of ``source`` (``_masks/<source>.png``)."""
    return f"{MASKS_DIR}/{source}.png"


class MaskWorker:
    """Masks single images for one run; holds the per-process landmarker.

    Args:
        config: The run's settings.
        landmarker: Something with ``find_boxes(gray)`` and ``landmarks(gray, box)`` like
            ``DlibLandmarker``; built from ``config`` when None.
        journal: File name of the journal in the output folder (a Ray worker has its own).
    """

    def __init__(self, config: MaskConfig, landmarker=None, journal: str = JOURNAL) -> None:
        self.config = config
        self.input_root = config.input_dir.resolve()
        self.output_root = config.output_dir.resolve()
        self.landmarker = landmarker or DlibLandmarker(config.detector, config.aligned)
        self._mix = config.mix_weights
        self._ready_folders: set[Path] = set()
        self.journal = JournalWriter(self.output_root / journal)

    def process(self, task: tuple[int, str]) -> dict:
        """Mask image ``task = (index, source)``; returns its masks.csv row plus ``_timings``.

        Raises:
            OutputError: An output or the journal cannot be written (permissions, read-only or
                full disk): no other image would fare better, so the batch stops.
        """
        index, source = task
        timings = dict.fromkeys(STAGES, 0.0)
        record = new_record(index, source)
        try:
            self._mask(index, source, record, timings)
        except OutputError:
            raise
        except ImageReadError as error:
            self._fail(source, record, error.reason, error.detail)
        except Exception as error:  # noqa: BLE001 - one bad image must not stop the batch
            message = " ".join(str(error).split())  # one line in masks.csv
            self._fail(source, record, "error", f"{type(error).__name__}: {message}")
        record["_timings"] = timings
        return record

    def _mask(self, index: int, source: str, record: dict, timings: dict) -> None:
        clock = time.perf_counter()
        image, gray = self._decode(source, record)
        clock = _lap(timings, "decode", clock)
        boxes = self._find_boxes(image, gray)
        clock = _lap(timings, "detect", clock)
        points = [self.landmarker.landmarks(gray, box) for box in boxes]
        clock = _lap(timings, "landmarks", clock)
        rgb, covered, styles = self._overlay(index, image, points)
        clock = _lap(timings, "overlay", clock)
        self._save(source, record, image, rgb, covered, styles, boxes)
        _lap(timings, "encode", clock)

    def _decode(self, source: str, record: dict):
        """The image and its grayscale copy (for the detectors); ImageReadError when too
        small."""
        image = read_image(self.input_root / source)
        record["width"], record["height"] = image.width, image.height
        if min(image.width, image.height) < MIN_IMAGE_SIDE:
            raise ImageReadError(
                "too_small",
                f"{image.width}x{image.height} px; faces need at least {MIN_IMAGE_SIDE} px a side",
            )
        if image.grayscale:
            gray = np.ascontiguousarray(image.bgr[:, :, 0])
        else:
            gray = cv2.cvtColor(image.bgr, cv2.COLOR_BGR2GRAY)
        return image, gray

    def _find_boxes(self, image, gray: np.ndarray) -> list:
        """The face boxes to mask (only the largest with ``--faces largest``)."""
        config = self.config
        rgb = None if image.grayscale else image.bgr[:, :, ::-1]
        boxes = self.landmarker.find_boxes(gray, rgb)
        if not boxes:
            hint = "; try --detector auto" if config.detector in ("hog", "cnn") else ""
            raise ImageReadError(
                "no_face", f"no face found by the {config.detector} detector{hint} "
                "(or --aligned for face crops)"
            )
        return boxes[:1] if config.faces == "largest" else boxes

    def _overlay(self, index: int, image, points: list) -> tuple[np.ndarray, np.ndarray, list]:
        """One mask per face, drawn from the image's own seed ``(seed, index)``: the masked RGB
        image, the union of the covered areas and the styles."""
        from maskmtl_cli.masking.overlay import apply_mask
        from maskmtl_cli.masking.style import choose_style

        config = self.config
        rng = np.random.default_rng(variant_seed(config.seed, index, config.variant))
        rgb = cv2.cvtColor(image.bgr, cv2.COLOR_BGR2RGB)
        covered = np.zeros(rgb.shape[:2], dtype=np.uint8)
        styles = []
        for face_points in points:
            style = choose_style(
                rng, config.mask_type, mix=self._mix, colour=config.colour,
                texture=config.texture, texture_weight=config.texture_weight,
            )
            rgb, face_mask = apply_mask(rgb, face_points, style, rng)
            np.maximum(covered, face_mask, out=covered)
            styles.append(style)
        return rgb, covered, styles

    def _save(self, source: str, record: dict, image, rgb: np.ndarray, covered: np.ndarray,
              styles: list, boxes: list) -> None:
        """Write the masked image (and its mask), with its row logged first."""
        config = self.config
        suffix = os.path.splitext(source)[1]
        alpha = None if image.alpha is None else np.maximum(image.alpha, covered)
        data = encode_image(
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), suffix, alpha=alpha,
            grayscale=image.grayscale, jpeg_quality=config.jpeg_quality,
        )
        if config.save_masks:  # the mask first: the output's existence marks the image done
            mask_source = mask_path_for(source)
            self._write(mask_source, encode_png(covered))
            record["mask"] = mask_source
        record.update(
            output=source,
            faces=len(boxes),
            template=";".join(style.template for style in styles),
            colour=";".join(style.colour_name for style in styles),
            texture=";".join(style.texture for style in styles),
            texture_weight=";".join(f"{style.texture_weight:.3f}" for style in styles),
            face_box=";".join(box.as_text() for box in boxes),
            landmark_source=";".join(box.source for box in boxes),
            detector=";".join(box.detector for box in boxes if box.detector),
        )
        self._log(record)  # before the output appears: an output always has its row
        self._write(source, data)

    def _fail(self, source: str, record: dict, reason: str, detail: str) -> None:
        record.update(status=FAILED, reason=reason, detail=detail, output="", mask="", faces=0)
        if self.config.on_fail != "copy" or reason in _NOT_COPIED:
            self._log(record)
            return
        try:
            data = (self.input_root / source).read_bytes()
            self._log({**record, "status": COPIED, "output": source})
            self._write(source, data)
        except (OSError, DataError) as error:  # an OutputError is neither: it stops the batch
            record["detail"] = f"{detail}; copying failed: {error}"
            self._log(record)
            return
        record.update(status=COPIED, output=source)

    def _log(self, record: dict) -> None:
        with output_writes(self.output_root, self.journal.path):
            self.journal.append(record)

    def _write(self, relative: str, data: bytes) -> None:
        """Write under the output folder only (atomically), creating folders as needed."""
        target = self.output_root / relative
        folder = target.parent
        with output_writes(self.output_root, target):
            if folder not in self._ready_folders:
                folder.mkdir(parents=True, exist_ok=True)
                if not folder.resolve().is_relative_to(self.output_root):
                    raise DataError(
                        f"Refusing to write {target}: its folder resolves to "
                        f"{folder.resolve()}, outside the output folder {self.output_root}."
                    )
                self._ready_folders.add(folder)
            write_atomic(target, data)


def _lap(timings: dict, stage: str, since: float) -> float:
    now = time.perf_counter()
    timings[stage] += now - since
    return now


_WORKER: MaskWorker | None = None


def init_worker(config: MaskConfig) -> None:
    """Pool initializer: one landmarker per worker; Ctrl-C is left to the parent."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    _WORKER = MaskWorker(config)
    _WORKER.landmarker.load()  # free after fork: the parent loaded the models already


def run_chunk(tasks: list[tuple[int, str]]) -> list[dict]:
    """Pool task: mask a few images in this worker."""
    assert _WORKER is not None, "init_worker() must run first"
    return [_WORKER.process(task) for task in tasks]
