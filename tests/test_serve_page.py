"""The serve page's rendering functions (static/page.js) run in Node on predict's JSON.

The page must show every task a model answers, UTKFace's and any of its own (a classification
``expression``, a ``mask`` task added to a model later, a regression ``score``), without
knowing their names. The browser test (tests/test_serve_browser.py) checks the page end to end
where Chromium is installed; this one needs only Node and skips without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources

import pytest

from maskmtl_cli.prediction.records import FaceRecord, TaskPrediction
from maskmtl_cli.prediction.render import face_label

NODE = shutil.which("node") or shutil.which("nodejs")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

RECORD = FaceRecord(
    file="photo.jpg", face=0, box=(10, 20, 30, 40), detector_score=0.99, age=34.4,
    gender="female", gender_probability=0.91, p_female=0.91, ethnicity="White",
    ethnicity_probability=0.78,
    ethnicity_probabilities={"White": 0.78, "Black": 0.1, "Asian": 0.05, "Indian": 0.04,
                             "Others": 0.03},
    detector="retinaface",
    tasks=(TaskPrediction("expression", "classification", label="happy", probability=0.66,
                          probabilities={"happy": 0.66, "neutral": 0.3, "sad": 0.04}),
           TaskPrediction("mask", "classification", label="masked", probability=0.97,
                          probabilities={"bare": 0.03, "masked": 0.97}),
           TaskPrediction("score", "regression", value=3.14159)),
)


def run_page(faces: list[dict]) -> dict:
    """taskNames, faceLabel and the table's headers and cells of ``faces`` from page.js."""
    page = (resources.files("maskmtl_cli.serve") / "static" / "page.js").read_text()
    script = (
        "globalThis.document = { addEventListener() {} };\n" + page + "\n"
        f"const faces = {json.dumps(faces)};\n"
        "const tasks = taskNames(faces);\n"
        "const columns = tableColumns(faces, tasks);\n"
        "console.log(JSON.stringify({ tasks, labels: faces.map((face) => faceLabel(face, tasks)),"
        " headers: columns.map((column) => column[0]),"
        " cells: faces.map((face) => columns.map((column) => column[2](face))) }));\n"
    )
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_task_is_found_in_the_answer_in_the_models_order():
    shown = run_page([RECORD.to_dict()])
    assert shown["tasks"] == ["age", "gender", "ethnicity", "expression", "mask", "score"]


def test_the_label_is_the_one_predict_annotate_draws():
    shown = run_page([RECORD.to_dict()])
    assert shown["labels"] == [face_label(RECORD)]
    assert shown["labels"][0] == "#0 34y female 0.91 White 0.78 happy 0.66 masked 0.97 3.14"


def test_the_table_has_a_column_per_answer_probability_and_class():
    shown = run_page([RECORD.to_dict()])
    assert shown["headers"] == [
        "Box x,y,w,h", "Age", "Gender", "P(gender)", "Ethnicity", "P(ethnicity)", "White",
        "Black", "Asian", "Indian", "Others", "Expression", "P(expression)", "happy", "neutral",
        "sad", "Mask", "P(mask)", "bare", "masked", "Score", "Detector score"]
    assert shown["cells"][0] == [
        "10,20,30,40", "34.4", "female", "0.91", "White", "0.78", "0.78", "0.10", "0.05", "0.04",
        "0.03", "happy", "0.66", "0.66", "0.30", "0.04", "masked", "0.97", "0.03", "0.97",
        "3.14", "0.990"]


def test_tasks_a_model_lacks_get_no_column():
    """A model of its own tasks only: no age, gender or ethnicity columns (all null)."""
    face = FaceRecord(file="a.jpg", face=0, box=(0, 0, 5, 5), detector_score=0.5,
                      tasks=RECORD.tasks[2:]).to_dict()
    shown = run_page([face, {**face, "face": 1}])
    assert shown["tasks"] == ["score"]
    assert shown["headers"] == ["Box x,y,w,h", "Score", "Detector score"]
    assert shown["labels"] == ["#0 3.14", "#1 3.14"]
