"""The ChannelHub page in the real Airflow UI: a real ``airflow standalone`` (plugins folder ``plugins/``),
a real sync of a Shopify sandbox whose history holds an order with a SKU nobody mapped yet, and headless
Chromium driven by Playwright through Airflow's own login page.

An operator maps the SKU, opens ChannelHub from the nav, presses Retry on the ``unknown_sku`` exception and
sees it resolved; ignores another one with a note; the warehouse's audit trail names the Airflow user.
Without an Airflow login the plugin's API refuses every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from airflow_standalone import ROLES, Hub, Standalone, standalone_hub
from sqlalchemy import Engine, text

from sandbox.clock import Clock
from sandbox.server import RunningSandbox, sandbox_connection
from sandbox.world import Variant
from warehouse import catalog, reconciliation_log
from warehouse import exceptions as queue

if TYPE_CHECKING:  # playwright is imported where a test drives the browser
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the sandbox clock, frozen
START = NOW - timedelta(hours=6)
SEED = 77  # with one order every 5 minutes, this history holds an order of an unmapped variant
CODE = "ui_shop"
LOCATION = "WH-UI"


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """The browser is part of the set-up (``make test`` installs it): missing, the test fails, not skips."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium), as `make test` does")
    return CHROMIUM


def sign_in(page: Page, airflow: Standalone) -> None:
    """Airflow's own login: the UI sends an anonymous visitor to the auth manager's login form."""
    page.set_default_timeout(30_000)
    page.goto(airflow.url("/"))
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(airflow.username)
    page.get_by_label("Password").fill(airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, database_url: str, airflow_metadata_url: str
) -> Iterator[Hub]:
    with standalone_hub(
        tmp_path_factory.mktemp("ui"),
        CODE,
        LOCATION,
        {"start_date": START.isoformat()},
        engine=engine,
        database_url=database_url,
        airflow_metadata_url=airflow_metadata_url,
        extra_env={"HUB_WEBHOOKS_IN_AIRFLOW": "true"},  # the receiver in the API server, too
        seed=SEED,
        start=START,
        interval=300,
        clock=Clock.frozen(NOW),
    ) as running:
        yield running


def unmapped_order(shop: RunningSandbox) -> tuple[str, Variant]:
    """The sandbox's own answer: an order of its history with a variant the hub has no listing for."""
    unmapped = {v.index: v for v in shop.world.catalog.unmapped_variants}
    for index in shop.world.orders_visible():
        for line in shop.world.get(index).lines:
            if line.variant.index in unmapped:
                return str(shop.app.state.renderer.order_id(index)), line.variant
    raise AssertionError(f"the sandbox history (seed {SEED}) holds no order of an unmapped variant")


def open_exception(engine: Engine, reason: str, external_id: str) -> dict:
    with engine.connect() as conn:
        found = queue.search(
            conn, queue.ExceptionFilter(channel=CODE, reason=reason, external_id=external_id)
        )
    assert len(found) == 1, found
    return found[0]


