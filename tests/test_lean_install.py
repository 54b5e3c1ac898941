"""The base install predicts without TensorFlow or Keras; what needs them names the train extra.

`pip install maskmtl` holds what mask, split, eval (ONNX engine), predict and serve's core need;
TensorFlow, Keras, tf2onnx, onnx and mtcnn are the `train` extra (maskmtl_cli/extras.py). The
fast tests check the import graph in this environment (where the extras are installed) and the
one-line messages with the extras hidden; the slow one installs the base package into a fresh
virtual environment and predicts on the sample photo there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.errors import MissingExtraError
from maskmtl_cli.extras import EXTRAS, install_hint, missing_packages, require_extra

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "maskmtl_cli" / "assets" / "samples" / "astronaut.jpg"
#: Modules of the train extra: none may be imported by predicting on ONNX Runtime.
TRAIN_MODULES = ("tensorflow", "keras", "tf2onnx", "onnx", "mtcnn")
runner = CliRunner()

#: In a fresh interpreter: `maskmtl predict` on the sample through the CLI, then
#: `predict_image` from Python; prints the modules of the train extra that got imported.
_PREDICT_PROBE = f"""
import sys
from typer.testing import CliRunner
from maskmtl_cli.cli import app
result = CliRunner().invoke(app, ["predict", {str(SAMPLE)!r}, "--json"])
assert result.exit_code == 0, result.output
assert '"age"' in result.stdout, result.stdout
import cv2
from maskmtl_cli.inference import load_model
from maskmtl_cli.prediction.predict import DEFAULT_MODEL, predict_image
image = cv2.cvtColor(cv2.imread({str(SAMPLE)!r}), cv2.COLOR_BGR2RGB)
assert len(predict_image(image, load_model(DEFAULT_MODEL))) == 1
print(",".join(sorted({{name.split(".")[0] for name in sys.modules}} & set({TRAIN_MODULES!r}))))
"""


def test_predicting_on_onnx_runtime_imports_neither_tensorflow_nor_keras():
    done = subprocess.run([sys.executable, "-c", _PREDICT_PROBE], capture_output=True,
                          text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


def _hide(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled: ``import`` fails and ``find_spec`` finds nothing."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def _one_line_naming_the_train_extra(result) -> str:
    """The one ``Error:`` line on stderr (progress lines aside): it says what to install."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'maskmtl[train]'" in errors[0]
    return errors[0]


def test_train_without_the_extra_names_it_and_exits_2(monkeypatch, tmp_path):
    _hide(monkeypatch, *TRAIN_MODULES)
    result = runner.invoke(app, ["train", str(tmp_path / "manifest.csv")])
    line = _one_line_naming_the_train_extra(result)
    assert line.startswith("Error: `maskmtl train` needs tensorflow, keras")


@pytest.mark.parametrize("option", [["--engine", "keras"], ["--cam", "CAMS"],
                                    ["--detector", "mtcnn"]])
def test_predict_options_that_need_tensorflow_name_the_extra(monkeypatch, tmp_path, option):
    from maskmtl_cli.faces.detection import get_detector

    get_detector.cache_clear()  # a detector built by an earlier test would be reused
    _hide(monkeypatch, *TRAIN_MODULES)
    option = [str(tmp_path / value) if value == "CAMS" else value for value in option]
    result = runner.invoke(app, ["predict", str(SAMPLE), *option])
    line = _one_line_naming_the_train_extra(result)
    assert ("mtcnn" if "mtcnn" in option else "--engine keras, --cam") in line
    assert not (tmp_path / "CAMS").exists() or not any((tmp_path / "CAMS").iterdir())


def test_train_unmask_without_the_extra_names_it(monkeypatch, tmp_path):
    _hide(monkeypatch, *TRAIN_MODULES)
    result = runner.invoke(app, ["train-unmask", str(tmp_path / "manifest.csv")])
    line = _one_line_naming_the_train_extra(result)
    assert line.startswith("Error: `maskmtl train-unmask` needs tensorflow, keras")


