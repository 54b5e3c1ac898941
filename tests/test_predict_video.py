"""`maskmtl predict` on videos: tracks, per-frame records, track summaries, annotated videos,
bad files and Ctrl-C, through the real CLI and the bundled model.

The clips are made here with OpenCV from the public-domain astronaut portrait
(``tools/render_clip.py``): she moves and zooms across a 640x480 frame for 3 s, and a mirrored
copy slides in from the right half way through. No video file is committed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.prediction.records import FaceRecord
from maskmtl_cli.prediction.tracking import TrackBook
from tools.render_clip import astronaut_clip, head_image, paste_head, wall, write_clip

runner = CliRunner()


def predict(*args):
    return runner.invoke(app, ["predict", *map(str, args)], catch_exceptions=False)


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _person(record: dict, truth: dict) -> int | None:
    """The person whose true face box the record's box overlaps (IoU >= 0.3)."""
    for person, box in truth.items():
        if _iou(record["box"], box) >= 0.3:
            return person
    return None


@pytest.fixture(scope="module")
def clip():
    return astronaut_clip()


@pytest.fixture(scope="module")
def clip_path(clip, tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", clip.frames, clip.fps)


@pytest.fixture(scope="module")
def every_frame(clip_path, tmp_path_factory):
    """One run over every frame: JSON records, the track summary (JSON), an annotated copy."""
    out = tmp_path_factory.mktemp("out")
    result = predict(clip_path, "--json", "--annotate", out / "annotated", "--tracks",
                     out / "tracks.json")
    assert result.exit_code == 0, result.output
    return (json.loads(result.stdout), json.loads((out / "tracks.json").read_text()),
            out / "annotated" / "clip.mp4", result)


def test_two_people_get_two_stable_tracks(clip, every_frame):
    records, tracks, _, _ = every_frame
    assert {record["frame"] for record in records} == set(range(len(clip.frames)))
    ids_of: dict[int, list[int]] = {}
    for record in records:
        person = _person(record, clip.truth[record["frame"]])
        assert person is not None, record  # no face found where there is none
        ids_of.setdefault(person, []).append(record["track"])
        assert record["time_s"] == pytest.approx(record["frame"] / clip.fps, abs=1e-3)
    assert sorted(ids_of) == [0, 1]
    # one id per person, never switching, and different people different ids
    assert all(len(set(ids)) == 1 for ids in ids_of.values()), ids_of
    assert ids_of[0][0] != ids_of[1][0]
    assert len(ids_of[0]) == len(clip.frames)
    assert len(tracks) == 2
    second = next(track for track in tracks if track["track"] == ids_of[1][0])
    entered = min(index for index, truth in enumerate(clip.truth) if 1 in truth)
    assert entered <= second["first_frame"] <= entered + 3
    assert second["last_frame"] == len(clip.frames) - 1
    assert second["frames"] == len(ids_of[1])


def test_track_age_is_near_the_single_photo_prediction(clip, every_frame):
    """Each track's pooled age is within a few years of `predict` on a still photo of that
    face at the size it has in the clip."""
    from maskmtl_cli.prediction import predict_image
    from maskmtl_cli.prediction.predict import DEFAULT_MODEL

    records, tracks, _, _ = every_frame
    first_track = next(r["track"] for r in records if _person(r, clip.truth[r["frame"]]) == 0)
    for mirrored, scale in ((False, 0.75), (True, 0.85)):
        still = wall(640, 480).copy()
        paste_head(still, head_image(mirrored), scale, 200, 100)
        (photo,) = predict_image(still, DEFAULT_MODEL)
        track = next(t for t in tracks if (t["track"] == first_track) != mirrored)
        assert abs(track["age"] - photo.age) <= 5.0, (track["age"], photo.age)
        assert 0 < track["age_std"] < 10
        assert sum(track["ethnicity_votes"].values()) == pytest.approx(1.0, abs=1e-3)
        assert track["gender"] in ("male", "female")


def test_annotated_video_has_every_frame_at_the_source_rate(clip, every_frame):
    _, _, annotated, result = every_frame
    capture = cv2.VideoCapture(str(annotated))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(clip.fps)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == len(clip.frames)
    assert frames[-1].shape == (480, 640, 3)
    # the boxes are drawn: the last frame differs from the source around the faces
    source = cv2.cvtColor(clip.frames[-1], cv2.COLOR_RGB2BGR).astype(int)
    assert np.abs(frames[-1].astype(int) - source).max() > 100
    assert "1 video(s)" in result.stderr and "2 track(s)" in result.stderr


def test_every_third_frame_csv_and_tracks_csv(clip, clip_path, tmp_path):
    result = predict(clip_path, "--every", "3", "--csv", "--tracks", tmp_path / "tracks.csv",
                     "--annotate", tmp_path / "annotated")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[:5] == ["file", "frame", "time_s", "track", "face"]
    assert {int(row["frame"]) % 3 for row in rows} == {0}
    assert len({row["track"] for row in rows}) == 2
    tracks = list(csv.DictReader(io.StringIO((tmp_path / "tracks.csv").read_text())))
    assert len(tracks) == 2 and {"age", "age_std", "votes_gender_female"} <= set(tracks[0])
    capture = cv2.VideoCapture(str(tmp_path / "annotated" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(clip.frames)  # every frame drawn
    capture.release()


def test_table_shows_the_tracks_beside_photos(clip_path, astronaut_path, tmp_path):
    """A folder with a photo and a video: the photo's face, then one line per track."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(astronaut_path.read_bytes())
    short = astronaut_clip(seconds=0.5, second_face=False)
    write_clip(folder / "short.avi", short.frames, short.fps, "MJPG")
    result = runner.invoke(app, ["predict", str(folder)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{folder / 'photo.jpg'} #0")
    assert lines[1].startswith(f"{folder / 'short.avi'} track 1, frames 0-14 (15 seen)")
    assert "1 face(s) in 1 image(s); 15 frame(s) of 1 video(s)" in result.stderr


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    short = astronaut_clip(seconds=1.0, second_face=False)
    good_mp4 = write_clip(folder / "good.mp4", short.frames, short.fps)
    good_avi = write_clip(folder / "good.avi", short.frames, short.fps, "MJPG")
    paths = {"empty": folder / "empty.mp4", "junk": folder / "junk.mkv",
             "cut_mp4": folder / "cut.mp4", "cut_avi": folder / "cut.avi",
             "no_frames": folder / "noframes.mp4"}
    paths["empty"].write_bytes(b"")
    paths["junk"].write_bytes(b"not a video " * 100)
    paths["cut_mp4"].write_bytes(good_mp4.read_bytes()[:good_mp4.stat().st_size // 2])
    paths["cut_avi"].write_bytes(good_avi.read_bytes()[:good_avi.stat().st_size // 2])
    writer = cv2.VideoWriter(str(paths["no_frames"]), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                             (640, 480))
    writer.release()
    return paths


def test_bad_videos_are_named_and_the_run_goes_on(bad_videos, astronaut_path):
    result = predict(*bad_videos.values(), astronaut_path, "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert any(record["file"] == str(astronaut_path) for record in records)
    # the truncated AVI still gives the frames before the cut, and a note says it is short
    cut = [record for record in records if record["file"] == str(bad_videos["cut_avi"])]
    assert 0 < len(cut) < 30
    stderr = " ".join(result.stderr.split())
    assert f"'{bad_videos['cut_avi']}' ended after {len(cut)} of the 30 frames" in stderr
    for name in ("empty", "junk", "cut_mp4", "no_frames"):
        assert f"Skipped unreadable file: '{bad_videos[name]}'" in stderr, name
    assert "Traceback" not in result.output


def test_only_bad_videos_exit_1(bad_videos):
    result = predict(bad_videos["empty"], bad_videos["junk"])
    assert result.exit_code == 1
    assert "None of the 2 input files could be read as an image or video" in result.stderr


def test_ctrl_c_keeps_the_frames_done(clip_path, tmp_path, monkeypatch):
    """Ctrl-C on frame 20: records, annotated video and track summary hold frames 0-19, the
    message says where it stopped, and the exit code is 130."""
    from maskmtl_cli.prediction.tracking import FaceTracker

    original = FaceTracker.update

    def interrupted(self, boxes, scores):
        if self._step == 20:
            raise KeyboardInterrupt
        return original(self, boxes, scores)

    monkeypatch.setattr(FaceTracker, "update", interrupted)
    result = predict(clip_path, "--json", "--annotate", tmp_path / "annotated", "--tracks",
                     tmp_path / "tracks.json")
    assert result.exit_code == 130
    frames = {record["frame"] for record in json.loads(result.stdout)}
    assert frames == set(range(20))
    stderr = " ".join(result.stderr.split())
    assert f"Stopped by Ctrl-C while reading frame 21 of 90 of '{clip_path}'" in stderr
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert [track["last_frame"] for track in tracks] == [19]
    capture = cv2.VideoCapture(str(tmp_path / "annotated" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    capture.release()


def test_missing_camera_is_one_line():
    result = predict("--camera", "57")
    assert result.exit_code == 1
    assert "Camera 57 cannot be opened" in result.stderr and "Traceback" not in result.output


def test_help_documents_the_video_options():
    result = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.stdout.split())
    for option in ("--every", "--camera", "--tracks", "--video-min-face"):
        assert option in text
    assert "1: every frame" in text


def _record(frame: int, track: int, age: float, p_female: float, white: float) -> FaceRecord:
    others = (1.0 - white) / 4
    return FaceRecord(file="clip.mp4", face=0, box=(0, 0, 10, 10), age=age,
                      p_female=p_female, gender_probability=max(p_female, 1 - p_female),
                      gender="female" if p_female >= 0.5 else "male",
                      ethnicity_probabilities={"White": white, "Black": others,
                                               "Asian": others, "Indian": others,
                                               "Others": others},
                      frame=frame, time_s=frame / 10, track=track)


def test_track_book_pools_means_spreads_and_votes():
    book = TrackBook()
    for frame, (age, p_female, white) in enumerate([(20, 0.9, 0.8), (30, 0.7, 0.6),
                                                    (40, 0.2, 0.1)]):
        book.add(_record(frame, 1, age, p_female, white))
    book.add(_record(5, 2, 50, 0.1, 0.9))
    first, second = book.summaries()
    assert (first.first_frame, first.last_frame, first.frames) == (0, 2, 3)
    assert first.last_time_s == pytest.approx(0.2)
    age = first.task("age")
    assert age.value == pytest.approx(30.0) and age.std == pytest.approx(np.std([20, 30, 40]))
    gender = first.task("gender")
    assert gender.label == "female" and gender.probability == pytest.approx(0.6)
    assert gender.votes == pytest.approx({"male": 1 / 3, "female": 2 / 3})
    ethnicity = first.task("ethnicity")
    assert ethnicity.label == "White" and ethnicity.probability == pytest.approx(0.5)
    assert ethnicity.votes["White"] == pytest.approx(2 / 3)
    assert (second.track, second.frames, second.task("age").std) == (2, 1, 0.0)
    assert book.label(_record(2, 1, 40, 0.2, 0.1)) == "T1 30y female 0.60 White 0.50"


def test_video_without_faces_with_strict_exits_3(tmp_path):
    blank = np.repeat(wall(640, 480)[None], 6, axis=0)
    path = write_clip(tmp_path / "wall.mp4", blank, 30.0)
    result = predict(path, "--strict")
    assert result.exit_code == 3
    stderr = " ".join(result.stderr.split())
    assert f"No face found in '{path}'" in stderr and "No face found in 1 of 1 inputs" in stderr
