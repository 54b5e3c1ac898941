"""Speed of `maskmtl predict` on a 640x480 video: frames per second end to end, and per stage.

The clip is ``tools/render_clip.py``'s astronaut clip (public domain; 1 face, then 2) with a
third, smaller face throughout (``--faces 3``), written as MPEG-4 to a temporary folder. The
model (the bundled one unless ``--model``) is loaded once; each configuration then runs
``run_predict`` on the clip ``--repeats`` times (the first run warms up RetinaFace and the
model and is not counted) and the median frames per second is printed, counting every frame of
the clip, with its best run in brackets.

Configurations: the video default (``--video-min-face 40``, every frame), the same with
``--annotate``, photos' ``--min-face`` 20 (RetinaFace searches the frame at 2.4 times its
size), and ``--every 3``. Then one frame at a time, the stages: decoding, detection at both
scales, alignment and model inputs, tracking, the model's forward pass (per face, batched), and
drawing plus encoding one annotated frame.

    python benchmarks/bench_video.py --seconds 10 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _clip(seconds: float, faces: int):
    from tools.render_clip import astronaut_clip, head_image, paste_head

    clip = astronaut_clip(seconds=seconds, second_face=faces >= 2)
    if faces >= 3:
        small = head_image(True)
        for frame, truth in zip(clip.frames, clip.truth):
            truth[2] = paste_head(frame, small, 0.45, 20, 350)
    return clip


def _runs(path: Path, model, frames: int, repeats: int) -> None:
    from maskmtl_cli.prediction.predict import PredictConfig, run_predict

    configurations = {
        "video default (--video-min-face 40)": {},
        "  + --annotate": {"annotate_dir": "annotate"},
        "--video-min-face 20 (photos' --min-face)": {"video_min_face": 20},
        "--every 3": {"every": 3},
    }
    print(f"{'configuration':<44}{'frames/s (best)':>18}{'faces':>7}{'tracks':>7}")
    for name, options in configurations.items():
        rates = []
        for repeat in range(repeats + 1):
            with tempfile.TemporaryDirectory() as scratch:
                if "annotate_dir" in options:
                    options = {**options, "annotate_dir": Path(scratch) / "annotate"}
                config = PredictConfig(inputs=(path,), **options)
                start = time.perf_counter()
                result = run_predict(config, model=model)
                seconds = time.perf_counter() - start
            if repeat:
                rates.append(frames / seconds)
        print(f"{name:<44}{statistics.median(rates):>9.1f} ({max(rates):.1f}){'':>2}"
              f"{len(result.records):>7}{len(result.tracks):>7}")


def _stages(clip, model) -> None:
    import cv2

    from maskmtl_cli.faces.alignment import align_face, to_model_input
    from maskmtl_cli.faces.detection import get_detector
    from maskmtl_cli.inference import input_spec, predict_arrays
    from maskmtl_cli.prediction.render import annotate
    from maskmtl_cli.prediction.tracking import FaceTracker

    detector = get_detector("retinaface")
    size, color_mode = input_spec(model)
    frames = clip.frames
    timings: dict[str, float] = {}

    def timed(name, function):
        start = time.perf_counter()
        value = [function(frame) for frame in frames]
        timings[name] = 1000 * (time.perf_counter() - start) / len(frames)
        return value

    encoded = [cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1]
               for frame in frames]
    start = time.perf_counter()
    for data in encoded:
        cv2.imdecode(data, cv2.IMREAD_COLOR)
    timings["decode one frame (JPEG stand-in for MPEG-4)"] = \
        1000 * (time.perf_counter() - start) / len(frames)
    found = timed("detect, --video-min-face 40", lambda frame: detector.detect(frame, 40))
    timed("detect, --min-face 20", lambda frame: detector.detect(frame, 20))
    inputs = []
    start = time.perf_counter()
    for frame, faces in zip(frames, found):
        inputs += [to_model_input(align_face(frame, face), size, color_mode) for face in faces]
    timings["align and resize the faces of a frame"] = \
        1000 * (time.perf_counter() - start) / len(frames)
    tracker = FaceTracker(clip.fps)
    start = time.perf_counter()
    for faces in found:
        tracker.update([face.box for face in faces], [face.score for face in faces])
    timings["track (norfair)"] = 1000 * (time.perf_counter() - start) / len(frames)
    batch = np.stack(inputs)
    start = time.perf_counter()
    for first in range(0, len(batch), 32):
        predict_arrays(model, batch[first:first + 32], batch_size=32)
    timings["model, the faces of a frame (batches of 32)"] = \
        1000 * (time.perf_counter() - start) / len(frames)
    writer = cv2.VideoWriter(str(Path(tempfile.mkdtemp()) / "a.mp4"),
                             cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (640, 480))
    start = time.perf_counter()
    for frame in frames:
        writer.write(cv2.cvtColor(annotate(frame, []), cv2.COLOR_RGB2BGR))
    writer.release()
    timings["draw and encode an annotated frame"] = \
        1000 * (time.perf_counter() - start) / len(frames)
    print(f"\n{'stage, per frame':<50}{'ms':>8}   ({len(inputs) / len(frames):.2f} faces/frame)")
    for name, value in timings.items():
        print(f"{name:<50}{value:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (30 fps)")
    parser.add_argument("--faces", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    args = parser.parse_args()

    from maskmtl_cli.inference import load_model
    from maskmtl_cli.prediction.predict import DEFAULT_MODEL
    from tools.render_clip import write_clip

    clip = _clip(args.seconds, args.faces)
    model = load_model(args.model or DEFAULT_MODEL, "onnx")
    with tempfile.TemporaryDirectory() as folder:
        path = write_clip(Path(folder) / "clip.mp4", clip.frames, clip.fps)
        print(f"clip: {len(clip.frames)} frames of 640x480 at {clip.fps:g} fps, "
              f"{sum(len(t) for t in clip.truth) / len(clip.truth):.2f} faces per frame")
        _runs(path, model, len(clip.frames), args.repeats)
    _stages(clip, model)


if __name__ == "__main__":
    main()
