"""`maskmtl serve` through its HTTP app (FastAPI's TestClient) and its command.

Every endpoint, every kind of bad input the issue lists (non-image, truncated and zero-byte
files, oversized uploads, decompression bombs, photos without a face) and the promise that
``POST /predict`` answers exactly what ``maskmtl predict --json`` prints. The model is the
pretrained one shipped in the package, on the default engine; test images are made here.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'maskmtl[serve]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

with warnings.catch_warnings():  # Starlette asks for httpx2 in place of httpx; both work
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from maskmtl_cli import __version__  # noqa: E402
from maskmtl_cli.cli import app as cli_app  # noqa: E402
from maskmtl_cli.inference import ENGINES  # noqa: E402
from maskmtl_cli.prediction.predict import PredictConfig, default_model_path  # noqa: E402
from maskmtl_cli.serve import ServeConfig  # noqa: E402
from maskmtl_cli.serve.app import create_app  # noqa: E402
from maskmtl_cli.serve.config import is_loopback  # noqa: E402
from maskmtl_cli.serve.service import PredictionService, clean_filename  # noqa: E402

runner = CliRunner()


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **options) -> bytes:
    """An image file's bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def upload(data: bytes, name: str = "photo.jpg", **fields) -> dict:
    """Keyword arguments of ``client.post`` for a multipart upload."""
    return {"files": {"image": (name, data, "application/octet-stream")},
            "data": {key: str(value).lower() for key, value in fields.items()}}