def test_an_operator_retries_and_ignores_exceptions_on_the_channelhub_page(hub: Hub) -> None:
    from playwright.sync_api import expect, sync_playwright

    airflow, engine, dag_id = hub.airflow, hub.engine, hub.channel.dag_id
    # A real sync (the DAG, run by the scheduler) lands the history; the unmapped line is an exception.
    run_id = airflow.trigger(dag_id, conf={"since": START.isoformat()})
    assert airflow.wait_for_run(dag_id, run_id)["state"] == "success", airflow.task_logs(dag_id)
    order_id, variant = unmapped_order(hub.shop)
    unknown = open_exception(engine, "unknown_sku", order_id)
    # A problem no retry can fix, for the Ignore button.
    with engine.begin() as conn:
        address_id = queue.record_exception(
            conn,
            channel=CODE,
            reason="bad_address",
            external_id=order_id,
            detail="the carrier refuses the postcode",
            raw={"postcode": "?"},
        )
    # What a reconciliation run found (its DAG belongs to other tests; its log is what the page reads).
    with engine.begin() as conn:
        recon = reconciliation_log.start_run(conn, CODE, "light", NOW - timedelta(hours=1), NOW)
        finding = reconciliation_log.Finding(
            "orders", "missing_order", order_id, "on the channel, not in the warehouse: re-pulled", "repaired"
        )
        reconciliation_log.finish_run(conn, recon, {"orders": 12}, [finding], "1 repaired")
    # Ops map the SKU the order used; the exception stays open until someone retries it.
    ids = variant.platform_ids("shopify")
    with engine.begin() as conn:
        catalog.upsert_listing(
            conn,
            CODE,
            variant.sku,
            merchant_sku=ids["sku"] or None,
            channel_product_id=ids["product_id"],
            channel_variant_id=ids["variant_id"],
        )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            sign_in(page, airflow)

            page.get_by_test_id("nav-sidebar").get_by_role("link", name="ChannelHub").click()
            page.wait_for_url("**/plugin/channelhub**")
            frame = page.frame_locator('iframe[title="ChannelHub"]')
            expect(frame.get_by_role("heading", name="Channel health")).to_be_visible()
            expect(frame.locator(f'#health tr[data-channel="{CODE}"]')).to_contain_text("shopify")

            findings = frame.locator(f'#findings tr[data-run="{recon}"]')
            expect(findings).to_contain_text("missing_order")
            expect(findings).to_contain_text("repaired")

            row = frame.locator(f'tr.exception[data-id="{unknown["id"]}"]')
            expect(row).to_contain_text("unknown_sku")
            expect(row).to_contain_text(order_id)
            row.locator('input[name="note"]').fill("mapped the poster SKU")
            row.get_by_role("button", name="Retry").click()
            expect(row.locator(".status")).to_have_text("resolved")

            other = frame.locator(f'tr.exception[data-id="{address_id}"]')
            other.locator('input[name="note"]').fill("customer will collect")
            other.get_by_role("button", name="Ignore").click()
            expect(other.locator(".status")).to_have_text("ignored")

            # After a reload the open queue no longer lists either of them.
            page.reload()
            frame = page.frame_locator('iframe[title="ChannelHub"]')
            expect(frame.get_by_role("heading", name="Exception queue")).to_be_visible()
            expect(frame.locator(f'tr.exception[data-id="{unknown["id"]}"]')).to_have_count(0)
            expect(frame.locator(f'tr.exception[data-id="{address_id}"]')).to_have_count(0)
        finally:
            browser.close()

    with engine.connect() as conn:
        resolved, ignored = queue.get(conn, unknown["id"]), queue.get(conn, address_id)
        retry_actions = [a for a in queue.actions_of(conn, unknown["id"]) if a["action"] == "retry"]
        ignore_actions = [a for a in queue.actions_of(conn, address_id) if a["action"] == "ignore"]
    assert resolved["status"] == "resolved" and ignored["status"] == "ignored"
    assert ignored["note"] == "customer will collect"
    assert [(a["actor"], a["note"]) for a in retry_actions] == [(airflow.username, "mapped the poster SKU")]
    assert [(a["actor"], a["note"]) for a in ignore_actions] == [(airflow.username, "customer will collect")]


def test_the_plugin_refuses_requests_without_an_airflow_login(hub: Hub) -> None:
    airflow = hub.airflow
    api = airflow.url("/channelhub/api")
    body = {"ids": [1], "note": "no login"}
    for method, url, kwargs in (
        ("GET", f"{api}/health", {}),
        ("GET", f"{api}/exceptions", {}),
        ("GET", f"{api}/findings", {}),
        ("POST", f"{api}/exceptions/retry", {"json": body}),
        ("POST", f"{api}/exceptions/resolve", {"json": body}),
        ("POST", f"{api}/exceptions/ignore", {"json": body}),
        ("GET", airflow.url("/channelhub/"), {"headers": {"Accept": "text/html"}}),
    ):
        anonymous = requests.request(method, url, timeout=10, **kwargs)
        assert anonymous.status_code == 401, (method, url, anonymous.status_code, anonymous.text)
        forged = requests.request(method, url, timeout=10, cookies={"_token": "not-a-jwt"}, **kwargs)
        assert forged.status_code in (401, 403), (method, url, forged.status_code)

    # With the user's JWT the same requests get through.
    bearer = {"Authorization": f"Bearer {airflow.token()}"}
    answer = requests.get(f"{api}/health", headers=bearer, timeout=10)
    assert answer.status_code == 200 and CODE in {row["channel"] for row in answer.json()}
    page = requests.get(airflow.url("/channelhub/"), headers=bearer, timeout=10)
    assert page.status_code == 200 and "Exception queue" in page.text
    # The login page link the refused browser gets leads to Airflow's login form.
    refused = requests.get(airflow.url("/channelhub/"), headers={"Accept": "text/html"}, timeout=10)
    assert "/auth/login" in refused.text


