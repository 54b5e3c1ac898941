"""Faces followed through a video: track ids from norfair, and each track's predictions pooled.

``FaceTracker`` gives every face box of a frame a track id: the same person keeps one id from
frame to frame. It wraps norfair's ``Tracker`` (the maintained ``norfair-enough`` fork; BSD-3)
with an IoU distance and a Kalman filter over the box corners; docs/predict.md#videos says why
norfair and not ByteTrack, and what was measured.

``TrackBook`` pools the per-frame predictions of each track as they come: every task of the
model is averaged over the track's frames, with its spread (standard deviation) and, for
classes, the share of frames that voted for each class, so that one blurred frame does not
decide a track's age, gender or ethnicity.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import numpy as np

from maskmtl_cli.tasks import GENDER_NAMES, RACE_NAMES

#: Two boxes belong to the same track when their overlap (IoU) is above 1 minus this (0.1, as
#: ByteTrack's minimum; with 0.8 a face that moved and zoomed between frames 6 apart got a new
#: id, benchmarks/bench_trackers.py).
_IOU_DISTANCE = 0.9
#: How long (seconds of processed frames) a track lives on without a detection, so that a face
#: missed for a moment (blur, a hand, a turned head) keeps its id.
_MEMORY_S = 1.0


class FaceTracker:
    """Track ids for the face boxes of consecutive processed frames of one video.

    Args:
        rate: Processed frames per second (the video's rate divided by ``--every``).
    """

    def __init__(self, rate: float):
        from norfair import Tracker

        self._tracker = Tracker(distance_function="iou", distance_threshold=_IOU_DISTANCE,
                                hit_counter_max=max(1, round(rate * _MEMORY_S)),
                                initialization_delay=0)
        self._step = 0

    def update(self, boxes: list[tuple[int, int, int, int]],
               scores: list[float | None]) -> list[int | None]:
        """The track id of each box ``(x, y, w, h)`` of the next frame, in order."""
        from norfair import Detection

        self._step += 1
        detections = [Detection(points=np.array([[x, y], [x + w, y + h]], float),
                                scores=np.full(2, 1.0 if score is None else score),
                                data=(self._step, index))
                      for index, ((x, y, w, h), score) in enumerate(zip(boxes, scores))]
        ids: list[int | None] = [None] * len(boxes)
        for tracked in self._tracker.update(detections=detections):
            step, index = tracked.last_detection.data
            if step == self._step:  # matched in this frame, not only remembered
                ids[index] = tracked.id
        return ids


@dataclass(frozen=True)
class TaskSummary:
    """One task pooled over a track's frames.

    Attributes:
        name: ``age``, ``gender``, ``ethnicity`` or the model's own task name.
        value: Regression: the mean over frames.
        std: Regression: the standard deviation of the value; classification: that of the
            chosen class's probability.
        label: Classification: the class with the highest mean probability.
        probability: Its mean probability.
        probabilities: Every class's mean probability.
        votes: Every class's share of the frames where it was the most likely class.
    """

    name: str
    value: float | None = None
    std: float | None = None
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    votes: dict[str, float] | None = None

    def fields(self) -> dict:
        """Its JSON fields: ``age``, ``age_std`` or ``gender``, ``gender_probability``,
        ``gender_std``, ``gender_probabilities``, ``gender_votes``."""
        if self.label is None:
            return {self.name: round(self.value, 2), f"{self.name}_std": round(self.std, 2)}
        return {self.name: self.label,
                f"{self.name}_probability": round(self.probability, 4),
                f"{self.name}_std": round(self.std, 4),
                f"{self.name}_probabilities": {name: round(value, 4)
                                               for name, value in self.probabilities.items()},
                f"{self.name}_votes": {name: round(value, 4)
                                       for name, value in self.votes.items()}}


@dataclass(frozen=True)
class TrackSummary:
    """One person's track through a video, with the predictions pooled over its frames."""

    file: str
    track: int
    first_frame: int
    last_frame: int
    first_time_s: float
    last_time_s: float
    frames: int  # processed frames the face was seen in
    tasks: tuple[TaskSummary, ...] = ()

    def task(self, name: str) -> TaskSummary | None:
        """The summary of task ``name``, or None."""
        return next((task for task in self.tasks if task.name == name), None)

    def to_dict(self) -> dict:
        """A JSON-ready dict (see ``TaskSummary.fields`` for the task fields)."""
        return {"file": self.file, "track": self.track, "first_frame": self.first_frame,
                "last_frame": self.last_frame, "first_time_s": round(self.first_time_s, 3),
                "last_time_s": round(self.last_time_s, 3), "frames": self.frames,
                **{key: value for task in self.tasks for key, value in task.fields().items()}}


def _observations(record) -> list[tuple[str, tuple[str, ...] | None, list[float]]]:
    """A record's tasks as ``(name, classes or None, values)``: probabilities in class order,
    or a one-element list for a regression task."""
    found = []
    if record.age is not None:
        found.append(("age", None, [record.age]))
    if record.p_female is not None:
        found.append(("gender", GENDER_NAMES, [1.0 - record.p_female, record.p_female]))
    if record.ethnicity_probabilities is not None:
        found.append(("ethnicity", RACE_NAMES,
                      [record.ethnicity_probabilities[name] for name in RACE_NAMES]))
    for task in record.tasks:
        if task.probabilities is None:
            found.append((task.name, None, [task.value]))
        else:
            found.append((task.name, tuple(task.probabilities),
                          list(task.probabilities.values())))
    return found


@dataclass
class _Pool:
    """Running sums of one track: enough for means, spreads and votes without the frames."""

    file: str
    track: int
    first_frame: int
    first_time_s: float
    last_frame: int = 0
    last_time_s: float = 0.0
    count: int = 0
    classes: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    squares: dict[str, np.ndarray] = field(default_factory=dict)
    votes: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, record) -> None:
        self.count += 1
        self.last_frame, self.last_time_s = record.frame, record.time_s
        for name, classes, values in _observations(record):
            values = np.asarray(values, float)
            if name not in self.sums:
                self.classes[name] = classes
                self.sums[name], self.squares[name] = np.zeros_like(values), np.zeros_like(values)
                self.votes[name] = np.zeros_like(values)
            self.sums[name] += values
            self.squares[name] += values ** 2
            self.votes[name][int(np.argmax(values))] += 1

    def task(self, name: str) -> TaskSummary:
        mean = self.sums[name] / self.count
        std = np.sqrt(np.maximum(self.squares[name] / self.count - mean ** 2, 0.0))
        classes = self.classes[name]
        if classes is None:
            return TaskSummary(name, value=float(mean[0]), std=float(std[0]))
        best = int(np.argmax(mean))
        return TaskSummary(name, std=float(std[best]), label=classes[best],
                           probability=float(mean[best]),
                           probabilities=dict(zip(classes, map(float, mean))),
                           votes=dict(zip(classes, map(float, self.votes[name] / self.count))))

    def summary(self) -> TrackSummary:
        return TrackSummary(self.file, self.track, self.first_frame, self.last_frame,
                            self.first_time_s, self.last_time_s, self.count,
                            tuple(self.task(name) for name in self.sums))


