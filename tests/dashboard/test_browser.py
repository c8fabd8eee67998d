"""The dashboard in a real headless Chromium against the running service:
PostgreSQL, the emulator, a real worker and beat, and `batchline dashboard`,
all subprocesses. Each page renders its figures, live updates arrive without
a reload, actions work through the confirmation page and are refused without
a login or without the CSRF token, and each page's screenshot is not blank."""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import select

from batchline.adapters.sql import controls as controls_sql
from batchline.database import make_engine, make_session_factory
from batchline.emulator import EmulatorServer
from batchline.local import free_port
from batchline.models import Batch, Request
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.processes import BIN, ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
USER, PASSWORD = "ops", "browser-pass"
PARAMS = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hello"}],
}
# Never done on its own (the emulator's marker): only a cancel ends it, whenever
# the cancel comes. A plain request may be done first (the emulator finishes each
# at its own moment of the 10 s window), and then comes back succeeded.
STUCK_PARAMS = {**PARAMS, "messages": [{"role": "user", "content": "hello [[emulator:stuck]]"}]}

if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):  # pragma: no cover
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def service(
    pg_db: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[tuple[ServiceProcesses, str]]:
    # Batches take ten seconds, so one is surely caught in flight and canceled.
    emulator = emulator_factory(processing_seconds=10.0)
    port = free_port()
    env = service_env(
        pg_db,
        redis_url,
        emulator.base_url,
        BATCHLINE_DASHBOARD_BASIC_AUTH=f"{USER}:{PASSWORD}",
        BATCHLINE_DASHBOARD_REFRESH_SECONDS="1",
        BATCHLINE_DASHBOARD_SNAPSHOT_SECONDS="1",
    )
    procs = ServiceProcesses(env, tmp_path)
    try:
        procs.worker(concurrency=2)
        procs.beat()
        procs.start("dashboard", [str(BIN / "batchline"), "dashboard", "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), 60, "the dashboard to answer")
        yield procs, base
    finally:
        procs.stop_all()


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1000")
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def _log_in(driver: Any) -> None:
    # Every request the page makes, its own fetches included, carries the login.
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )


def _fresh(read: Callable[[], Any], tries: int = 20) -> Any:
    """`read()`, again when the page's live refresh swapped the element out mid-read."""
    for _ in range(tries - 1):
        try:
            return read()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return read()


def _text(driver: Any, element_id: str) -> str:
    return str(_fresh(lambda: driver.find_element(By.ID, element_id).text))


def _figure(driver: Any, element_id: str) -> int:
    return int(_text(driver, element_id).split("\n")[-1])


def _screenshot_not_blank(driver: Any, path: Path) -> None:
    from PIL import Image

    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    # BATCHLINE_TEST_SCREENSHOTS=dir keeps them (docs/dashboard-overview.png comes from here).
    if keep := os.environ.get("BATCHLINE_TEST_SCREENSHOTS"):
        (Path(keep) / path.name).write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert image.size[0] >= 800 and len(colours) > 20, f"{path.name}: {len(colours)} colours"
    # Not one colour covering the page: text, tables and bars are drawn.
    assert max(n for n, _ in colours) < 0.95 * image.size[0] * image.size[1]


def _throughput_drawn(driver: Any) -> bool:
    """The throughput chart has a bar above zero (the four requests settling)."""
    script = """
      for (const f of document.querySelectorAll('figure.chart')) {
        if (f.querySelector('figcaption').textContent.startsWith('throughput')) {
          return Array.from(f.querySelectorAll('rect title')).map(t => t.textContent);
        }
      }
      return [];"""
    bars = _fresh(lambda: driver.execute_script(script)) or []
    return any(not str(b).endswith(": 0/min") for b in bars)


def _wait(driver: Any, what: str, predicate: Callable[[Any], bool], timeout: float = 60) -> None:
    try:
        WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.3,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(predicate)
    except Exception as exc:  # selenium's TimeoutException, with the page for the reader
        raise AssertionError(f"timed out waiting for {what}:\n{driver.page_source[:3000]}") from exc


def _settings(pg_db: str, redis_url: str) -> Settings:
    return Settings(database_url=pg_db, redis_url=redis_url)


def test_dashboard__in_a_real_browser(
    service: tuple[ServiceProcesses, str], browser: Any, pg_db: str, redis_url: str, tmp_path: Path
) -> None:
    procs, base = service
    settings = _settings(pg_db, redis_url)
    with Producer(settings) as producer:
        keyed = producer.enqueue(PARAMS, key="order-77", tags={"team": "billing"})
        producer.enqueue_many([Item(PARAMS, tags={"team": "search"}) for _ in range(3)])
    engine = make_engine(pg_db)
    sessions = make_session_factory(engine)
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        # Without a login the service answers 401, as Flower does.
        assert httpx.get(f"{base}/", timeout=10).status_code == 401

        _log_in(browser)
        browser.get(f"{base}/")
        assert "batchline" in browser.title
        # Mark the page: a reload would lose this, a live update keeps it.
        browser.execute_script("window.__kept = 'same page';")
        _wait(
            browser,
            "four succeeded requests by live update",
            lambda d: _figure(d, "requests-succeeded") == 4,
            120,
        )
        assert browser.execute_script("return window.__kept") == "same page"
        assert int(_text_attr(browser, "live", "data-updates")) >= 1
        assert _figure(browser, "requests-queued") == 0
        assert "saved vs synchronous" in _text(browser, "saving")
        assert browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect")
        # Beat's snapshots (one a second here) reach the charts over time by live update.
        _wait(browser, "throughput drawn from beat's snapshots", _throughput_drawn, 60)
        browser.set_window_size(1280, 2000)  # the whole overview, charts included
        _screenshot_not_blank(browser, shots / "overview.png")
        browser.set_window_size(1280, 1000)

        with sessions() as session:
            batch_ids = list(session.scalars(select(Batch.id).order_by(Batch.id)))
        browser.get(f"{base}/batches")
        shown = _fresh(
            lambda: {int(a.text) for a in browser.find_elements(By.CSS_SELECTOR, "#batches a")}
        )
        assert shown == set(batch_ids)
        _screenshot_not_blank(browser, shots / "batches.png")
        browser.get(f"{base}/batches?state=prepared")
        assert "no batches in state prepared" in _text(browser, "batches")

        browser.get(f"{base}/batches/{batch_ids[0]}")
        assert "ingested" in _text(browser, "batch-state")
        assert "succeeded" in _text(browser, "batch-request-states")
        _screenshot_not_blank(browser, shots / "batch.png")

        # Lookup by idempotency key lands on the request's page.
        browser.get(f"{base}/requests")
        box = browser.find_element(By.NAME, "q")
        box.send_keys("order-77")
        box.submit()
        _wait(browser, "the request page", lambda d: "/requests/" + keyed.id in d.current_url)
        assert _text(browser, "request-state") == "succeeded"
        assert '"type": "succeeded"' in _text(browser, "result")
        assert '"max_tokens": 8' in _text(browser, "params")
        _screenshot_not_blank(browser, shots / "request.png")

        # Action: resume a pause, through the confirmation page.
        with sessions.begin() as session:
            controls_sql.pause_submission(session, "billing: out of credit", _now())
        browser.get(f"{base}/")
        assert "PAUSED: billing: out of credit" in _text(browser, "submission")
        browser.find_element(By.LINK_TEXT, "resume…").click()
        _wait(browser, "the confirmation", lambda d: d.find_elements(By.ID, "confirm-button"))
        _screenshot_not_blank(browser, shots / "confirm.png")
        # Without the CSRF token the same form is refused and nothing changes.
        browser.execute_script("document.querySelector('input[name=csrf]').remove();")
        browser.find_element(By.ID, "confirm-button").click()
        _wait(browser, "the refusal", lambda d: "CSRF" in d.page_source)
        with sessions() as session:
            assert controls_sql.submission_paused(session) == "billing: out of credit"
        browser.get(f"{base}/actions/resume/submission")
        browser.find_element(By.ID, "confirm-button").click()
        _wait(browser, "the outcome", lambda d: d.find_elements(By.ID, "flash"))
        assert _text(browser, "flash") == "resumed"
        with sessions() as session:
            assert controls_sql.submission_paused(session) is None

        # Action: cancel a batch caught in flight.
        with Producer(settings) as producer:
            late = producer.enqueue(STUCK_PARAMS)
        wait_for(lambda: _batch_of(sessions, late.id) is not None, 60, "the late batch")
        late_batch = _batch_of(sessions, late.id)
        # Refused without a login, even with a token taken from a logged-in page.
        browser.get(f"{base}/actions/cancel-batch/{late_batch}")
        token = browser.find_element(By.NAME, "csrf").get_attribute("value")
        anon = httpx.post(f"{base}/actions/cancel-batch/{late_batch}", data={"csrf": token})
        assert anon.status_code == 401
        browser.find_element(By.ID, "confirm-button").click()
        _wait(browser, "the outcome", lambda d: d.find_elements(By.ID, "flash"))
        assert _text(browser, "flash") == "cancel requested"
        # The worker carries the wish out: the API cancels, the request ends canceled.
        wait_for(lambda: _state(sessions, late.id) == "canceled", 90, "the request to be canceled")
        assert "dashboard action cancel-batch" in procs.log("dashboard")
    finally:
        engine.dispose()


def _text_attr(driver: Any, element_id: str, name: str) -> str:
    return str(_fresh(lambda: driver.find_element(By.ID, element_id).get_attribute(name)))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _batch_of(sessions: Any, request_id: str) -> int | None:
    with sessions() as session:
        batch_id: int | None = session.scalar(
            select(Request.batch_id).where(Request.id == request_id)
        )
        return batch_id


def _state(sessions: Any, request_id: str) -> str | None:
    with sessions() as session:
        state: str | None = session.scalar(select(Request.state).where(Request.id == request_id))
        return state
