"""Video files and cameras for `maskmtl predict`: reading frames, writing annotated copies.

OpenCV reads and writes (its FFmpeg build in the opencv-python wheel): whatever it can decode
is an input (mp4, avi, mov, mkv, webm, ...). Frames come out as RGB, like photos from
``read_image``. Annotated copies are MPEG-4 (``mp4v``) in an .mp4 at the source's frame rate.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from maskmtl_cli.errors import DataError, InputError

#: Frame rate assumed when a file or camera does not say (or says something absurd).
DEFAULT_FPS = 30.0
#: A file that ends this many frames (and this share) before its header's frame count is
#: reported as truncated; containers may round their count by a frame or two.
_SHORT_FRAMES, _SHORT_SHARE = 3, 0.02


@dataclass
class VideoSource:
    """An opened video file or camera.

    Attributes:
        name: What records call it: the file as given, or ``camera:N``.
        fps: Frames per second (``DEFAULT_FPS`` when unknown).
        frame_count: Frames the file's header announces (0: unknown, as for cameras).
        size: ``(width, height)`` of its frames.
        live: A camera: frame times are wall-clock seconds since it opened.
        frames_read: Frames read so far.
    """

    name: str
    capture: object
    fps: float
    frame_count: int
    size: tuple[int, int]
    live: bool = False
    frames_read: int = 0
    _first: np.ndarray | None = None

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(index, time in seconds, RGB frame)`` until the video ends."""
        import cv2

        start = time.monotonic()
        frame, self._first = self._first, None
        while True:
            if frame is None:
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    return
            index = self.frames_read
            self.frames_read += 1
            seconds = time.monotonic() - start if self.live else index / self.fps
            yield index, seconds, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            frame = None

    def shortfall(self) -> str | None:
        """After reading: why fewer frames came than the header announced (a truncated or
        damaged file), or None."""
        missing = self.frame_count - self.frames_read
        if self.live or missing < max(_SHORT_FRAMES, _SHORT_SHARE * self.frame_count):
            return None
        return (f"'{self.name}' ended after {self.frames_read} of the {self.frame_count} "
                "frames its header announces (truncated or damaged?); results cover the "
                "frames read.")

    def close(self) -> None:
        """Release the file or camera."""
        self.capture.release()


def _quiet_ffmpeg() -> None:
    """Silence FFmpeg's own log lines ("moov atom not found"...): a bad file gets one line of
    ours instead. Read by OpenCV when it first opens a video; a value set by the user wins."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def _fps(value: float) -> float:
    return float(value) if 0.5 <= value <= 1000 else DEFAULT_FPS


def open_video(path: Path) -> VideoSource:
    """Open a video file and decode its first frame, so a bad file fails here.

    Raises:
        DataError: Empty, unreadable (not a video, or its index is missing as in a cut-off
            mp4), or no frame decodes; the message names the file.
    """
    import cv2

    try:
        size = Path(path).stat().st_size
    except OSError as error:
        raise DataError(f"'{path}' cannot be read: {error.strerror or error}") from None
    if size == 0:
        raise DataError(f"'{path}' is an empty file (0 bytes), not a video.")
    _quiet_ffmpeg()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DataError(f"'{path}' cannot be opened as a video (not a format OpenCV's FFmpeg "
                        "reads, or damaged: a cut-off .mp4 loses its index).")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise DataError(f"'{path}' has no frame that can be decoded (an empty or damaged "
                        "video).")
    height, width = first.shape[:2]
    return VideoSource(str(path), capture, _fps(capture.get(cv2.CAP_PROP_FPS)),
                       max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))), (width, height),
                       _first=first)


def open_camera(index: int) -> VideoSource:
    """Open camera ``index`` (0: the first) and read one frame.

    Raises:
        InputError: No such camera, or it gives no frames.
    """
    import cv2

    _quiet_ffmpeg()
    capture = cv2.VideoCapture(index)
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok or first is None:
        capture.release()
        raise InputError(f"Camera {index} cannot be opened or gives no frames. Check it is "
                         "connected and not in use, or pass another --camera index.")
    height, width = first.shape[:2]
    return VideoSource(f"camera:{index}", capture, _fps(capture.get(cv2.CAP_PROP_FPS)), 0,
                       (width, height), live=True, _first=first)


class AnnotatedVideo:
    """An .mp4 written frame by frame (RGB in), created on the first frame.

    Written to a temporary name beside the target and renamed when closed, so an interrupted
    run leaves either a playable file of the frames done or nothing.
    """

    def __init__(self, path: Path, fps: float):
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._writer = None
        self._temp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")

    def write(self, frame: np.ndarray) -> None:
        """Append an RGB uint8 frame.

        Raises:
            InputError: OpenCV cannot create the file (folder not writable, no encoder).
        """
        import cv2

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._temp), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, (width, height))
            if not self._writer.isOpened():
                self._writer = None
                raise InputError(f"Cannot write the annotated video '{self.path}': OpenCV "
                                 "could not create it. Check the folder is writable, or pick "
                                 "another --annotate folder.")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; its path, or None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        self._temp.replace(self.path)
        return self.path
