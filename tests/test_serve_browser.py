"""The `maskmtl serve` page in a real browser: headless Chromium driven by Selenium.

The test serves the app with uvicorn on 127.0.0.1 (a free port), loads the page, uploads the
astronaut through the file input as a person would, and waits for the result table. It skips,
saying why, where Chromium, its driver or Selenium are missing (CI installs them with apt-get:
``apt-get install chromium chromium-driver``). Set ``MASKMTL_SERVE_SCREENSHOT=docs/serve_page.png``
to save the screenshot the docs show.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'maskmtl[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install selenium)")

from maskmtl_cli.serve import ServeConfig  # noqa: E402

#: Where Debian's chromium and chromium-driver packages put the browser and its driver.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def find_program(names: tuple[str, ...], variable: str) -> str | None:
    """A program from ``$variable`` or the first of ``names`` on PATH."""
    return os.environ.get(variable) or next(filter(None, map(shutil.which, names)), None)


@contextlib.contextmanager
def serving(config: ServeConfig):
    """The app for ``config`` served by uvicorn in a thread on 127.0.0.1; yields its URL."""
    import uvicorn

    from maskmtl_cli.serve.app import create_app
    from maskmtl_cli.serve.server import bind_socket, url_of
    from maskmtl_cli.serve.service import PredictionService

    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(PredictionService(config)),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    yield url_of(sock)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def live_server():
    """The shipped model's server."""
    with serving(ServeConfig()) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, or a skip that says what to install."""
    chromium = find_program(BROWSERS, "MASKMTL_CHROMIUM")
    driver = find_program(DRIVERS, "MASKMTL_CHROMEDRIVER")
    if not chromium or not driver:
        pytest.skip("no Chromium and chromedriver found (Debian/Ubuntu: apt-get install "
                    "chromium chromium-driver; or set MASKMTL_CHROMIUM and "
                    "MASKMTL_CHROMEDRIVER)")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,1150",
                     "--proxy-server=direct://", "--proxy-bypass-list=*"):
        options.add_argument(argument)
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as error:
        pytest.skip(f"Chromium at {chromium} with {driver} would not start: "
                    f"{str(error).splitlines()[0]}")
    session.set_page_load_timeout(60)
    yield session
    session.quit()


def test_page_uploads_the_astronaut_and_shows_one_face(browser, live_server, astronaut_path,
                                                       tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live_server}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#faces option"))
    assert "engine" in browser.find_element(By.ID, "server").text
    browser.find_element(By.ID, "file").send_keys(str(astronaut_path.resolve()))
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "face(s) in"))

    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr.face")
    assert len(rows) == 1
    cells = [cell.text for cell in rows[0].find_elements(By.TAG_NAME, "td")]
    faces = json.loads(browser.find_element(By.ID, "json").text)
    assert len(faces) == 1 and cells[0] == "#0" and cells[1] == ",".join(map(str, faces[0]["box"]))
    assert cells[3] == faces[0]["gender"] and cells[5] == faces[0]["ethnicity"]
    label = browser.find_element(By.CSS_SELECTOR, "#overlay text").text
    assert label.startswith("#0 ") and faces[0]["ethnicity"] in label
    box = browser.find_element(By.CSS_SELECTOR, "#overlay rect.box")
    assert [int(float(box.get_attribute(key))) for key in ("x", "y", "width", "height")] == \
        faces[0]["box"]
    assert not browser.find_element(By.ID, "error").is_displayed()

    screenshot = tmp_path / "serve_page.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("MASKMTL_SERVE_SCREENSHOT"):
        shutil.copy(screenshot, Path(os.environ["MASKMTL_SERVE_SCREENSHOT"]))


def test_page_shows_the_servers_error_for_a_file_that_is_not_a_photo(browser, live_server,
                                                                     tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    browser.get(f"{live_server}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#faces option"))
    browser.find_element(By.ID, "file").send_keys(str(notes))
    wait.until(ready.visibility_of_element_located((By.ID, "error")))
    assert "is not an image" in browser.find_element(By.ID, "error").text


#: Tasks of a model of one's own (docs/tasks.md) besides UTKFace's: a classification task and a
#: regression task, whose answers the page must show as it shows UTKFace's.
OWN_TASKS = (("expression", "classification", ("happy", "neutral", "sad")),
             ("score", "regression", ()))


@pytest.fixture(scope="module")
def own_tasks_server(tmp_path_factory):
    """A server of a tiny untrained network with UTKFace's tasks and ``OWN_TASKS``."""
    pytest.importorskip("keras", reason="building the model needs the train extra")
    from maskmtl_cli.models import build_network
    from maskmtl_cli.models.export import export_onnx
    from maskmtl_cli.tasks import UTKFACE_TASKS, TaskSpec

    specs = (*UTKFACE_TASKS, *(TaskSpec(name, kind, classes) for name, kind, classes in OWN_TASKS))
    network = build_network(arch="hierarchical", tasks=specs, preset="tiny", image_size=32,
                            color_mode="gray")
    path = tmp_path_factory.mktemp("own-tasks") / "model.onnx"
    export_onnx(network, path, specs=specs)
    with serving(ServeConfig(model=path)) as url:
        yield url


def test_page_shows_every_task_of_a_model_with_tasks_of_its_own(browser, own_tasks_server,
                                                                astronaut_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{own_tasks_server}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#faces option"))
    assert "expression, score" in browser.find_element(By.ID, "server").text
    browser.find_element(By.ID, "file").send_keys(str(astronaut_path.resolve()))
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "face(s) in"))

    face = json.loads(browser.find_element(By.ID, "json").text)[0]
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#results thead th")]
    cells = dict(zip(headers, (td.text for td in browser.find_elements(
        By.CSS_SELECTOR, "#results tbody tr.face td"))))
    for name in ("Age", "Gender", "Ethnicity", "Expression", "P(expression)", "happy", "neutral",
                 "sad", "Score"):
        assert name in headers, (name, headers)
    assert cells["Expression"] == face["expression"]
    assert cells["P(expression)"] == f"{face['expression_probability']:.2f}"
    assert cells["sad"] == f"{face['expression_probabilities']['sad']:.2f}"
    assert float(cells["Score"]) == pytest.approx(face["score"], rel=1e-2)
    assert headers.index("Ethnicity") < headers.index("Expression") < headers.index("Score")
    label = browser.find_element(By.CSS_SELECTOR, "#overlay text").text
    assert f"{face['expression']} {face['expression_probability']:.2f}" in label
    assert label.startswith("#0 ") and face["ethnicity"] in label and face["gender"] in label
