"""`maskmtl serve`: the prediction core behind an HTTP API and a one-page web app.

- ``config.py``: ``ServeConfig``, the command's options (light: no numpy, no FastAPI);
- ``service.py``: ``PredictionService``, the model and detector loaded once, turning uploaded
  bytes into the JSON that ``maskmtl predict --json`` prints (no FastAPI either);
- ``app.py``: ``create_app(service)``, the FastAPI routes, upload limits and JSON errors;
- ``server.py``: ``run_server(config)``, which binds the socket and runs uvicorn;
- ``static/``: the page served at ``/`` (plain HTML, CSS and JavaScript, no build step).

FastAPI, uvicorn and python-multipart come with the optional extra ``maskmtl[serve]``.
"""

from maskmtl_cli.serve.config import ServeConfig

__all__ = ["ServeConfig"]
