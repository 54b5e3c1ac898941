"""The HTTP side of `maskmtl serve`: FastAPI routes, upload limits and JSON errors.

``create_app(service)`` wires a loaded ``PredictionService`` to:

- ``POST /predict``: a multipart upload (field ``image``) or JSON ``{"image": "<base64>"}``,
  with optional ``flip`` and ``faces``; answers the JSON `maskmtl predict --json` prints;
- ``GET /health``: model, detector, engine, version and limits;
- ``GET /``: the page in ``static/``; ``GET /docs`` and ``/openapi.json``: the API's schema.

Every error is a JSON object ``{"error": code, "detail": message}`` with a 4xx status (a 500
only for a bug, without a traceback), and the server keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from importlib import resources

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from maskmtl_cli import __version__
from maskmtl_cli.prediction.predict import FACE_MODES, FaceRecord
from maskmtl_cli.serve.service import PHOTO_FORMATS, PredictionService, RequestError

logger = logging.getLogger("maskmtl.serve")
#: Bytes a request may carry on top of the photo: multipart headers and fields, and the
#: inflation of base64 (4 bytes per 3) in JSON bodies.
_BODY_SLACK = 64_000
#: Security headers of the page and its assets: nothing is loaded from elsewhere.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_ENDPOINTS = "The API has POST /predict, GET /health and GET /docs; the web page is GET /."
_HOW_TO_SEND = ("Send multipart/form-data with the photo in a field named 'image' (curl -F "
                "image=@photo.jpg), or application/json {\"image\": \"<base64>\"}.")


class ErrorBody(BaseModel):
    """Body of every error response."""

    error: str
    detail: str


class Health(BaseModel):
    """Body of ``GET /health``."""

    status: str
    version: str
    model: str
    tasks: list[str]
    detector: str
    engine: str
    faces: list[str]
    defaults: dict[str, object]
    max_upload_bytes: int
    max_pixels: int
    min_face: int
    workers: int


def _predict_body(service: PredictionService) -> dict:
    """OpenAPI description of the two bodies ``POST /predict`` accepts."""
    flip, faces = service.predict_defaults["flip"], service.predict_defaults["faces"]
    options = {
        "flip": {"type": "boolean", "default": flip,
                 "description": "Also predict on the mirrored face and average."},
        "faces": {"type": "string", "enum": list(FACE_MODES), "default": faces,
                  "description": "Every face (left to right), or the largest."},
    }
    return {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": f"The photo ({', '.join(PHOTO_FORMATS)})."},
            **options}}},
        "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "byte",
                      "description": "The photo in base64 (a data: URL is fine too)."},
            "filename": {"type": "string", "description": "Reported as each face's file "
                         "(default: 'upload'; multipart uploads send their own)."},
            **options}}},
    }}


def create_app(service: PredictionService) -> FastAPI:
    """The FastAPI app serving one loaded model.

    Args:
        service: The model and detector, loaded once (see ``PredictionService``).

    Returns:
        An ASGI app; run it with uvicorn (``server.run_server``) or test it with
        ``fastapi.testclient.TestClient``.
    """
    app = FastAPI(
        title="maskmtl",
        version=__version__,
        description="Age, gender and ethnicity of every face in a photo, masked or not. "
                    "POST /predict answers exactly what `maskmtl predict --json` prints.",
    )
    app.state.service = service
    limiter = anyio.CapacityLimiter(service.config.workers)
    body_limit = service.config.max_upload_bytes * 4 // 3 + _BODY_SLACK
    page = (resources.files(__package__) / "static" / "index.html").read_text(encoding="utf-8")
    _add_error_handlers(app)
    app.add_middleware(_BodyLimit, limit=body_limit, service=service)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/health", response_model=Health, summary="Model, detector, engine and version")
    def health() -> dict:
        return service.health()

    @app.post(
        "/predict",
        summary="Age, gender and ethnicity of every face in one photo",
        description="Answers a JSON list with one object per face, left to right, exactly as "
                    "`maskmtl predict --json` prints it (an empty list when there is no "
                    "face). " + _HOW_TO_SEND,
        openapi_extra={"requestBody": _predict_body(service)},
        responses={
            200: {"model": list[FaceRecord], "description": "One object per face."},
            **{status: {"model": ErrorBody, "description": meaning} for status, meaning in (
                (400, "Empty upload, bad base64, malformed body"),
                (413, "Upload or image over the server's limits"),
                (415, "Body neither multipart/form-data nor JSON"),
                (422, "Not a decodable photo, or a bad option value"))},
        },
    )
    async def predict(request: Request) -> Response:
        data, fields = await _read_upload(request)
        options = service.parse_options(fields)
        text = await anyio.to_thread.run_sync(service.predict, data, options, limiter=limiter)
        return Response(text, media_type="application/json")

    app.mount("/static", StaticFiles(packages=[(__package__, "static")]), name="static")
    return app


async def _read_upload(request: Request) -> tuple[bytes, dict]:
    """The photo's bytes and the option fields of a multipart or JSON request."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request)
    if content_type == "application/json":
        return await _read_json(request)
    raise RequestError(415, "unsupported_body", f"Unsupported Content-Type "
                       f"'{content_type or 'none'}'. {_HOW_TO_SEND}")