def test_a_viewer_reads_the_page_but_only_users_who_may_run_dags_act(hub: Hub, engine: Engine) -> None:
    """SimpleAuthManager's four roles with real tokens: every role reads; an action (a retry pushes to the
    platforms) needs DAG-run edit, which a Viewer lacks. The API's description is not served to anyone."""
    airflow = hub.airflow
    api = airflow.url("/channelhub/api")
    with engine.begin() as conn:
        exception_id = queue.record_exception(
            conn, channel=CODE, reason="bad_address", external_id="ROLES-1", detail="no street"
        )
    viewer = {"Authorization": f"Bearer {airflow.token('viewer')}"}
    refused = requests.post(
        f"{api}/exceptions/ignore", json={"ids": [exception_id], "note": "x"}, headers=viewer, timeout=60
    )
    assert refused.status_code == 403
    with engine.connect() as conn:
        assert queue.get(conn, exception_id)["status"] == "open"  # nothing was done
    for role in ROLES:
        bearer = {"Authorization": f"Bearer {airflow.token(role)}"}
        assert requests.get(f"{api}/health", headers=bearer, timeout=10).status_code == 200, role
        for action in ("retry", "resolve", "ignore"):
            body = {"ids": [999_999_999], "note": f"{role} tries {action}"}
            answer = requests.post(f"{api}/exceptions/{action}", json=body, headers=bearer, timeout=60)
            assert answer.status_code == (403 if role == "viewer" else 200), (role, action, answer.text)
    admin = {"Authorization": f"Bearer {airflow.token()}"}
    for loose in (["4"], [True], [1.5], list(range(1, 502)), []):  # strict integers, 1 to 500 of them
        answer = requests.post(
            f"{api}/exceptions/resolve", json={"ids": loose, "note": "x"}, headers=admin, timeout=10
        )
        assert answer.status_code == 422, (loose[:3], answer.status_code)
    for path in ("/channelhub/docs", "/channelhub/redoc", "/channelhub/openapi.json"):
        assert requests.get(airflow.url(path), headers=admin, timeout=10).status_code == 404, path


def test_a_failing_section_shows_a_log_id_not_the_database_error(caplog: pytest.LogCaptureFixture) -> None:
    """Every role reads the page: a section that fails shows a log id; the cause (host, user, SQL) is only
    in the API server's log."""
    from sqlalchemy import create_engine

    from plugins.channelhub_plugin import _section

    unreachable = create_engine("postgresql+psycopg://hub_reader@127.0.0.1:9/warehouse")
    section = _section(lambda: list(unreachable.connect().execute(text("SELECT 1"))))
    assert section.rows == [] and section.error is not None
    assert "log id" in section.error
    assert "127.0.0.1" not in section.error and "hub_reader" not in section.error
    log_id = section.error.split("log id ")[1].split(")")[0]
    assert f"[log id {log_id}]" in caplog.text and "127.0.0.1" in caplog.text


def test_a_bulk_retry_runs_as_a_dag_run_on_the_askers_behalf(hub: Hub, engine: Engine) -> None:
    """More than a few ids are not retried inside the web request: the page queues a run of the
    exceptions_retest DAG with them, and that run retries exactly those, logged as the person who asked."""
    airflow = hub.airflow
    with engine.begin() as conn:
        ids = [
            queue.record_exception(
                conn, channel=CODE, reason="bad_address", external_id=f"BULK-{n}", detail="no street"
            )
            for n in range(6)
        ]
    bearer = {"Authorization": f"Bearer {airflow.token('op')}"}
    answer = requests.post(
        airflow.url("/channelhub/api/exceptions/retry"),
        json={"ids": ids, "note": "after the address fix"},
        headers=bearer,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert (queued["queued"], queued["dag_id"]) == (6, "exceptions_retest") and queued["dag_run_id"]
    airflow.wait_for_dag("exceptions_retest")
    airflow.unpause("exceptions_retest")
    run = airflow.wait_for_run("exceptions_retest", queued["dag_run_id"], timeout=240)
    assert run["state"] == "success", airflow.task_logs("exceptions_retest")
    with engine.connect() as conn:
        for exception_id in ids:
            retries = [a for a in queue.actions_of(conn, exception_id) if a["action"] == "retry"]
            assert [(a["actor"], a["note"]) for a in retries] == [("op", "after the address fix")]


def test_the_api_server_serves_the_webhook_receiver_without_an_airflow_login(
    hub: Hub, engine: Engine
) -> None:
    """With ``HUB_WEBHOOKS_IN_AIRFLOW=true`` a platform's signed delivery reaches the receiver mounted in the
    API server, no Airflow login asked, and lands its order; a forged one is refused there too."""
    shop = hub.shop
    secret = sandbox_connection("shopify", shop.base_url, shop.access_token)["extra"]["webhook_secret"]
    state = next(iter(shop.world.updated_between(NOW - timedelta(hours=1), NOW)))
    body = json.dumps(shop.app.state.renderer.render(state)).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    url = hub.airflow.url(f"/channelhub-webhooks/webhooks/{CODE}")
    headers = {"X-Shopify-Topic": "orders/updated", "X-Shopify-Webhook-Id": f"ui-{uuid.uuid4()}"}
    forged = requests.post(
        url, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": "Zm9yZ2Vk"}, timeout=30
    )
    assert forged.status_code == 401
    answer = requests.post(
        url, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": signature}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    external_id = str(json.loads(body)["id"])

    def landed() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT count(*) FROM webhook_inbox i JOIN channels c ON c.id = i.channel_id "
                        "WHERE c.code = :c AND i.order_external_id = :e AND i.status = 'applied'"
                    ),
                    {"c": CODE, "e": external_id},
                ).scalar()
            )

    hub.airflow.wait_for("the delivered order applied", landed, timeout=60)


