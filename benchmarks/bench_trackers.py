"""Face trackers compared on synthetic clips: ByteTrack (Roboflow's ``trackers``: supervision
0.31 no longer has ``sv.ByteTrack``) against norfair and its maintained fork
norfair-enough (IoU distance).

RetinaFace runs once per frame of each clip (``--min-face``, the video default); every tracker
then gets the same boxes, so the comparison is about association only. Scored against the
clip's true boxes (``tools/render_clip.py``), a detection belongs to the person whose true box
it overlaps by IoU >= 0.3:

- ids: distinct track ids handed out (the truth: the number of people);
- fragments: per person, distinct ids beyond the first, summed;
- switches: per person, frames whose id differs from the person's previous id, summed;
- no id: detections of a person left without an id;
- ms/update: mean wall time of one tracker update.

Scenarios: ``enter`` (tests/test_predict_video.py's clip: the astronaut moving and zooming, a
second face sliding in half way), ``every3`` / ``every6`` (the same, every third or sixth
frame), ``dropouts`` (the first person undetected for 12 frames in a row, plus 10% of
detections dropped at random), ``jitter`` (4 px of noise on every box edge), ``cross`` (two
faces crossing, one over the other).

Settings shared by all: 1 s of memory, matches down to IoU 0.1 (``--norfair-distance 0.9``;
ByteTrack's ``minimum_iou_threshold``), an id from a face's first detection where the tracker
allows it.

Each tracker is imported from its own folder, so that installing one does not disturb the
other (norfair-enough and norfair both install the module ``norfair``)::

    pip install --no-deps --target /tmp/trk/sv trackers supervision pydeprecate defusedxml tqdm
    pip install --no-deps --target /tmp/trk/nfe norfair-enough
    pip install --no-deps --target /tmp/trk/nf norfair filterpy
    python benchmarks/bench_trackers.py --site bytetrack=/tmp/trk/sv \\
        --site norfair-enough=/tmp/trk/nfe --site norfair=/tmp/trk/nf
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _scenarios(min_face: int) -> dict[str, tuple[list, list, float]]:
    """name -> (detections per frame as (N, 5) arrays [x0 y0 x1 y1 score], truth, updates/s)."""
    from maskmtl_cli.faces.detection import get_detector
    from tools.render_clip import astronaut_clip, crossing_clip

    detector = get_detector("retinaface")

    def detect(clip):
        return [np.array([[x, y, x + w, y + h, face.score]
                          for face in detector.detect(frame, min_face)
                          for x, y, w, h in [face.box]]).reshape(-1, 5)
                for frame in clip.frames]

    rng = np.random.default_rng(0)
    enter, cross = astronaut_clip(), crossing_clip()
    enter_boxes, cross_boxes = detect(enter), detect(cross)
    dropped = []
    for index, (boxes, truth) in enumerate(zip(enter_boxes, enter.truth)):
        keep = rng.random(len(boxes)) >= 0.1
        if 20 <= index < 32 and 0 in truth:
            keep &= np.array([_owner(box, truth) != 0 for box in boxes], bool)
        dropped.append(boxes[keep])
    jitter = [boxes + np.c_[rng.normal(0, 4, (len(boxes), 4)), np.zeros(len(boxes))]
              for boxes in enter_boxes]
    return {"enter": (enter_boxes, enter.truth, enter.fps),
            "every3": (enter_boxes[::3], enter.truth[::3], enter.fps / 3),
            "every6": (enter_boxes[::6], enter.truth[::6], enter.fps / 6),
            "dropouts": (dropped, enter.truth, enter.fps),
            "jitter": (jitter, enter.truth, enter.fps),
            "cross": (cross_boxes, cross.truth, cross.fps)}


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _owner(box, truth: dict) -> int | None:
    best = max(truth, key=lambda person: _iou(box, _corners(truth[person])), default=None)
    if best is None or _iou(box, _corners(truth[best])) < 0.3:
        return None
    return best


def _corners(box):
    x, y, w, h = box
    return (x, y, x + w, y + h)


def _bytetrack(rate: float):
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(lost_track_buffer=int(rate), frame_rate=rate,
                               track_activation_threshold=0.6, minimum_consecutive_frames=1)

    def update(boxes):
        detections = sv.Detections(xyxy=boxes[:, :4].astype(float), confidence=boxes[:, 4],
                                   data={"index": np.arange(len(boxes))})
        tracked = tracker.update(detections)
        ids = [None] * len(boxes)
        if len(tracked) == 0:  # an empty result carries no data
            return ids
        for index, track in zip(tracked.data["index"], tracked.tracker_id):
            ids[int(index)] = None if track < 0 else int(track)
        return ids

    return update


def _norfair(rate: float, distance: float = 0.9):
    from norfair import Detection, Tracker

    tracker = Tracker(distance_function="iou", distance_threshold=distance,
                      hit_counter_max=max(1, int(rate)), initialization_delay=0)
    counter = [0]

    def update(boxes):
        counter[0] += 1
        detections = [Detection(points=box[:4].reshape(2, 2), scores=np.full(2, box[4]),
                                data=(counter[0], index)) for index, box in enumerate(boxes)]
        ids = [None] * len(boxes)
        for tracked in tracker.update(detections=detections):
            step, index = tracked.last_detection.data
            if step == counter[0]:
                ids[index] = tracked.id
        return ids

    return update


def score(kind: str, scenarios: dict, distance: float = 0.9) -> dict:
    """Run one tracker over every scenario; the counts described in the module docstring."""
    results = {}
    for name, (frames, truth, rate) in scenarios.items():
        update = _bytetrack(rate) if kind == "bytetrack" else _norfair(rate, distance)
        seconds, last, seen, switches, no_id = 0.0, {}, {}, 0, 0
        ids_given = set()
        for boxes, people in zip(frames, truth):
            start = time.perf_counter()
            ids = update(np.asarray(boxes, float).reshape(-1, 5))
            seconds += time.perf_counter() - start
            ids_given.update(track for track in ids if track is not None)
            for box, track in zip(boxes, ids):
                person = _owner(box, people)
                if person is None:
                    continue
                if track is None:
                    no_id += 1
                    continue
                seen.setdefault(person, set()).add(track)
                switches += person in last and last[person] != track
                last[person] = track
        results[name] = {"people": len({p for people in truth for p in people}),
                         "ids": len(ids_given),
                         "fragments": sum(len(tracks) - 1 for tracks in seen.values()),
                         "switches": switches, "no id": no_id,
                         "ms/update": round(1000 * seconds / max(len(frames), 1), 3)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", action="append", default=[],
                        help="NAME=FOLDER: import tracker NAME (bytetrack, norfair, "
                             "norfair-enough) from FOLDER")
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--norfair-distance", type=float, default=0.9,
                        help="norfair's IoU distance threshold (1 - smallest IoU to match)")
    parser.add_argument("--cached", action="store_true",
                        help="reuse the detections of the previous run")
    parser.add_argument("--scenarios", help="(internal) a JSON file of cached detections")
    parser.add_argument("--kind", help="(internal) the tracker to score in this process")
    args = parser.parse_args()
    if args.kind:  # a child process: one tracker, its own sys.path
        data = json.loads(Path(args.scenarios).read_text())
        scenarios = {name: ([np.asarray(b).reshape(-1, 5) for b in frames],
                            [{int(k): v for k, v in people.items()} for people in truth], rate)
                     for name, (frames, truth, rate) in data.items()}
        print(json.dumps(score(args.kind, scenarios, args.norfair_distance)))
        return
    cache = Path("/tmp/bench_trackers_scenarios.json")
    if not args.cached:
        scenarios = _scenarios(args.min_face)
        cache.write_text(json.dumps({name: ([b.tolist() for b in frames], truth, rate)
                                     for name, (frames, truth, rate) in scenarios.items()}))
    print(f"{'tracker':<16}{'scenario':<10}{'people':>7}{'ids':>5}{'fragments':>10}"
          f"{'switches':>9}{'no id':>7}{'ms/update':>10}")
    for site in args.site:
        name, folder = site.split("=", 1)
        kind = "bytetrack" if name == "bytetrack" else "norfair"
        done = subprocess.run([sys.executable, __file__, "--scenarios", str(cache), "--kind",
                               kind, "--norfair-distance", str(args.norfair_distance)],
                              capture_output=True, text=True,
                              env={"PYTHONPATH": f"{folder}:{ROOT}", "PATH": "/usr/bin:/bin"})
        if done.returncode:
            print(f"{name:<16}failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        for scenario, row in json.loads(done.stdout.splitlines()[-1]).items():
            print(f"{name:<16}{scenario:<10}{row['people']:>7}{row['ids']:>5}"
                  f"{row['fragments']:>10}{row['switches']:>9}{row['no id']:>7}"
                  f"{row['ms/update']:>10}")


if __name__ == "__main__":
    main()