class TrackBook:
    """The tracks of a run, pooled as their faces' records arrive (records without a track,
    photos' faces, are ignored)."""

    def __init__(self):
        self._pools: dict[tuple[str, int], _Pool] = {}

    def add(self, record) -> None:
        """Pool one face's record into its track."""
        if record.track is None:
            return
        key = (record.file, record.track)
        if key not in self._pools:
            self._pools[key] = _Pool(record.file, record.track, record.frame, record.time_s)
        self._pools[key].add(record)

    def label(self, record) -> str:
        """What an annotated frame shows for a face: its track and the track's pooled
        predictions so far, e.g. ``T2 34y female 0.91 White 0.78``."""
        from maskmtl_cli.prediction.render import face_label

        if record.track is None or (record.file, record.track) not in self._pools:
            return face_label(record)
        pool = self._pools[(record.file, record.track)]
        parts = [f"T{record.track}"]
        for name in pool.sums:
            task = pool.task(name)
            parts.append(f"{task.value:.0f}y" if name == "age" else
                         f"{task.value:.3g}" if task.label is None else
                         f"{task.label} {task.probability:.2f}")
        return " ".join(parts)

    def summaries(self) -> list[TrackSummary]:
        """Every track, in the order the tracks first appeared."""
        return [pool.summary() for pool in self._pools.values()]


def tracks_to_json(tracks: list[TrackSummary]) -> str:
    """A JSON list with one object per track."""
    return json.dumps([track.to_dict() for track in tracks], indent=2)


def tracks_to_csv(tracks: list[TrackSummary]) -> str:
    """CSV with one row per track: the track's fields, then per task its mean (or class,
    probability, spread, ``p_<task>_<class>`` and ``votes_<task>_<class>``)."""
    columns = ["file", "track", "first_frame", "last_frame", "first_time_s", "last_time_s",
               "frames"]
    for task in tracks[0].tasks if tracks else ():
        if task.label is None:
            columns += [task.name, f"{task.name}_std"]
        else:
            columns += [task.name, f"{task.name}_probability", f"{task.name}_std",
                        *(f"p_{task.name}_{name}" for name in task.probabilities),
                        *(f"votes_{task.name}_{name}" for name in task.votes)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for track in tracks:
        row = track.to_dict()
        for task in track.tasks:
            if task.label is not None:
                row.update({f"p_{task.name}_{name}": round(value, 4)
                            for name, value in task.probabilities.items()})
                row.update({f"votes_{task.name}_{name}": round(value, 4)
                            for name, value in task.votes.items()})
        writer.writerow(row)
    return buffer.getvalue()


def write_tracks(path, tracks: list[TrackSummary]):
    """Write the summary to ``path``: CSV when it ends in .csv, else JSON."""
    from pathlib import Path

    from maskmtl_cli.io import write_text_atomic

    path = Path(path)
    text = tracks_to_csv(tracks) if path.suffix.lower() == ".csv" else tracks_to_json(tracks) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, text)