def error_of(response, status: int, code: str) -> str:
    """The detail of an error response, after checking its status, code and JSON shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    assert "Traceback" not in response.text
    return body["detail"]


@pytest.fixture(scope="module")
def service() -> PredictionService:
    return PredictionService(ServeConfig())


@pytest.fixture(scope="module")
def client(service) -> TestClient:
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def astronaut(astronaut_path) -> bytes:
    return astronaut_path.read_bytes()


@pytest.fixture(scope="module")
def photo_640x480(astronaut_path) -> bytes:
    """The astronaut on a 640x480 canvas, as a JPEG (the benchmark's photo)."""
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(Image.open(astronaut_path).convert("RGB").resize((480, 480)), (80, 0))
    return encode(canvas, "JPEG", quality=90)


# --- the endpoints -------------------------------------------------------------------------

def test_health_names_model_detector_engine_and_version(client):
    response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    defaults = PredictConfig(inputs=())
    assert health["status"] == "ok" and health["version"] == __version__
    assert health["model"] == str(default_model_path())
    assert health["detector"] == defaults.detector and health["engine"] == defaults.engine
    assert health["tasks"] == ["age", "gender", "race"]
    assert health["max_upload_bytes"] == 20_000_000
    assert health["min_face"] == ServeConfig().min_face == 40  # uploads: see ServeConfig


def test_min_face_is_the_servers_smallest_face(astronaut):
    """The astronaut's face is about 100 px wide: found by default, not with --min-face 300."""
    from maskmtl_cli.serve.service import PredictOptions

    strict = PredictionService(ServeConfig(min_face=300))
    assert strict.health()["min_face"] == 300
    assert json.loads(strict.predict(astronaut, PredictOptions(flip=False, faces="all"))) == []


def test_predict_answers_exactly_what_predict_json_prints(client, astronaut_path, astronaut,
                                                          tmp_path, monkeypatch):
    shutil.copy(astronaut_path, tmp_path / "astronaut.jpg")
    monkeypatch.chdir(tmp_path)
    for options in ({}, {"flip": True, "faces": "largest"}):
        flags = [f"--{key}" if value is True else f"--{key}={value}"
                 for key, value in options.items()]
        printed = runner.invoke(cli_app, ["predict", "astronaut.jpg", "--json", "--min-face",
                                          str(ServeConfig().min_face), *flags])
        assert printed.exit_code == 0, printed.output
        response = client.post("/predict", **upload(astronaut, "astronaut.jpg", **options))
        assert response.status_code == 200 and response.headers["content-type"] == (
            "application/json")
        assert response.text == printed.stdout.rstrip("\n")
    faces = response.json()
    assert len(faces) == 1 and faces[0]["file"] == "astronaut.jpg"


def test_json_with_base64_gives_the_same_answer_as_multipart(client, astronaut):
    multipart = client.post("/predict", **upload(astronaut, "a.jpg")).json()
    encoded = base64.b64encode(astronaut).decode()
    plain = client.post("/predict", json={"image": encoded, "filename": "a.jpg"}).json()
    data_url = client.post("/predict", json={"image": f"data:image/jpeg;base64,{encoded}",
                                             "filename": "a.jpg"}).json()
    assert multipart == plain == data_url and len(plain) == 1
    unnamed = client.post("/predict", json={"image": encoded}).json()
    assert unnamed[0]["file"] == "upload"


def test_flip_and_faces_options(client, astronaut):
    plain = client.post("/predict", **upload(astronaut)).json()[0]
    flipped = client.post("/predict", json={"image": base64.b64encode(astronaut).decode(),
                                            "flip": True, "filename": "photo.jpg"}).json()[0]
    assert flipped["box"] == plain["box"] and flipped["age"] != plain["age"]
    two = np.concatenate([np.asarray(Image.open(io.BytesIO(astronaut)).convert("RGB"))] * 2,
                         axis=1)
    both = client.post("/predict", **upload(encode(two, "JPEG"), faces="all")).json()
    largest = client.post("/predict", **upload(encode(two, "JPEG"), faces="largest")).json()
    assert len(both) == 2 and both[0]["box"][0] < both[1]["box"][0] and len(largest) == 1


def test_photo_without_a_face_is_200_and_an_empty_list(client):
    wall = encode(np.full((240, 320, 3), 90, np.uint8))
    response = client.post("/predict", **upload(wall, "wall.png"))
    assert response.status_code == 200 and response.json() == []


def test_page_docs_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="results"' in page.text and 'type="file"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/page.js", "/static/page.css"):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "/health" in spec["paths"] and "FaceRecord" in spec["components"]["schemas"]


def test_model_and_detector_load_once_at_start_up(astronaut, monkeypatch):
    import maskmtl_cli.inference as inference
    from maskmtl_cli.faces.detection import get_detector

    loads = []
    real_load = inference.load_model
    monkeypatch.setattr(inference, "load_model",
                        lambda *args, **kwargs: loads.append(args) or real_load(*args, **kwargs))
    service = PredictionService(ServeConfig())
    built = get_detector.cache_info().misses
    with TestClient(create_app(service)) as client:
        for _ in range(3):
            assert len(client.post("/predict", **upload(astronaut)).json()) == 1
    assert len(loads) == 1 and get_detector.cache_info().misses == built


def test_unknown_detector_or_engine_fails_at_start_up():
    from maskmtl_cli.errors import InputError

    for options in ({"detector": "nope"}, {"engine": "nope"}):
        with pytest.raises(InputError, match="'nope'. Choose one of"):
            PredictionService(ServeConfig(**options))
    with pytest.raises(InputError, match="--max-upload-mb must be positive"):
        PredictionService(ServeConfig(max_upload_mb=0))


# --- bad input -------------------------------------------------------------------------------

def test_zero_byte_file(client):
    detail = error_of(client.post("/predict", **upload(b"")), 400, "empty_upload")
    assert "0 bytes" in detail


def test_file_that_is_not_an_image(client):
    detail = error_of(client.post("/predict", **upload(b"just some text\n", "notes.jpg")),
                      422, "unreadable_image")
    assert "'notes.jpg' is not an image" in detail and "JPEG" in detail


def test_truncated_image(client, astronaut):
    detail = error_of(client.post("/predict", **upload(astronaut[: len(astronaut) // 3])),
                      422, "unreadable_image")
    assert "truncated" in detail and "complete photo" in detail


def test_format_the_server_does_not_decode(client):
    gif = encode(np.zeros((32, 32, 3), np.uint8), "GIF")
    error_of(client.post("/predict", **upload(gif, "a.gif")), 422, "unreadable_image")


def test_oversized_upload_by_content_length_and_by_stream(astronaut):
    small = PredictionService(ServeConfig(max_upload_mb=0.05))
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        detail = error_of(client.post("/predict", **upload(astronaut)), 413, "upload_too_large")
        assert "0.05 MB" in detail and "--max-upload-mb" in detail
        large = astronaut * 3  # over the body limit (photo limit x 4/3 for base64 + 64 kB)
        chunks = (large[i:i + 8192] for i in range(0, len(large), 8192))
        streamed = client.post("/predict", content=chunks,
                               headers={"content-type": "application/json"})
        error_of(streamed, 413, "upload_too_large")
        base64_body = {"image": base64.b64encode(astronaut[:45_000]).decode()}
        assert len(json.dumps(base64_body)) > 50_000  # over the photo limit, within the body's
        error_of(client.post("/predict", json=base64_body), 422, "unreadable_image")
        fits = client.post("/predict", **upload(encode(np.zeros((64, 64, 3), np.uint8))))
        assert fits.status_code == 200 and fits.json() == []


def test_default_upload_limit_is_20_mb(client):
    detail = error_of(client.post("/predict", **upload(b"\0" * 20_500_000)), 413,
                      "upload_too_large")
    assert "20.5 MB" in detail and "up to 20 MB" in detail


def test_decompression_bombs(client):
    # A real one: 27 megapixels of zeros in a ~30 kB PNG, over the default 25.
    bomb = encode(Image.new("L", (6000, 4500)))
    assert len(bomb) < 100_000
    detail = error_of(client.post("/predict", **upload(bomb, "bomb.png")), 413,
                      "image_too_large")
    assert "6000x4500" in detail and "--max-megapixels" in detail
    # A header claiming ten gigapixels (over Pillow's own limit too).
    detail = error_of(client.post("/predict", **upload(png_header_only(100_000, 100_000))),
                      413, "image_too_large")
    assert "too large" in detail


@pytest.mark.parametrize("request_kwargs, status, code", [
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_body"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
     "bad_json"),
    ({"json": {"image": "not base64!"}}, 400, "bad_base64"),
    ({"json": {"picture": "aGk="}}, 422, "missing_image"),
    ({"json": ["aGk="]}, 422, "missing_image"),
    ({"files": {"photo": ("a.jpg", b"x", "image/jpeg")}}, 422, "missing_image"),
    ({"data": {"image": "photo.jpg"}, "files": {"other": ("a", b"x", "text/plain")}}, 422,
     "missing_image"),
    ({"json": {"image": "aGk=", "face": "largest"}}, 422, "unknown_field"),
    ({"json": {"image": "aGk=", "faces": "biggest"}}, 422, "bad_option"),
    ({"json": {"image": "aGk=", "flip": "maybe"}}, 422, "bad_option"),
])
def test_malformed_requests(client, request_kwargs, status, code):
    error_of(client.post("/predict", **request_kwargs), status, code)


def test_unknown_paths_and_methods(client):
    assert "POST /predict" in error_of(client.get("/nowhere"), 404, "not_found")
    assert "POST" in error_of(client.get("/predict"), 405, "method_not_allowed")


def test_a_bug_is_a_json_500_and_the_server_keeps_serving(service, client, astronaut,
                                                          monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    with monkeypatch.context() as patch:
        patch.setattr(service, "predict", broken)
        detail = error_of(client.post("/predict", **upload(astronaut)), 500, "internal_error")
        assert "simulated" not in detail
    assert client.get("/health").status_code == 200
    assert len(client.post("/predict", **upload(astronaut)).json()) == 1


def test_bad_inputs_leave_the_server_serving(client, astronaut):
    for data in (b"", b"garbage", astronaut[:2000], png_header_only(99_999, 99_999)):
        assert 400 <= client.post("/predict", **upload(data)).status_code < 500
    assert len(client.post("/predict", **upload(astronaut)).json()) == 1


def test_client_file_names_are_reduced_to_a_plain_name():
    assert clean_filename("C:\\fakepath\\me.jpg") == "me.jpg"
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("a\x00b\nc.png") == "abc.png"
    assert clean_filename("") == clean_filename("/") == "upload"


# --- concurrency -----------------------------------------------------------------------------

def varied_photos(astronaut: bytes) -> list[bytes]:
    """Eight different photos of the astronaut (crops, mirror, scale, a faceless one)."""
    image = Image.open(io.BytesIO(astronaut)).convert("RGB")
    return [encode(variant, "JPEG", quality=92) for variant in (
        image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image.crop((60, 0, 512, 400)),
        image.resize((384, 384)), image.resize((640, 640)), image.crop((0, 0, 300, 300)),
        image.rotate(8), Image.new("RGB", (200, 150), (40, 90, 140)))]


@pytest.mark.parametrize("engine", ENGINES)
def test_concurrent_predictions_match_one_at_a_time(engine, astronaut, tmp_path_factory):
    """Each engine, shared by 8 threads: the same JSON as when photos go one by one."""
    if engine == "keras":
        pytest.importorskip("tensorflow")
    service = PredictionService(ServeConfig(engine=engine))
    photos = varied_photos(astronaut) * 3
    options = service.parse_options({"filename": "p.jpg"})
    serial = [service.predict(photo, options) for photo in photos]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda photo: service.predict(photo, options), photos))
    assert concurrent == serial
    assert sum(len(json.loads(text)) > 0 for text in serial) >= 18


def test_concurrent_http_requests(client, astronaut):
    photos = varied_photos(astronaut)
    expected = [client.post("/predict", **upload(photo)).text for photo in photos]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda photo: client.post("/predict", **upload(photo)),
                                photos * 2))
    assert [answer.status_code for answer in answers] == [200] * 16
    assert [answer.text for answer in answers] == expected * 2


