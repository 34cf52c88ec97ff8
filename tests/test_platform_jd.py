"""JD POP's own quirks (the registry-wide contract tests cover pull, push, paging faults and credentials):
the published order mapped, the gateway's signature / timestamp / token refusals, the one-month window,
Beijing times and yuan amounts, whole-order shipments, stock by skuId."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from connectors.auth import Secret
from connectors.errors import ApiError, AuthError
from connectors.gateway import beijing_time, canonical_json
from connectors.gateway import sign as gateway_sign
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from platforms.jd.connector import connector_for_channel
from platforms.jd.mapping import map_order, unwrap
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection

FIXTURES = Path(__file__).parent / "fixtures" / "jd"
PUBLISHED = FIXTURES / "order_249786309732_published.json"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox("jd", seed=31, start=START, interval=600, clock=Clock.frozen(NOW)) as running:
        yield running


def connector(sandbox, **extra):
    conn = sandbox_connection("jd", sandbox.base_url, sandbox.access_token)
    creds = ChannelCredentials(
        "jd_test", conn["host"], conn["login"], Secret(conn["password"]), {**conn["extra"], **extra}
    )
    return connector_for_channel(creds, hub_config("jd_test", "jd", page_size=10).channel("jd_test"))


def raw_call(sandbox, method: str, business: dict, **overrides: str) -> dict:
    """One call signed by hand, as JD's own clients build it; ``overrides`` replace system parameters."""
    params = {
        "method": method,
        "app_key": "jd_sandbox_app_key_0001",
        "access_token": sandbox_connection("jd", "", "x")["extra"]["access_token"],
        "timestamp": beijing_time(),
        "v": "2.0",
        "360buy_param_json": canonical_json(business),
    }
    params.update({k: v for k, v in overrides.items() if k != "sign"})
    params["sign"] = overrides.get("sign") or gateway_sign(params, sandbox.access_token, "md5")
    return requests.get(f"{sandbox.base_url}/routerjson", params=params, timeout=10).json()


def test_the_published_order_maps_to_its_canonical_order():
    [payload] = unwrap(json.loads(PUBLISHED.read_text()))
    order = map_order(payload)
    assert (order.external_id, order.number, order.currency) == ("249786309732", "249786309732", "CNY")
    # Beijing wall times become UTC: 16:37:38 +08:00 is 08:37:38Z.
    assert order.created_at == datetime(2022, 7, 16, 8, 37, 38, tzinfo=UTC)
    assert order.updated_at == datetime(2022, 7, 16, 8, 38, 32, tzinfo=UTC)
    assert (order.payment_status, order.fulfillment_status, order.cancelled) == ("paid", "unfulfilled", False)
    totals = order.totals
    assert (totals.subtotal, totals.discount, totals.shipping, totals.total, totals.refunded) == (
        Decimal("1.00"),
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("1.00"),
        Decimal("0.00"),
    )
    [line] = order.lines
    assert (line.external_line_id, line.sku, line.channel_product_id, line.channel_variant_id) == (
        "10054887745652",
        "testjd4206151136003",
        "10020665903516",
        "10054887745652",
    )
    assert (line.quantity, line.unit_price, line.line_total, line.shipped_quantity) == (
        1,
        Decimal("1.00"),
        Decimal("1.00"),
        0,
    )
    assert order.customer is not None and order.customer.external_id == "jd_ituyy715jh7pssw"
    address = order.shipping_address
    assert address is not None
    assert (address.province, address.city, address.district, address.address2, address.country_code) == (
        "广东",
        "广州市",
        "海珠区",
        "赤岗街道",
        "CN",
    )


@pytest.mark.parametrize(
    "file", ["order_249786309732_published.json", "search_page_with_published_order.json"]
)
def test_channelhub_map_prints_the_published_order(file):
    done = subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", "jd", str(FIXTURES / file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    order = printed[0] if isinstance(printed, list) else printed
    assert order["external_id"] == "249786309732" and order["created_at"] == "2022-07-16T08:37:38Z"


