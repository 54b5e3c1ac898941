"""Command-line interface: one thin command per module, all registered on one Typer app.

Each command builds its config, calls one core function and renders the result. Heavy libraries
(TensorFlow, Keras, dlib, OpenCV, FastAPI) are imported inside the command bodies so that
``maskmtl --help`` stays instant.
"""

from maskmtl_cli.cli.app import app
from maskmtl_cli.cli import mask, split, train, evaluate, predict, serve, unmask  # noqa: F401,E501  (registers commands)

__all__ = ["app"]