async def _read_multipart(request: Request) -> tuple[bytes, dict]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException

    try:
        form = await request.form(max_files=1, max_fields=10)
    except MultiPartException as error:
        raise RequestError(400, "bad_form", f"Cannot parse the form: {error}. "
                           f"{_HOW_TO_SEND}") from None
    try:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            hint = ("'image' is a text field, not a file: add @ before the path (curl -F "
                    "image=@photo.jpg)." if upload is not None else "No field named 'image'.")
            raise RequestError(422, "missing_image", f"{hint} {_HOW_TO_SEND}")
        data = await upload.read()
        fields = {key: value for key, value in form.items() if key != "image"}
    finally:
        await form.close()
    if upload.filename:
        fields.setdefault("filename", upload.filename)
    _reject_unknown(fields)
    return data, fields


async def _read_json(request: Request) -> tuple[bytes, dict]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(400, "bad_json", f"The body is not valid JSON ({error}). "
                           f"{_HOW_TO_SEND}") from None
    if not isinstance(body, dict) or not isinstance(body.get("image"), str):
        raise RequestError(422, "missing_image", f"The JSON body needs a string field 'image' "
                           f"with the photo in base64. {_HOW_TO_SEND}")
    encoded = body.pop("image")
    if encoded.startswith("data:") and "," in encoded:  # data:image/jpeg;base64,....
        encoded = encoded.split(",", 1)[1]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(400, "bad_base64", f"'image' is not valid base64 ({error}). Encode "
                           "the photo's bytes with standard base64 (e.g. base64 -w0 "
                           "photo.jpg).") from None
    _reject_unknown(body)
    return data, body


def _reject_unknown(fields: dict) -> None:
    unknown = sorted(set(fields) - {"flip", "faces", "filename"})
    if unknown:
        raise RequestError(422, "unknown_field", f"Unknown field(s): {', '.join(unknown)}. "
                           "Send 'image' plus optional 'flip' (true/false) and 'faces' "
                           "(all/largest).")


def _error(status: int, code: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure becomes ``{"error", "detail"}`` JSON; none shows a traceback."""

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return _error(error.status, error.code, str(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        headers = getattr(error, "headers", None)
        code, detail = "http_error", str(error.detail)
        if error.status_code == 404:
            code, detail = "not_found", (f"No such page: {request.url.path}. {_ENDPOINTS}")
        elif error.status_code == 405:
            allowed = (headers or {}).get("allow", (headers or {}).get("Allow", ""))
            code, detail = "method_not_allowed", (f"{request.method} is not allowed on "
                                                  f"{request.url.path} (allowed: {allowed}). "
                                                  f"{_ENDPOINTS}")
        return _error(error.status_code, code, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, "bad_request", f"Invalid request: {error.errors()}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "The server failed on this request (a bug; the "
                      "server log has the details) and keeps serving. Please report it.")


class _BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with 413, without reading
    them: from the Content-Length header when there is one, else while they stream in."""

    def __init__(self, app, limit: int, service: PredictionService) -> None:
        self.app = app
        self.limit = limit
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            error = self.service.upload_too_large(int(declared))
            response = _error(error.status, error.code, str(error), {"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self.service.upload_too_large(received, complete=False)
            return message

        await self.app(scope, counting_receive, send)
