"""`maskmtl predict` on videos and cameras: faces per frame, followed as tracks.

Every ``--every``-th frame is searched for faces (RetinaFace at ``--video-min-face``), the boxes
go to the tracker (``tracking.FaceTracker``), and the aligned faces of several frames share one
forward pass of the model. Each face becomes a ``FaceRecord`` with its frame, time and track;
``TrackBook`` pools them into one summary per track. With ``--annotate`` every frame of the
source (processed or not) is written to an .mp4 at the source's frame rate, each face labelled
with its track and the track's pooled predictions so far.

Ctrl-C stops the run cleanly: the faces found so far are predicted, the annotated video is
closed (playable, with the frames done) and the run's result says where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from maskmtl_cli.errors import DataError
from maskmtl_cli.faces.alignment import to_model_input
from maskmtl_cli.prediction.crops import face_crops
from maskmtl_cli.prediction.records import make_records
from maskmtl_cli.prediction.tracking import FaceTracker, TrackBook, write_tracks
from maskmtl_cli.prediction.video import AnnotatedVideo, VideoSource, open_camera, open_video

if TYPE_CHECKING:  # pragma: no cover
    from maskmtl_cli.prediction.inputs import InputImage
    from maskmtl_cli.prediction.predict import PredictResult

#: Processed frames whose faces wait for one forward pass (fewer when --batch-size faces come
#: first). Bounds the memory held for --annotate and how far results lag behind the video.
_MAX_PENDING_FRAMES = 16


@dataclass
class _Frame:
    """A frame read: its faces (None: skipped by --every), track ids and model inputs."""

    index: int
    seconds: float
    image: np.ndarray | None
    faces: list | None = None
    tracks: list | None = None
    inputs: list | None = None


def predict_videos(session, videos: list[InputImage], result: PredictResult,
                   progress: Callable[[str, int, int], None] | None = None) -> None:
    """Predict every face of every video (then the camera, with ``--camera``) into ``result``.

    Args:
        session: The run's model and options (``predict._Session``).
        videos: The video files, in input order.
        result: Gets the records, the track summaries, the unreadable files and notes.
        progress: ``progress(name, frames read, frames announced or 0)``.

    A video that cannot be read is listed in ``result.unreadable`` and the run goes on. Ctrl-C
    ends the run with what is done (``result.interrupted`` says so).
    """
    config = session.config
    book = TrackBook()
    sources = [(video, None) for video in videos]
    if config.camera is not None:
        sources.append((None, config.camera))
    try:
        for done, (video, camera) in enumerate(sources):
            try:
                source = open_camera(camera) if video is None else open_video(video.path)
            except DataError as error:
                result.unreadable.append((str(video.path), str(error)))
                continue
            run = _VideoRun(session, source, video, result, book)
            try:
                run.process(progress)
            except KeyboardInterrupt:
                run.stopped = True
                if source.live:  # the way to end a camera's stream, not an interruption
                    result.notes.append(f"Stopped {source.name} by Ctrl-C after "
                                        f"{source.frames_read} frames.")
                else:
                    result.interrupted = _stopped_text(source, len(sources) - done - 1)
            finally:
                run.finish()
            if run.stopped:
                break
    finally:
        result.tracks = book.summaries()
        if config.tracks_path is not None:
            result.tracks_path = write_tracks(config.tracks_path, result.tracks)


def _stopped_text(source: VideoSource, left: int) -> str:
    where = (f"after {source.frames_read} frames of '{source.name}'" if not source.frame_count
             else f"while reading frame {source.frames_read} of {source.frame_count} of "
             f"'{source.name}'")
    rest = f"; {left} more input(s) not read" if left else ""
    return f"Stopped by Ctrl-C {where}{rest}. The results cover the frames done."


class _VideoRun:
    """One video or camera through detection, tracking and batched prediction."""

    def __init__(self, session, source: VideoSource, video: InputImage | None,
                 result: PredictResult, book: TrackBook):
        config = session.config
        self.session, self.source, self.result, self.book = session, source, result, book
        self.tracker = FaceTracker(source.fps / config.every)
        self.writer = None
        if config.annotate_dir is not None:
            name = (video.annotated_name if video is not None
                    else f"camera{config.camera}.mp4")
            self.writer = AnnotatedVideo(config.annotate_dir / name, source.fps)
        self.pending: list[_Frame] = []
        self.shown: list = []  # the latest processed frame's records, drawn on skipped frames
        self.faces = 0
        self.stopped = False  # by Ctrl-C

    def process(self, progress: Callable[[str, int, int], None] | None) -> None:
        """Read the source to its end: detect, track and queue each processed frame."""
        config, session = self.session.config, self.session
        keep_image = self.writer is not None
        for index, seconds, image in self.source.frames():
            frame = _Frame(index, seconds, image if keep_image else None)
            if index % config.every == 0:
                pairs = face_crops(image, session.detector, config.faces, config.video_min_face)
                frame.faces = [face for face, _ in pairs]
                frame.tracks = self.tracker.update([face.box for face in frame.faces],
                                                   [face.score for face in frame.faces])
                frame.inputs = [to_model_input(crop, session.size, session.color_mode)
                                for _, crop in pairs]
                self.result.frames += 1
            if frame.faces is not None or keep_image:
                self.pending.append(frame)
            waiting = sum(len(item.faces or ()) for item in self.pending)
            if waiting >= config.batch_size or len(self.pending) >= _MAX_PENDING_FRAMES:
                self.flush()
            if progress is not None:
                progress(self.source.name, self.source.frames_read, self.source.frame_count)

    def flush(self) -> None:
        """Predict the queued faces in one pass; records, track pools and annotated frames."""
        from maskmtl_cli.inference import predict_arrays
        from maskmtl_cli.prediction.render import annotate

        session, config = self.session, self.session.config
        batch = [array for frame in self.pending for array in frame.inputs or ()]
        outputs = (predict_arrays(session.model, np.stack(batch), batch_size=config.batch_size,
                                  flip=config.flip) if batch else {})
        offset = 0
        for frame in self.pending:
            if frame.faces is not None:
                records = make_records(self.source.name, frame.faces, outputs, offset,
                                       self.result.detector, session.specs)
                offset += len(frame.faces)
                self.shown = [replace(record, frame=frame.index, time_s=frame.seconds,
                                      track=track)
                              for record, track in zip(records, frame.tracks)]
                self.result.records.extend(self.shown)
                for record in self.shown:
                    self.book.add(record)
                self.faces += len(self.shown)
            if self.writer is not None:
                labels = [self.book.label(record) for record in self.shown]
                self.writer.write(annotate(frame.image, self.shown, labels))
        self.pending.clear()

    def finish(self) -> None:
        """Predict what is queued, close the annotated video and the source, note problems."""
        try:
            self.flush()
        finally:
            self.source.close()
            if self.writer is not None:
                written = self.writer.close()
                if written is not None:
                    self.result.annotated.append(written)
        self.result.videos += 1
        if self.faces == 0:
            self.result.no_face.append(self.source.name)
        shortfall = None if self.stopped else self.source.shortfall()
        if shortfall is not None:
            self.result.notes.append(shortfall)
