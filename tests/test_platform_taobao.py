"""Taobao's own quirks (the registry-wide tests cover pull, pushes, faults and reconciliation): the gateway's
signature, timestamp, session and window checks with TOP's error envelope, Beijing times and yuan amounts,
the published example trade mapped, and ``channelhub map`` on it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from channelhub.platforms import get_platform
from connectors.auth import Secret
from connectors.errors import AuthError, RateLimited
from connectors.gateway import beijing_time, sign
from connectors.http import RetryPolicy
from connectors.pushes import ShipmentLine, ShipmentPush
from platforms.taobao.connector import connector_for_channel
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from sandbox.taobao import SANDBOX_LOGIN, SANDBOX_SESSION

FIXTURES = Path(__file__).parent / "fixtures" / "taobao"
PUBLISHED = FIXTURES / "fullinfo_289749893209214687_jushita_doc.json"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)
SECRET = "tb-app-secret-for-tests-0001"


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(
        "taobao", seed=31, start=START, interval=600, clock=Clock.frozen(NOW), access_token=SECRET
    ) as running:
        yield running


def call(sandbox, **params: str) -> dict:
    """One signed call to the gateway as TOP's SDK makes it (md5 unless ``sign_method`` says otherwise)."""
    system = {
        "app_key": SANDBOX_LOGIN,
        "session": SANDBOX_SESSION,
        "timestamp": beijing_time(),
        "v": "2.0",
        "format": "json",
        "sign_method": "md5",
    }
    signed = {**system, **params}
    algorithm = {"md5": "md5", "hmac": "hmac-md5", "hmac-sha256": "hmac-sha256"}[signed["sign_method"]]
    signed.setdefault("sign", sign(signed, SECRET, algorithm))
    return requests.get(f"{sandbox.base_url}/router/rest", params=signed, timeout=10).json()


def window(start: datetime, end: datetime) -> dict[str, str]:
    fmt = "%Y-%m-%d %H:%M:%S"
    china = timedelta(hours=8)
    return {
        "start_modified": (start + china).strftime(fmt),
        "end_modified": (end + china).strftime(fmt),
    }


def test_the_gateway_checks_signature_timestamp_and_session_with_tops_error_envelope(sandbox):
    listing = {"method": "taobao.trades.sold.increment.get", "fields": "tid,modified", **window(START, NOW)}
    assert "trades_sold_increment_get_response" in call(sandbox, **listing)
    assert "trades_sold_increment_get_response" in call(sandbox, **listing, sign_method="hmac-sha256")
    refused = call(sandbox, **listing, sign="0" * 32)["error_response"]
    assert (refused["code"], refused["msg"]) == (25, "Invalid Signature") and refused["request_id"]
    stale = call(sandbox, **listing, timestamp="2020-01-01 00:00:00")["error_response"]
    assert stale["code"] == 31
    session = call(sandbox, **listing, session="not-the-sellers")["error_response"]
    assert (session["code"], session["sub_code"]) == (27, "invalid-sessionkey")


def test_a_window_longer_than_one_day_is_refused_and_the_connector_splits_it(sandbox):
    two_days = window(NOW - timedelta(days=2), NOW)
    refused = call(sandbox, method="taobao.trades.sold.increment.get", fields="tid", **two_days)
    assert refused["error_response"]["code"] == 41
    assert refused["error_response"]["sub_code"] == "isv.invalid-parameter:end_modified"
    connector = _connector(sandbox)
    trades = [trade for page in connector.fetch_orders(NOW - timedelta(days=2), NOW) for trade in page]
    assert trades and len({trade["tid"] for trade in trades}) == len(trades)


def test_paging_states_a_total_or_has_next_newest_first(sandbox):
    listing = {"method": "taobao.trades.sold.increment.get", "fields": "tid,modified", **window(START, NOW)}
    first = call(sandbox, **listing, page_size="5")["trades_sold_increment_get_response"]
    assert first["total_results"] > 5 and "has_next" not in first
    modified = [trade["modified"] for trade in first["trades"]["trade"]]
    assert modified == sorted(modified, reverse=True)
    flagged = call(sandbox, **listing, page_size="5", use_has_next="true")[
        "trades_sold_increment_get_response"
    ]
    assert flagged["has_next"] is True and "total_results" not in flagged


def test_times_are_beijing_and_amounts_yuan_strings(sandbox):
    connector = _connector(sandbox)
    [trade, *_] = [trade for page in connector.fetch_orders(START, NOW) for trade in page]
    order = get_platform("taobao").prepare(trade).canonical
    modified = datetime.strptime(trade["modified"], "%Y-%m-%d %H:%M:%S")
    assert order.updated_at == modified.replace(tzinfo=UTC) - timedelta(hours=8)
    assert isinstance(trade["payment"], str) and order.totals.total == Decimal(trade["payment"])
    assert str(order.external_id) == trade["tid_str"] and int(trade["tid_str"]) > 2**53


def test_a_revoked_session_is_an_auth_error_and_a_throttle_is_waited_out(sandbox):
    connector = _connector(sandbox)
    sandbox.faults.update(credentials_revoked=True)
    try:
        with pytest.raises(AuthError) as refused:
            next(iter(connector.fetch_orders(START, NOW)))
    finally:
        sandbox.faults.clear()
    assert refused.value.code == "27" and SANDBOX_SESSION not in str(refused.value)
    sandbox.faults.update(rate_limit_storm=1.0)
    try:
        with pytest.raises(RateLimited) as throttled:
            next(iter(connector.fetch_orders(START, NOW)))
    finally:
        sandbox.faults.clear()
    assert throttled.value.code == "7"
    assert throttled.value.retry_after == 1.0  # "This ban will last for 1 more seconds"


