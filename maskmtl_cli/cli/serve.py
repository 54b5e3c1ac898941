"""`maskmtl serve`: predictions over HTTP, with a web page to try them in a browser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from maskmtl_cli.cli.app import app, guarded
from maskmtl_cli.serve.config import ServeConfig, is_loopback

_D = ServeConfig()  # defaults, for the help text only
_LIMITS = "Limits"


@app.command("serve")
@guarded
def serve_command(
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m",
        help="Run folder from `maskmtl train` (uses its best.onnx) or a .onnx or .keras file. "
             "Default: the pretrained model shipped with maskmtl.", show_default=False)] = None,
    detector: Annotated[Optional[str], typer.Option(
        help="Face detector, one of those `maskmtl predict --detector` takes. "
             "\\[default: predict's]", show_default=False)] = None,
    engine: Annotated[Optional[str], typer.Option(
        help="Inference engine, one of those `maskmtl predict --engine` takes. "
             "\\[default: predict's]", show_default=False)] = None,
    host: Annotated[Optional[str], typer.Option(
        help="Address to listen on. Anything but a loopback address (127.0.0.1, ::1) opens "
             f"the API, which has no authentication, to the network. \\[default: {_D.host}]",
        show_default=False)] = None,
    port: Annotated[Optional[int], typer.Option(
        min=0, max=65535, help=f"TCP port (0: any free port). \\[default: {_D.port}]",
        show_default=False)] = None,
    max_upload_mb: Annotated[Optional[float], typer.Option(
        min=0.001, rich_help_panel=_LIMITS,
        help=f"Largest photo accepted, in MB; larger uploads get 413. "
             f"\\[default: {_D.max_upload_mb:g}]", show_default=False)] = None,
    max_megapixels: Annotated[Optional[float], typer.Option(
        min=0.001, rich_help_panel=_LIMITS,
        help="Largest photo accepted, in millions of pixels, read from the file's header "
             f"before decoding (stops decompression bombs). \\[default: {_D.max_megapixels:g}]",
        show_default=False)] = None,
    min_face: Annotated[Optional[int], typer.Option(
        min=1, help="Smallest face to find, in pixels; larger values cost less CPU per photo "
                    f"(as `maskmtl predict --min-face`). \\[default: {_D.min_face}]",
        show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, rich_help_panel=_LIMITS,
        help="Photos predicted at the same time. \\[default: CPU cores, at most 4]",
        show_default=False)] = None,
) -> None:
    """Serve predictions over HTTP, with a web page to try them in a browser.

    POST /predict takes a photo (multipart field 'image', or JSON with base64) and answers
    the JSON `maskmtl predict --json` prints; GET /health names the model; GET /docs
    documents the API; GET / is a page to drop photos on. The model loads once at start-up.
    Listens on 127.0.0.1 only unless --host says otherwise; the API has no authentication.
    Needs the serve extra: pip install 'maskmtl\\[serve]'.

    Example: maskmtl serve --model runs/train --port 8000
    """
    from rich.markup import escape

    from maskmtl_cli.console import err_console
    from maskmtl_cli.extras import require_extra

    require_extra("serve", "`maskmtl serve`")
    options = {"model": model, "detector": detector, "engine": engine, "host": host,
               "port": port, "max_upload_mb": max_upload_mb, "max_megapixels": max_megapixels,
               "min_face": min_face, "workers": workers}
    config = ServeConfig(**{key: value for key, value in options.items() if value is not None})
    _check_choices(config)
    if not is_loopback(config.host):
        err_console.print(f"[bold yellow]Warning:[/] listening on {escape(config.host)}: "
                          f"anyone who can reach this machine on port {config.port} can use "
                          "the API, which has no authentication. Use the default --host "
                          "127.0.0.1, or put a reverse proxy with authentication in front.",
                          highlight=False, soft_wrap=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from maskmtl_cli.serve.server import run_server

    run_server(config, announce=lambda line: err_console.print(line, markup=False,
                                                                highlight=False, soft_wrap=True))
    err_console.print("Stopped.")


def _check_choices(config: ServeConfig) -> None:
    """Usage error (exit 2) for a detector or engine `maskmtl predict` does not know."""
    from maskmtl_cli.faces.detection import DETECTORS
    from maskmtl_cli.inference import ENGINES

    for option, value, choices in (("--detector", config.detector, DETECTORS),
                                   ("--engine", config.engine, ENGINES)):
        if value is not None and value not in choices:
            raise typer.BadParameter(f"'{value}' is not one of: {', '.join(choices)}.",
                                     param_hint=option)
