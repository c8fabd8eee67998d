"""The dashboard's pages, fragments and actions in-process (Starlette's test client)
over PostgreSQL and Redis with data put there by the real pipeline and emulator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from batchline.adapters.sql import controls as controls_sql
from batchline.cli import cli
from batchline.dashboard import charts
from batchline.dashboard.app import create_app, parse_users
from batchline.models import Batch, Request, Result
from batchline.producer import Item, Producer
from batchline.settings import Settings, SettingsError
from harness.emulated import Emulated, poll_and_ingest, run_once

pytestmark = pytest.mark.integration

PARAMS = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}
AUTH = ("admin", "s3cret")


@pytest.fixture
def seeded(on_emulator: Emulated) -> Iterator[tuple[Settings, dict[str, Any]]]:
    """Three requests through a real batch to results, two more still queued."""
    pipeline, _, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        keyed = producer.enqueue(PARAMS, key="invoice-9", tags={"team": "billing"})
        producer.enqueue_many([Item(PARAMS, tags={"team": "search"}) for _ in range(2)])
        run_once(pipeline)
        poll_and_ingest(pipeline)
        queued = producer.enqueue(PARAMS, key="later-1")
        producer.enqueue(PARAMS)
        from batchline.services.intake import run_intake

        run_intake(pipeline, "t")
    with pipeline.sessions() as session:
        batch_id = session.scalar(select(Batch.id))
        custom_id = session.scalar(select(Result.custom_id).where(Result.request_id == keyed.id))
    settings = pipeline.settings.replace(dashboard_basic_auth=f"{AUTH[0]}:{AUTH[1]}")
    yield (
        settings,
        {
            "keyed": keyed.id,
            "queued": queued.id,
            "batch": batch_id,
            "custom_id": custom_id,
        },
    )


@pytest.fixture
def client(seeded: tuple[Settings, dict[str, Any]]) -> Iterator[TestClient]:
    with TestClient(create_app(seeded[0]), follow_redirects=False) as c:
        yield c


def _ids(seeded: tuple[Settings, dict[str, Any]]) -> dict[str, Any]:
    return seeded[1]


def test_pages__need_the_login_like_flower(client: TestClient) -> None:
    assert client.get("/").status_code == 401
    assert client.get("/", auth=("admin", "wrong")).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_overview__shows_the_figures(client: TestClient) -> None:
    page = client.get("/", auth=AUTH)
    assert page.status_code == 200
    html = page.text
    assert 'id="requests-succeeded"><div>requests succeeded</div><div class="figure">3<' in html
    assert 'id="requests-queued"><div>requests queued</div><div class="figure">2<' in html
    assert 'id="queue-depth"><div>intake queue</div><div class="figure">0<' in html
    assert "saved vs synchronous" in html and "<svg" in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_overview__fragment_is_only_the_live_part(client: TestClient) -> None:
    part = client.get("/?fragment=1", auth=AUTH).text
    assert "requests succeeded" in part and "<html" not in part and "<header>" not in part


def test_overview__pause_and_its_reason(client: TestClient, seeded: Any) -> None:
    settings = seeded[0]
    from datetime import UTC, datetime

    from batchline.database import session_scope

    with session_scope(settings, write=True) as session:
        controls_sql.pause_submission(session, "billing: credit balance too low", datetime.now(UTC))
    assert "PAUSED: billing: credit balance too low" in client.get("/", auth=AUTH).text


def test_batches__list_filter_and_page(client: TestClient, seeded: Any) -> None:
    ids = _ids(seeded)
    listed = client.get("/batches", auth=AUTH).text
    assert f'href="/batches/{ids["batch"]}"' in listed
    assert "no batches in state prepared" in client.get("/batches?state=prepared", auth=AUTH).text
    page = client.get(f"/batches/{ids['batch']}", auth=AUTH).text
    assert "succeeded 3 · errored 0" in page
    assert 'id="batch-request-states">succeeded 3' in page
    assert ids["keyed"] in page and "ingested" in page
    assert client.get("/batches/999999", auth=AUTH).status_code == 404


@pytest.mark.parametrize("how", ["keyed", "custom_id", "invoice-9", "team=billing"])
def test_requests__lookup_by_id_custom_id_key_or_tag(
    client: TestClient, seeded: Any, how: str
) -> None:
    ids = _ids(seeded)
    query = ids.get(how, how)
    found = client.get("/requests", params={"q": query}, auth=AUTH)
    assert found.status_code == 303
    assert found.headers["location"] == f"/requests/{ids['keyed']}"


def test_requests__page_shows_params_attempts_and_the_api_shaped_result(
    client: TestClient, seeded: Any
) -> None:
    ids = _ids(seeded)
    page = client.get(f"/requests/{ids['keyed']}", auth=AUTH).text
    assert 'id="request-state">succeeded' in page
    assert "&#34;type&#34;: &#34;succeeded&#34;" in page  # the result, JSON, escaped
    assert "&#34;max_tokens&#34;: 5" in page
    assert ids["custom_id"] in page
    assert "nothing matches nope" in client.get("/requests?q=nope", auth=AUTH).text


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path, auth=AUTH)
    assert page.status_code == 200
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_actions__refused_without_auth_or_csrf_then_done_and_logged(
    client: TestClient, seeded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings, ids = seeded
    path = f"/actions/cancel-request/{ids['queued']}"
    assert client.get(path).status_code == 401
    assert client.post(path, data={"csrf": "x"}).status_code == 401
    assert client.post(path, auth=AUTH).status_code == 403
    assert client.post(path, data={"csrf": "0" * 64}, auth=AUTH).status_code == 403
    token = _csrf(client, path)
    assert client.post(path, data={"csrf": token}, auth=("admin", "wrong")).status_code == 401
    with caplog.at_level(logging.INFO, logger="batchline.dashboard"):
        done = client.post(path, data={"csrf": token}, auth=AUTH)
    assert done.status_code == 303 and done.headers["location"].startswith(
        f"/requests/{ids['queued']}?done=canceled"
    )
    assert any(
        "cancel-request" in r.getMessage() and "admin" in r.getMessage() for r in caplog.records
    )
    from batchline.database import session_scope

    with session_scope(settings) as session:
        assert session.get(Request, ids["queued"]).state == "canceled"  # type: ignore[union-attr]


def test_actions__retry_and_resume(client: TestClient, seeded: Any) -> None:
    settings, ids = seeded
    from datetime import UTC, datetime

    from batchline.database import session_scope

    with session_scope(settings, write=True) as session:
        controls_sql.pause_submission(session, "billing", datetime.now(UTC))
    token = _csrf(client, "/actions/resume/submission")
    done = client.post("/actions/resume/submission", data={"csrf": token}, auth=AUTH)
    assert done.headers["location"] == "/?done=resumed"
    with session_scope(settings) as session:
        assert controls_sql.submission_paused(session) is None
    retry = client.post(f"/actions/retry-batch/{ids['batch']}", data={"csrf": token}, auth=AUTH)
    assert "0%20requests%20queued%20again" in retry.headers["location"]
    cancel = client.post(f"/actions/cancel-batch/{ids['batch']}", data={"csrf": token}, auth=AUTH)
    assert "cannot%20be%20canceled" in cancel.headers["location"]  # already ingested


def test_actions__refused_when_no_login_is_configured(seeded: Any) -> None:
    settings, ids = seeded
    open_board = create_app(settings.replace(dashboard_basic_auth=""))
    with TestClient(open_board, follow_redirects=False) as c:
        assert c.get("/").status_code == 200
        refused = c.post(f"/actions/cancel-request/{ids['queued']}", data={"csrf": "x"})
        assert refused.status_code == 403 and "BATCHLINE_DASHBOARD_BASIC_AUTH" in refused.text
        assert c.get(f"/actions/cancel-request/{ids['queued']}").status_code == 403


def test_settings__basic_auth_and_refresh_are_checked() -> None:
    assert parse_users("a:b, c:d:e") == {"a": "b", "c": "d:e"}
    with pytest.raises(SettingsError, match="DASHBOARD_BASIC_AUTH"):
        Settings.from_env({"BATCHLINE_DASHBOARD_BASIC_AUTH": "nopassword"})
    with pytest.raises(SettingsError, match="DASHBOARD_REFRESH_SECONDS"):
        Settings.from_env({"BATCHLINE_DASHBOARD_REFRESH_SECONDS": "0"})
    assert "s3cret" not in repr(Settings(dashboard_basic_auth="a:s3cret"))


def test_cli__refuses_a_public_address_without_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHLINE_DASHBOARD_BASIC_AUTH", raising=False)
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "without BATCHLINE_DASHBOARD_BASIC_AUTH" in result.output


def test_charts__svg_bars_with_exact_values_as_tooltips() -> None:
    svg = charts.bars("cost <per> day", [("2026-01-01", 0.5), ("2026-01-02", 1.0)])
    assert svg.count("<rect") == 2 and "cost &lt;per&gt; day" in svg
    assert "2026-01-02: 1" in svg
    assert "no data yet" in charts.bars("empty", [])


def test_assets__served_from_the_package_and_nothing_else(client: TestClient) -> None:
    js = client.get("/static/dashboard.js")
    assert js.status_code == 200 and "fragment" in js.text
    assert js.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/dashboard.css").status_code == 200
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_confirmation__has_no_live_part_to_refresh(client: TestClient, seeded: Any) -> None:
    path = f"/actions/cancel-request/{_ids(seeded)['queued']}"
    assert 'id="live"' not in client.get(path, auth=AUTH).text
    assert client.get(path, params={"fragment": "1"}, auth=AUTH).status_code == 404