def test_the_published_example_trade_maps_to_the_expected_order():
    platform = get_platform("taobao")
    [trade] = platform.unwrap(json.loads(PUBLISHED.read_text()))
    assert platform.schema_problem(trade) is None
    order = platform.prepare(trade).canonical.to_json()
    assert order["external_id"] == order["number"] == "289749893209214687"
    assert (order["payment_status"], order["fulfillment_status"], order["cancelled"]) == (
        "paid",
        "unfulfilled",
        False,
    )
    assert order["created_at"] == "2019-04-18T02:00:00Z" and order["currency"] == "CNY"
    assert order["totals"] == {
        "subtotal": "0.02",
        "discount": "0.00",
        "shipping": "0.00",
        "tax": "0.00",
        "total": "0.02",
        "refunded": "0.00",
    }
    assert [
        (
            line["external_line_id"],
            line["channel_product_id"],
            line["sku"],
            line["unit_price"],
            line["quantity"],
        )
        for line in order["lines"]
    ] == [
        ("289749893210214687", "598497390355", None, "0.01", 1),
        ("289749893211214687", "598686675547", None, "0.01", 1),
    ]
    assert (
        order["lines"][0]["title"] == "WLN-架海金梁测试-请不要拍-CN001" and order["lines"][1]["title"] == ""
    )


def test_channelhub_map_prints_the_published_example_and_a_sandbox_page():
    done = subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", "taobao", str(PUBLISHED)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["external_id"] == "289749893209214687"
    page = FIXTURES / "increment_page_sandbox.json"
    done = subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", "taobao", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    orders = json.loads(done.stdout)
    statuses = {(o["payment_status"], o["fulfillment_status"], o["cancelled"]) for o in orders}
    assert ("refunded", "unfulfilled", True) in statuses and ("paid", "fulfilled", False) in statuses
    assert ("unpaid", "unfulfilled", False) in statuses


def _connector(sandbox):
    conn = sandbox_connection("taobao", sandbox.base_url, SECRET)
    creds = ChannelCredentials(
        "tb", conn["host"], conn.get("login"), Secret(conn["password"]), conn.get("extra", {})
    )
    connector = connector_for_channel(creds, hub_config("tb", "taobao", page_size=10).channel("tb"))
    connector.client.retry = RetryPolicy(rate_limit_attempts=2, retry_after_max=0.01)
    return connector


def test_shipping_one_sub_order_splits_the_trade_and_a_replay_is_already_done(sandbox):
    connector = _connector(sandbox)
    trades = [trade for page in connector.fetch_orders(START, NOW) for trade in page]
    trade = next(
        t for t in trades if t["status"] == "WAIT_SELLER_SEND_GOODS" and len(t["orders"]["order"]) > 1
    )
    first, *_ = trade["orders"]["order"]
    line = ShipmentLine(first["oid_str"], first["num"])
    push = ShipmentPush(trade["tid_str"], "S-1", "圆通", "YT7000000001", (line,), NOW, False)
    assert connector.push_shipment(push).status == "pushed"
    shipped = connector.get_order(trade["tid_str"])
    assert shipped["status"] == "SELLER_CONSIGNED_PART"
    assert shipped["orders"]["order"][0]["invoice_no"] == "YT7000000001"
    assert shipped["orders"]["order"][0]["logistics_company"] == "YTO"
    assert connector.push_shipment(push).status == "already_done"
    second = shipped["orders"]["order"][1]
    partial = ShipmentLine(second["oid_str"], second["num"] + 1)
    refused = connector.push_shipment(replace(push, lines=(partial,), tracking_number="YT7000000002"))
    assert refused.status == "rejected" and "whole sub-orders" in refused.detail
    unknown = connector.push_shipment(replace(push, carrier="Pony Express", tracking_number="PX0000001"))
    assert unknown.status == "rejected" and "no Taobao code" in unknown.detail
    closed = next(t for t in trades if t["status"].startswith("TRADE_CLOSED"))
    sub = closed["orders"]["order"][0]
    early = replace(
        push, external_order_id=closed["tid_str"], lines=(ShipmentLine(sub["oid_str"], sub["num"]),)
    )
    refused = connector.push_shipment(early)
    assert refused.status == "rejected" and "is closed" in refused.detail


def test_a_waybill_changes_within_24_hours_of_shipping_only(sandbox):
    connector = _connector(sandbox)
    trades = [trade for page in connector.fetch_orders(START, NOW) for trade in page]
    trade = next(
        t for t in trades if t["status"] == "WAIT_SELLER_SEND_GOODS" and len(t["orders"]["order"]) == 1
    )
    [sub] = trade["orders"]["order"]
    first = ShipmentPush(
        trade["tid_str"], "S-2", "SF", "SF7000000001", (ShipmentLine(sub["oid_str"], sub["num"]),), NOW, True
    )
    assert connector.push_shipment(first).status == "pushed"
    late = replace(
        first, carrier="ZTO", tracking_number="ZT7000000002", previous_tracking_number="SF7000000001"
    )
    sandbox.clock.advance(timedelta(hours=25))
    try:
        refused = connector.push_shipment(late)
    finally:
        sandbox.clock.set(NOW)
    assert refused.status == "rejected"
    assert refused.detail.startswith("isv.logistics-update-company-or-mailno-error:P06")
    assert "24 hours" in refused.detail
    assert connector.push_shipment(late).status == "pushed"  # within the day it changes
    [changed] = connector.get_order(trade["tid_str"])["orders"]["order"]
    assert (changed["invoice_no"], changed["logistics_company"]) == ("ZT7000000002", "ZTO")
