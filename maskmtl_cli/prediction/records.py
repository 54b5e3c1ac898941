"""What `maskmtl predict` finds per face: ``FaceRecord``, built from the model's outputs.

UTKFace's tasks keep their own fields (``age``; ``gender`` with ``gender_probability`` and
``p_female``; ``ethnicity`` with ``ethnicity_probability`` and ``ethnicity_probabilities``), so
every consumer of ``predict --json`` reads them as it always did. Any other task of the model is
listed by its name in ``tasks`` and, in the JSON, as fields of its own: ``<task>`` (the class
name, or the value of a regression task), ``<task>_probability`` and ``<task>_probabilities``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskmtl_cli.data.labels import GENDER_NAMES, RACE_NAMES
from maskmtl_cli.faces.detection import Face
from maskmtl_cli.tasks import CLASSIFICATION, UTKFACE_TASK_NAMES, default_spec


@dataclass(frozen=True)
class TaskPrediction:
    """The prediction of one task beyond UTKFace's three for one face.

    Attributes:
        name: The task.
        kind: "classification" or "regression".
        value: A regression task's prediction (in its label's units).
        label: A classification task's most likely class.
        probability: Its probability.
        probabilities: Every class's probability, in the task's class order.
    """

    name: str
    kind: str
    value: float | None = None
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None

    def fields(self) -> dict:
        """The JSON fields of this task (rounded like the UTKFace fields)."""
        if self.kind != CLASSIFICATION:
            return {self.name: None if self.value is None else round(float(self.value), 4)}
        return {self.name: self.label,
                f"{self.name}_probability": round(float(self.probability), 4),
                f"{self.name}_probabilities": {name: round(float(value), 4)
                                               for name, value in self.probabilities.items()}}


@dataclass(frozen=True)
class FaceRecord:
    """Predictions for one face. Task fields are None when the model lacks that task.

    Attributes:
        file: The photo, as found from the inputs given.
        face: Index of the face in its photo (faces sorted left to right).
        box: ``(x, y, width, height)`` in pixels of the EXIF-rotated photo.
        detector_score: Detector confidence; None for ``--aligned`` crops.
        age: Predicted age in years.
        gender: ``"male"`` or ``"female"``; ``gender_probability`` is its probability and
            ``p_female`` the model's raw probability of female.
        ethnicity: The most likely of UTKFace's five classes (its "race" label), with its
            probability and all five in ``ethnicity_probabilities``.
        detector: The detector that found the face (``"aligned"`` for ``--aligned`` crops).
        tasks: Predictions of the model's other tasks, in its task order.
        frame: For a face in a video, the frame's index (from 0); None in photos.
        time_s: The frame's time in the video, in seconds.
        track: The face's track: the same number for the same person throughout a video.
    """

    file: str
    face: int
    box: tuple[int, int, int, int]
    detector_score: float | None = None
    age: float | None = None
    gender: str | None = None
    gender_probability: float | None = None
    p_female: float | None = None
    ethnicity: str | None = None
    ethnicity_probability: float | None = None
    ethnicity_probabilities: dict[str, float] | None = None
    detector: str = "aligned"
    tasks: tuple[TaskPrediction, ...] = ()
    frame: int | None = None
    time_s: float | None = None
    track: int | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict (box as [x, y, w, h]; probabilities rounded to 4 decimals); faces
        in videos also get ``frame``, ``time_s`` and ``track``."""
        def rounded(value, digits=4):
            return None if value is None else round(float(value), digits)

        video = {} if self.frame is None else {"frame": self.frame,
                                               "time_s": rounded(self.time_s, 3),
                                               "track": self.track}
        return {
            "file": self.file,
            **video,
            "face": self.face,
            "box": list(self.box),
            "detector": self.detector,
            "detector_score": rounded(self.detector_score),
            "age": rounded(self.age, 2),
            "gender": self.gender,
            "gender_probability": rounded(self.gender_probability),
            "p_female": rounded(self.p_female),
            "ethnicity": self.ethnicity,
            "ethnicity_probability": rounded(self.ethnicity_probability),
            "ethnicity_probabilities": None if self.ethnicity_probabilities is None else {
                name: rounded(value) for name, value in self.ethnicity_probabilities.items()},
            **{key: value for task in self.tasks for key, value in task.fields().items()},
        }


def make_records(file: str, faces: list[Face], outputs: dict[str, np.ndarray],
                 offset: int = 0, detector: str = "aligned", specs=None) -> list[FaceRecord]:
    """Turn model outputs (rows ``offset`` onwards) into one record per face.

    Args:
        file: The photo's name for the records.
        faces: Its faces, in output order.
        outputs: ``predict_arrays``'s outputs for a batch that holds these faces.
        offset: Row of the first face in ``outputs``.
        detector: The detector that found them.
        specs: The model's task specs (class names of other tasks); None: UTKFace's for the
            UTKFace outputs, and ``class k`` names for others.
    """
    from maskmtl_cli.model_schema import specs_from_outputs

    if specs is None:
        specs = specs_from_outputs(list(outputs), {name: np.asarray(values).shape[-1]
                                                   if np.asarray(values).ndim > 1 else 1
                                                   for name, values in outputs.items()})
    others = [spec for spec in specs if not _is_utkface(spec)]
    records = []
    for index, face in enumerate(faces):
        row = offset + index
        values: dict = {}
        if "age" in outputs:
            values["age"] = float(outputs["age"][row])
        if "gender" in outputs and not any(spec.name == "gender" for spec in others):
            p_female = float(outputs["gender"][row])
            female = p_female >= 0.5
            values.update(gender=GENDER_NAMES[int(female)], p_female=p_female,
                          gender_probability=p_female if female else 1.0 - p_female)
        if "race" in outputs and not any(spec.name == "race" for spec in others):
            probabilities = [float(v) for v in outputs["race"][row]]
            best = int(np.argmax(probabilities))
            values.update(ethnicity=RACE_NAMES[best], ethnicity_probability=probabilities[best],
                          ethnicity_probabilities=dict(zip(RACE_NAMES, probabilities)))
        tasks = tuple(_task_prediction(spec, outputs[spec.name][row]) for spec in others
                      if spec.name in outputs and spec.name != "age")
        records.append(FaceRecord(file=file, face=index, box=tuple(int(v) for v in face.box),
                                  detector=detector, detector_score=face.score, tasks=tasks,
                                  **values))
    return records


def _is_utkface(spec) -> bool:
    """One of UTKFace's tasks with its own classes (its attach point and weight may differ)."""
    builtin = default_spec(spec.name) if spec.name in UTKFACE_TASK_NAMES else None
    return builtin is not None and (spec.kind, spec.classes) == (builtin.kind, builtin.classes)


def _task_prediction(spec, output) -> TaskPrediction:
    """One face's prediction of a task beyond UTKFace's three."""
    if spec.kind != CLASSIFICATION:
        return TaskPrediction(spec.name, spec.kind, value=float(np.asarray(output).reshape(-1)[0]))
    probabilities = [float(v) for v in np.asarray(output).reshape(-1)]
    best = int(np.argmax(probabilities))
    return TaskPrediction(spec.name, spec.kind, label=spec.classes[best],
                          probability=probabilities[best],
                          probabilities=dict(zip(spec.classes, probabilities)))