#: In a fresh interpreter: `maskmtl unmask` on the sample (the shipped model, ONNX Runtime).
_UNMASK_PROBE = f"""
import sys
from typer.testing import CliRunner
from maskmtl_cli.cli import app
result = CliRunner().invoke(app, ["unmask", {str(SAMPLE)!r}, sys.argv[1], "--json"])
assert result.exit_code == 0, result.output
print(",".join(sorted({{name.split(".")[0] for name in sys.modules}} & set({TRAIN_MODULES!r}))))
"""


@pytest.mark.skipif(not (REPO / "maskmtl_cli/assets/models/unmask_default.onnx").is_file(),
                    reason="no shipped unmasking model")
def test_unmask_runs_on_onnx_runtime_alone(tmp_path):
    done = subprocess.run([sys.executable, "-c", _UNMASK_PROBE, str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


def test_eval_with_the_keras_engine_names_the_extra(monkeypatch, tmp_path):
    _hide(monkeypatch, *TRAIN_MODULES)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,filename,age,gender,race,sha1,split\n{SAMPLE},a.jpg,46,1,0,"
                        f"{'0' * 40},test\n")
    keras_model = REPO / "maskmtl_cli" / "assets" / "models" / "maskmtl_default.keras"
    result = runner.invoke(app, ["eval", str(keras_model), "-m", str(manifest), "--engine",
                                 "keras", "--out", str(tmp_path / "eval")])
    _one_line_naming_the_train_extra(result)


def test_require_extra_lists_only_what_is_missing(monkeypatch):
    _hide(monkeypatch, "mtcnn")
    assert missing_packages("train", ("keras", "mtcnn")) == ["mtcnn"]
    require_extra("train", "keras alone", ("keras",))  # installed here: no error
    with pytest.raises(MissingExtraError, match=r"--detector mtcnn needs mtcnn, which is not "
                                                r"installed\. Install the train extra"):
        require_extra("train", "--detector mtcnn", ("keras", "mtcnn"))


def test_extras_match_pyproject():
    """Every distribution extras.py names is in that extra of pyproject.toml, and back."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        names = {requirement.split(">")[0].split("<")[0].split("=")[0].strip()
                 for requirement in declared[extra]}
        assert names == set(packages), extra
        assert f"maskmtl[{extra}]" in install_hint(extra)
    base = " ".join(project["dependencies"]).lower()
    assert not [name for name in EXTRAS["train"] if f'{name}>' in base or f"{name}=" in base]
    assert set(declared["all"][0].split("[")[1].rstrip("]").split(",")) == set(EXTRAS)


def test_help_lists_every_command_without_the_extras(monkeypatch):
    _hide(monkeypatch, *TRAIN_MODULES, "fastapi", "uvicorn", "ray")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("mask", "split", "train", "eval", "predict", "serve", "unmask",
                    "train-unmask"):
        assert f" {command} " in result.stdout


@pytest.mark.slow
def test_the_base_install_predicts_without_tensorflow(tmp_path):
    """A fresh venv, `pip install .` (the README's first command), then predict and train.

    About a minute with pip's cache warm (docs/install.md has the measured sizes and times).
    """
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_PROGRESS_BAR": "off"}
    env.pop("PYTHONPATH", None)
    build = subprocess.run([str(python), "-m", "pip", "install", "-v", str(REPO)],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    # setuptools' PEP 639 warning (a licence table) and any other deprecation of the build
    assert "deprecat" not in (build.stdout + build.stderr).lower()
    for module in ("tensorflow", "keras"):
        missing = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                                 text=True, env=env, cwd=tmp_path)
        assert missing.returncode == 1 and "ModuleNotFoundError" in missing.stderr
    maskmtl = str(env_dir / "bin" / "maskmtl")
    predicted = subprocess.run([maskmtl, "predict", str(SAMPLE), "--json"], capture_output=True,
                               text=True, env=env, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert '"gender": "female"' in predicted.stdout
    probe = subprocess.run([str(python), "-c", _PREDICT_PROBE], capture_output=True, text=True,
                           env=env, cwd=tmp_path)
    assert probe.returncode == 0 and probe.stdout.strip() == "", probe.stderr[-2000:]
    train = subprocess.run([maskmtl, "train"], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
    assert train.returncode == 2
    assert "pip install 'maskmtl[train]'" in train.stderr
    assert len(train.stderr.strip().splitlines()) == 1