# --- the command -----------------------------------------------------------------------------

def test_loopback_hosts():
    assert all(map(is_loopback, ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.5", "example.org")))


def test_without_the_extra_the_command_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = runner.invoke(cli_app, ["serve"])
    assert result.exit_code == 2
    assert "pip install 'maskmtl[serve]'" in result.stderr


def test_unknown_detector_or_engine_is_a_usage_error():
    for option in ("--detector", "--engine"):
        result = runner.invoke(cli_app, ["serve", option, "nope"])
        assert result.exit_code == 2 and "'nope' is not one of" in result.output


def test_public_host_warns_that_there_is_no_authentication(monkeypatch):
    started = []
    monkeypatch.setattr("maskmtl_cli.serve.server.run_server",
                        lambda config, announce: started.append(config))
    result = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert result.exit_code == 0, result.output
    assert "no authentication" in result.stderr and started[0].host == "0.0.0.0"
    quiet = runner.invoke(cli_app, ["serve"])
    assert quiet.exit_code == 0 and "authentication" not in quiet.stderr
    assert started[1] == ServeConfig()


def test_port_in_use_fails_before_loading_the_model():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(cli_app, ["serve", "--port", str(port), "--model", "missing"])
    assert result.exit_code == 1 and f"Cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serve_command_runs_a_real_server_until_ctrl_c(astronaut):
    process = subprocess.Popen([sys.executable, "-m", "maskmtl_cli", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, seen = None, []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            found = re.search(r"Open (http://127\.0\.0\.1:\d+)/", line)
            url = found and found.group(1)
        assert url, "".join(seen)
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            assert json.load(response)["status"] == "ok"
        boundary = "maskmtlboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + astronaut \
            + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            f"{url}/predict", data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert len(json.load(response)) == 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr
    assert "Stopped." in stderr and "Traceback" not in stderr