def test_the_gateway_refuses_a_bad_signature_a_stale_timestamp_and_an_unknown_token(sandbox):
    business = {"order_id": "250000000001"}
    assert (
        raw_call(sandbox, "jingdong.pop.order.get", business)["jingdong_pop_order_get_responce"]["code"]
        == "0"
    )
    assert (
        raw_call(sandbox, "jingdong.pop.order.get", business, sign="0" * 32)["error_response"]["code"] == "18"
    )
    stale = beijing_time(time.time() - 3600)
    assert (
        raw_call(sandbox, "jingdong.pop.order.get", business, timestamp=stale)["error_response"]["code"]
        == "22"
    )
    refused = raw_call(sandbox, "jingdong.pop.order.get", business, access_token="not-the-shops")
    assert refused["error_response"]["en_desc"] == "Invalid access_token"
    with pytest.raises(AuthError) as error:
        connector(sandbox, access_token="not-the-shops").get_order("250000000001")
    assert error.value.code == "19" and "not-the-shops" not in str(error.value)


def test_a_window_over_one_month_is_refused_and_the_connector_splits_it(sandbox):
    business = {
        "start_date": "2026-09-01 00:00:00",
        "end_date": "2026-10-02 00:00:01",
        "order_state": "WAIT_SELLER_STOCK_OUT",
        "optional_fields": "orderId",
        "page": 1,
        "page_size": 10,
    }
    answer = raw_call(sandbox, "jingdong.pop.order.search", business)
    result = answer["jingdong_pop_order_search_responce"]["searchorderinfo_result"]["apiResult"]
    assert result["success"] is False and "1个月" in result["chineseErr"]
    # 40 days through the connector: two windows of at most 28 days, each accepted.
    before = sandbox.app.state.calls.get("jingdong.pop.order.search", 0)
    pages = list(connector(sandbox).fetch_orders(NOW - timedelta(days=40), NOW))
    assert sandbox.app.state.calls["jingdong.pop.order.search"] - before >= 2
    assert sum(len(page) for page in pages) > 0


def test_orders_carry_beijing_times_and_yuan_amounts_of_the_world(sandbox):
    [order, *_] = next(iter(connector(sandbox).fetch_orders(START, NOW)))
    index = int(order["orderId"]) - 250_000_000_000
    state = sandbox.world.state(index, NOW)
    mapped = map_order(order)
    assert mapped.created_at == datetime.fromtimestamp(state.order.created_ts, UTC)
    beijing = datetime.fromtimestamp(state.order.created_ts, ZoneInfo("Asia/Shanghai"))
    assert order["orderStartTime"] == beijing.strftime("%Y-%m-%d %H:%M:%S")
    assert sandbox.app.state.renderer.render(state)["orderId"] == order["orderId"]
    goods = sum((line.line_total for line in state.order.lines), Decimal(0))
    discount = state.order.discount.amount if state.order.discount else Decimal(0)
    assert mapped.totals.total == goods - discount + state.order.shipping.price
    assert all(isinstance(item["itemTotal"], str) for item in order["itemInfoList"])


def test_a_shipment_ships_the_whole_order_once_and_stock_is_set_per_sku(sandbox):
    jd = connector(sandbox)
    orders = [o for page in jd.fetch_orders(START, NOW) for o in page]
    order = next(o for o in orders if o["orderState"] == "WAIT_SELLER_STOCK_OUT")
    lines = tuple(ShipmentLine(i["skuId"], int(i["itemTotal"])) for i in order["itemInfoList"])
    push = ShipmentPush(order["orderId"], "S-1", "SF", "SF1234567890", lines, NOW, completes_order=True)
    part = replace(push, lines=(replace(lines[0], quantity=lines[0].quantity + 1),))
    assert jd.push_shipment(part).status == "rejected"  # JD ships whole orders only
    assert jd.push_shipment(push).status == "pushed"
    shipped = jd.get_order(order["orderId"])
    assert (shipped["orderState"], shipped["waybill"], shipped["logisticsId"]) == (
        "WAIT_GOODS_RECEIVE_CONFIRM",
        "SF1234567890",
        "467",
    )
    assert jd.push_shipment(push).status == "already_done"
    again = jd.push_shipment(replace(push, tracking_number="YT0000000002", carrier="YTO"))
    assert again.status == "rejected" and again.detail.startswith("10400004")
    assert jd.push_shipment(replace(push, carrier="Pigeon Post")).status == "rejected"
    with pytest.raises(ApiError):
        jd.get("order", params={"order_id": "1"})

    listing = StockPush(None, order["itemInfoList"][0]["wareId"], order["itemInfoList"][0]["skuId"], 7)
    assert jd.set_stock(listing).status == "pushed"
    assert jd.listed_stock(listing) == 7
    assert jd.set_stock(replace(listing, channel_variant_id="nope")).status == "rejected"


