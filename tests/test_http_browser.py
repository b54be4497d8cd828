"""The status page in a real browser: Debian's chromium driven by Selenium through Debian's chromium-driver, against
a running `edged run` with a real broker. The live image must change, the stats must update, pause must stop the
results and resume restart them, a page on another origin must not be able to pause it, and the page must run
without a JavaScript error (the browser's console is read at the end; any SEVERE entry fails the test).

Skipped when chromium or chromium-driver is missing, a failure with EDGED_REQUIRE_BROWSER=1 (CI installs both).
EDGED_SCREENSHOT_DIR=docs/images writes the screenshots used in docs/http.md.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import wait_until
from support.broker import Mosquitto, broker_for_tests, free_port
from support.web import TOKEN, Client, config_text, http_table

INSTALL_HINT = "install them with: sudo apt-get install chromium chromium-driver"


def browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = f"chromium and chromium-driver are needed for the browser test; {INSTALL_HINT}"
        if os.environ.get("EDGED_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (EDGED_REQUIRE_BROWSER=1 makes this a failure)")
        pytest.skip(message)
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver_path = browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def edged_page(tmp_path: Path, broker: Mosquitto) -> Iterator[Client]:
    port = free_port()
    publisher = f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\n'
    path = tmp_path / "edged.toml"
    path.write_text(config_text(http_table(port, token_file=tmp_path / "token"), publisher=publisher))
    log_path = tmp_path / "edged.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "edged", "run", "--config", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)  # fmt: skip
    client = Client(port)
    try:
        assert wait_until(lambda: responds(client) and client.get("/api/stats").json()["totals"]["inferred"] > 2), (
            log_path.read_text()
        )
        yield client
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def responds(client: Client) -> bool:
    try:
        return client.get("/healthz").status in (200, 503)
    except OSError:
        return False


def wait_for(driver: Any, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _: condition())


def severe_console_entries(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def top_seq(driver: Any) -> int | None:
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, "#results li")
    if not items:
        return None
    first = items[0].text
    return int(first.split()[0].lstrip("#")) if first.startswith("#") else None


def save(driver: Any, element: Any, tmp_path: Path, name: str) -> bytes:
    png: bytes = element.screenshot_as_png if element is not None else driver.get_screenshot_as_png()
    (tmp_path / name).write_bytes(png)
    target = os.environ.get("EDGED_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / name).write_bytes(png)
    return png


@pytest.mark.slow
def test_the_page_shows_live_results_and_controls_the_daemon(browser: Any, edged_page: Client, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    client = edged_page
    base = f"http://127.0.0.1:{client.port}"
    browser.get(base + "/")
    find = browser.find_element
    wait_for(browser, lambda: find(By.ID, "model").text.startswith("shapes_yolov8_int8"))
    wait_for(browser, lambda: find(By.ID, "broker").text.startswith("mqtt: connected"))
    assert find(By.ID, "pause").get_attribute("disabled") is not None  # locked until the token is given
    find(By.ID, "token").send_keys(TOKEN)
    find(By.CSS_SELECTOR, "#login button").click()
    wait_for(browser, lambda: find(By.ID, "pause").is_enabled())
    assert not find(By.ID, "login").is_displayed()

    # the live image changes
    live = find(By.ID, "live")
    wait_for(browser, lambda: browser.execute_script("return arguments[0].naturalWidth", live) == 320)
    first = live.screenshot_as_png
    wait_for(browser, lambda: live.screenshot_as_png != first)
    # the stats update
    totals = find(By.ID, "totals").text
    wait_for(browser, lambda: find(By.ID, "totals").text not in (totals, "…"))
    wait_for(browser, lambda: top_seq(browser) is not None)
    save(browser, None, tmp_path, "status-page.png")

    # pause stops the results
    find(By.ID, "pause").click()
    wait_for(browser, lambda: find(By.ID, "paused-badge").is_displayed())
    wait_for(browser, lambda: find(By.ID, "resume").is_enabled())
    assert client.get("/api/state").json()["paused"] is True
    inferred = client.get("/api/stats").json()["totals"]["inferred"]
    last = inferred - 1  # the seq of the last result before the pause: the page catches up with it, no further
    wait_for(browser, lambda: top_seq(browser) == last)
    uptime = client.get("/api/state").json()["uptime_s"]
    wait_for(browser, lambda: client.get("/api/state").json()["uptime_s"] >= uptime + 1.5)  # the daemon's clock
    assert client.get("/api/stats").json()["totals"]["inferred"] == inferred
    assert top_seq(browser) == last, "results kept arriving after pause"
    shown = last
    save(browser, None, tmp_path, "status-page-paused.png")

    # resume restarts them
    find(By.ID, "resume").click()
    wait_for(browser, lambda: not find(By.ID, "paused-badge").is_displayed())
    wait_for(browser, lambda: (top_seq(browser) or -1) > (shown or -1))
    assert client.get("/api/stats").json()["totals"]["inferred"] > inferred
    assert "resumed" in find(By.ID, "events").text and "paused" in find(By.ID, "events").text

    errors = severe_console_entries(browser)
    assert not errors, f"JavaScript errors on the page: {errors}"


class AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on another origin that tries to pause edged with the visitor's session cookie."""

    target = ""

    def do_GET(self) -> None:
        body = f"""<!doctype html><title>evil</title>
<form id="form" method="POST" action="{self.target}/api/command/pause" enctype="text/plain">
<input name='{{"x":"' value='"}}'></form>
<script>
fetch("{self.target}/api/command/pause", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "application/json"}}, body: "{{}}"}})
  .catch(() => null).finally(() => {{ document.title = "fetched"; document.getElementById("form").submit(); }});
</script>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_a_page_on_another_origin_cannot_pause_it(browser: Any, edged_page: Client) -> None:
    client = edged_page
    base = f"http://127.0.0.1:{client.port}"
    browser.get(base + "/")
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(browser, lambda: browser.find_element(By.ID, "pause").is_enabled())  # the browser holds a session

    AttackerPage.target = base
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AttackerPage)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
        wait_for(browser, lambda: browser.current_url.startswith(base + "/api/command/pause"))  # the form landed
        assert "cross-site request refused" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        attacker.shutdown()
        attacker.server_close()
    assert client.get("/api/state").json()["paused"] is False
