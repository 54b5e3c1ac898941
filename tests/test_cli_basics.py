"""The CLI as a whole: help, version, docs coverage, fast start-up, the CI/README contract."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maskmtl_cli import __version__
from maskmtl_cli.cli import app

COMMANDS = ("mask", "split", "train", "eval", "predict", "serve", "unmask", "train-unmask")
REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"maskmtl {__version__}"


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout, f"`maskmtl {command} --help` should end with an example"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented_in_readme(command):
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"maskmtl {command}\b", readme), f"README.md never shows `maskmtl {command}`"


def test_help_imports_no_heavy_library():
    probe = ("import sys; from typer.testing import CliRunner; from maskmtl_cli.cli import app; "
             "CliRunner().invoke(app, ['--help']); "
             "heavy = ('tensorflow', 'keras', 'cv2', 'dlib', 'mtcnn', 'pandas', 'matplotlib', 'jax', 'torch', "
             "'numpy', 'fastapi', 'uvicorn', 'starlette'); "
             "print(','.join(m for m in heavy if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "maskmtl_cli", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == f"maskmtl {__version__}"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    command = [line for line in ci.splitlines() if line.startswith("python3 -m venv")]
    assert len(command) == 1 and command[0] in readme


def test_shipped_assets_are_installed():
    from importlib.resources import files

    assets = files("maskmtl_cli.assets")
    assert (assets / "samples" / "astronaut.jpg").is_file()