def test_a_never_paid_world_order_is_no_jd_order_and_a_shipment_to_it_is_rejected(sandbox):
    """JD lists an order once paid: a world order not paid is absent from the listing, ``order.get``
    answers 10100002, and a shipment pushed to it is a rejection (nothing to ship), not an error. The clock
    stands two days on, so the world holds such orders (this seed pays every order placed before NOW)."""
    later = NOW + timedelta(days=2)
    world, lists = sandbox.world, sandbox.app.state.lists_order
    sandbox.clock.set(later)
    try:
        states = (world.state(index, later) for index in range(world.order_count(later)))
        unpaid = next(state for state in states if state is not None and not lists(state))
        order_id = sandbox.app.state.renderer.order_id(unpaid.order.index)
        jd = connector(sandbox)
        around = (unpaid.updated_at - timedelta(minutes=5), unpaid.updated_at + timedelta(minutes=5))
        assert order_id not in {o["orderId"] for page in jd.fetch_orders(*around) for o in page}
        with pytest.raises(ApiError) as missing:
            jd.get_order(order_id)
        assert missing.value.code == "10100002"
        lines = tuple(ShipmentLine(str(line.index), line.quantity) for line in unpaid.order.lines)
        push = ShipmentPush(order_id, "S-unpaid", "SF", "SF1234567899", lines, later, completes_order=True)
        refused = jd.push_shipment(push)
        assert refused.status == "rejected" and refused.detail.startswith("10100002"), refused
        assert world.overlay.events_for(unpaid.order.index) == ()
    finally:
        sandbox.clock.set(NOW)


def test_the_wire_form_is_jos_v2_with_the_business_parameters_in_one_json_text():
    """What goes on the wire, signed the way JD's own clients sign (hashlib here, not connectors.gateway)."""
    import hashlib

    from connectors.http import Request
    from platforms.jd.connector import JD

    auth = JD.auth.bind({"app_key": "ak", "app_secret": Secret("s3cret"), "access_token": Secret("tok")})
    request = Request("GET", "/routerjson", params={"method": "jingdong.pop.order.get", "order_id": "1"})
    auth.apply(request)
    params = request.params
    assert set(params) == {"method", "app_key", "access_token", "timestamp", "v", "360buy_param_json", "sign"}
    assert (params["v"], params["360buy_param_json"], params["access_token"]) == (
        "2.0",
        '{"order_id":"1"}',
        "tok",
    )
    datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")  # Beijing wall time, to the second
    text = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign")
    assert params["sign"] == hashlib.md5(f"s3cret{text}s3cret".encode()).hexdigest().upper()


def test_a_throttled_router_answers_its_code_and_the_connector_waits_it_out(sandbox):
    sandbox.app.state.calls_per_second = 2
    try:
        throttled = [
            raw_call(sandbox, "jingdong.pop.order.get", {"order_id": "250000000001"}) for _ in range(4)
        ]
        assert any(answer.get("error_response", {}).get("code") == "67" for answer in throttled)
        jd = connector(sandbox)
        assert [jd.get_order("250000000001")["orderId"] for _ in range(4)] == ["250000000001"] * 4
    finally:
        sandbox.app.state.calls_per_second = None