def test_the_reports_tab_charts_sales_in_the_browsers_language(hub: Hub, engine: Engine) -> None:
    """The Reports tab (issue 21, capability 7): sales by channel and by store per day, top SKUs and low
    stock, drawn as inline SVG by the server (no network); English for an English browser, Chinese for a
    Chinese one."""
    from playwright.sync_api import expect, sync_playwright

    from warehouse.store_imports import import_text
    from warehouse.testing import Shop, make_line, make_order

    airflow = hub.airflow
    assert requests.get(airflow.url("/channelhub/reports"), timeout=10).status_code == 401  # login first
    shop = Shop.create(engine)
    store = f"{shop.prefix}-store"
    with engine.begin() as conn:
        catalog.upsert_location(conn, store, "Shanghai store", "store")
    mug, tee = shop.add_sku("MUG", 150), shop.add_sku("TEE", 10)
    with engine.begin() as conn:
        catalog.receive_stock(conn, mug, store, 30, f"receive:{shop.prefix}:store")
    now = datetime.now(UTC)
    shop.ingest(
        make_order(f"{shop.prefix}-1", [make_line("1", mug, 60), make_line("2", tee, 8)], created_at=now),
        make_order(f"{shop.prefix}-2", [make_line("1", mug, 40)], created_at=now - timedelta(days=2)),
    )
    sales = "receipt_id,line_no,location,sku,quantity,sold_at,unit_price\n"
    sales += f"R1,1,{store},{mug},4,{now.isoformat()},9.50\n"
    assert import_text(engine, "sales", sales, file="sales.csv", source="sales.csv").ok

    def check_charts(frame) -> None:
        by_channel = frame.locator(f'svg[data-chart="sales-by-channel"] g[data-series="{shop.channel}"]')
        expect(by_channel).to_have_attribute("data-total", "108")
        expect(by_channel.locator("circle")).to_have_count(2)  # two days with sales
        by_store = frame.locator(f'svg[data-chart="sales-by-store"] g[data-series="{store}"]')
        expect(by_store.locator('circle[data-units="4"]')).to_have_count(1)
        expect(frame.locator(f'svg[data-chart="top-skus"] g.bar[data-sku="{mug}"]')).to_have_attribute(
            "data-units", "104"
        )
        expect(frame.locator(f'#low-stock tr[data-sku="{tee}"] td.cover')).to_have_text("3.5")  # 2 / (8 / 14)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            english = browser.new_context(locale="en-US")
            page = english.new_page()
            sign_in(page, airflow)
            page.goto(airflow.url("/plugin/channelhub"))
            frame = page.frame_locator('iframe[title="ChannelHub"]')
            frame.get_by_role("link", name="Reports").click()
            expect(frame.get_by_role("heading", name="Sales reports")).to_be_visible()
            expect(frame.locator("figcaption").first).to_have_text("Units sold per day by channel")
            expect(frame.get_by_role("heading", name="Low stock: days of cover")).to_be_visible()
            check_charts(frame)
            assert frame.locator("svg.chart").count() == 3

            chinese = browser.new_context(locale="zh-CN", storage_state=english.storage_state())
            page = chinese.new_page()
            page.set_default_timeout(30_000)
            page.goto(airflow.url("/plugin/channelhub"))
            frame = page.frame_locator('iframe[title="ChannelHub"]')
            frame.get_by_role("link", name="报表").click()
            expect(frame.get_by_role("heading", name="销售报表")).to_be_visible()
            expect(frame.locator("figcaption").first).to_have_text("各渠道每日销量")
            expect(frame.get_by_role("heading", name="库存预警：可售天数")).to_be_visible()
            expect(frame.locator("#low-stock th").last).to_have_text("可售天数")
            expect(frame.locator("html")).to_have_attribute("lang", "zh")
            check_charts(frame)
        finally:
            browser.close()
