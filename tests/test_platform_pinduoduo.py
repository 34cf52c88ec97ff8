"""Pinduoduo's own quirks (the registry-wide tests cover pull, push, paging faults and token expiry): the
published example payloads mapped, the gateway's signature, timestamp and 30-minute window, amounts in yuan
numbers and Beijing times, one waybill per whole order with ``redelivery_type`` 2 as the correction, and the
token renewed through the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from hub_configs import hub_config

from canonical.order import MappingError
from channelhub.credentials import ChannelCredentials
from channelhub.platforms import get_platform
from connectors.auth import Secret
from connectors.errors import AuthError
from connectors.gateway import sign
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from platforms.pinduoduo.connector import PinduoduoConnector, connector_for_channel
from platforms.pinduoduo.mapping import map_order, unwrap
from sandbox import pinduoduo as sandbox_pdd
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox, sandbox_connection

FIXTURES = Path(__file__).parent / "fixtures" / "pinduoduo"
INFORMATION_EXAMPLE = FIXTURES / "order_information_get_180831-481803633911509.json"
LIST_EXAMPLE = FIXTURES / "order_list_get_180810-364770100011509_shipped.json"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=3)


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "pinduoduo", seed=41, start=NOW - timedelta(days=2), interval=600, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


@pytest.fixture(scope="module")
def connector(shop: RunningSandbox) -> PinduoduoConnector:
    conn = sandbox_connection("pinduoduo", shop.base_url, shop.access_token)
    creds = ChannelCredentials("pdd", conn["host"], conn["login"], Secret(conn["password"]), conn["extra"])
    return connector_for_channel(creds, hub_config("pdd_shop", "pinduoduo").channel("pdd_shop"))


def router(shop: RunningSandbox, params: dict[str, str]) -> dict:
    return requests.post(f"{shop.base_url}/api/router", data=params, timeout=10).json()


def signed(shop: RunningSandbox, **params: str) -> dict[str, str]:
    base = {
        "client_id": sandbox_pdd.SANDBOX_LOGIN,
        "timestamp": str(int(time.time())),
        "data_type": "JSON",
        **params,
    }
    return {**base, "sign": sign(base, shop.access_token, "md5")}


# -- the published examples -------------------------------------------------------------------------------


def test_the_published_order_information_example_maps_to_its_canonical_order() -> None:
    [payload] = unwrap(json.loads(INFORMATION_EXAMPLE.read_text()))
    assert get_platform("pinduoduo").schema_problem(payload) is None
    order = map_order(payload)
    assert (order.external_id, order.number, order.currency) == ("180831-481803633911509",) * 2 + ("CNY",)
    # "2018-08-31 10:42:33" is Beijing wall time: 02:42:33 UTC
    assert order.created_at == order.updated_at == datetime(2018, 8, 31, 2, 42, 33, tzinfo=UTC)
    # No pay_time in this older answer: confirm_time (成交时间) says it was paid; status 1: waiting to ship
    assert (order.payment_status, order.fulfillment_status, order.cancelled) == ("paid", "unfulfilled", False)
    assert order.totals.total == Decimal("11.01") and order.totals.subtotal == Decimal("11.01")
    assert order.totals.shipping == order.totals.discount == order.totals.tax == 0
    [line] = order.lines
    assert (line.external_line_id, line.channel_product_id, line.channel_variant_id, line.sku) == (
        "51972265894",
        "2525296157",
        "51972265894",
        None,  # outer_id "": the warehouse resolves the line through goods_id / sku_id
    )
    assert (line.quantity, line.unit_price, line.line_total, line.shipped_quantity) == (
        1,
        Decimal("11.01"),
        Decimal("11.01"),
        0,
    )
    address = order.shipping_address
    assert (address.country_code, address.province, address.city, address.district) == (
        "CN",
        "上海市",
        "上海市",
        "长宁区",
    )
    assert order.customer is None  # Pinduoduo names no buyer, only the receiver


def test_the_published_order_list_example_is_shipped_with_its_waybill() -> None:
    [payload] = unwrap(json.loads(LIST_EXAMPLE.read_text()))
    order = map_order(payload)
    assert order.external_id == "180810-364770100011509"
    assert (order.payment_status, order.fulfillment_status) == ("paid", "fulfilled")
    assert [(line.quantity, line.shipped_quantity, line.unit_price) for line in order.lines] == [
        (1, 1, Decimal("4.5"))
    ]
    assert order.shipping_address.phone == "1866716****"  # masked by Pinduoduo once shipped


def test_channelhub_map_prints_the_published_example() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", "pinduoduo", str(INFORMATION_EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert (
        printed["external_id"] == "180831-481803633911509" and printed["created_at"] == "2018-08-31T02:42:33Z"
    )
    assert printed["totals"]["total"] == "11.01"


def test_amounts_that_contradict_pinduoduos_own_sum_are_refused() -> None:
    [payload] = unwrap(json.loads(INFORMATION_EXAMPLE.read_text()))
    with pytest.raises(MappingError, match=r"pay_amount 12\.01 is not goods_amount"):
        map_order({**payload, "pay_amount": 12.01})
    refunded = map_order({**payload, "refund_status": 4})  # refunded in full before shipping: cancelled
    assert (refunded.cancelled, refunded.payment_status, refunded.totals.refunded) == (
        True,
        "refunded",
        Decimal("11.01"),
    )


# -- the gateway --------------------------------------------------------------------------------------------


def test_the_gateway_refuses_a_bad_signature_and_a_stale_timestamp(shop) -> None:
    good = signed(shop, type="pdd.logistics.companies.get", access_token="x")
    assert router(shop, {**good, "sign": good["sign"].lower()})["error_response"]["error_code"] == 20004
    stale = signed(shop, type="pdd.logistics.companies.get", timestamp=str(int(time.time()) - 900))
    assert router(shop, stale)["error_response"]["error_code"] == 10000
    # A correctly signed call with an unknown token is the token's refusal, past the signature.
    refused = router(shop, good)["error_response"]
    assert (refused["error_code"], refused["error_msg"]) == (10019, "access_token已过期")


def test_a_window_longer_than_30_minutes_is_refused_and_the_connector_splits_to_fit(shop, connector) -> None:
    token = connector.client.auth
    connector.client.send(connector.build_request("logistics_companies"))  # a token is at hand now
    window = {
        "start_updated_at": str(int(START.timestamp())),
        "end_updated_at": str(int(START.timestamp()) + 1801),
    }
    refused = router(
        shop,
        signed(shop, type="pdd.order.number.list.increment.get", access_token=token.access_token(), **window),
    )
    assert refused["error_response"]["error_code"] == 10000
    assert "30分钟" in refused["error_response"]["error_msg"]
    before = connector.client.stats.requests
    orders = [order for page in connector.fetch_orders(START, NOW) for order in page]
    assert orders and connector.client.stats.requests - before >= 6  # six 30-minute windows at least
    landed = [get_platform("pinduoduo").prepare(order) for order in orders]
    assert all(type(result).__name__ == "Landed" for result in landed)
    for order in landed:  # every rendered order adds up, times are UTC inside the window
        totals = order.canonical.totals
        assert (
            totals.total == totals.subtotal + totals.shipping and START <= order.canonical.updated_at <= NOW
        )


def test_an_expired_token_is_renewed_through_the_gateway_and_the_call_replayed(shop, connector) -> None:
    connector.client.send(connector.build_request("logistics_companies"))
    issued = shop.app.state.tokens.copy()
    requests.post(f"{shop.base_url}/_sandbox/pinduoduo/expire_tokens", timeout=10)
    companies = connector.get("logistics_companies")
    assert companies and set(shop.app.state.tokens) != set(issued)
    assert connector.client.stats.token_refreshes >= 1


# -- pushes ---------------------------------------------------------------------------------------------


def waiting_order(shop: RunningSandbox, connector: PinduoduoConnector) -> dict:
    orders = [o for page in connector.fetch_orders(NOW - timedelta(hours=12), NOW) for o in page]
    return next(o for o in orders if o["order_status"] == 1 and o["refund_status"] == 1)


def push_for(
    order: dict, carrier: str, number: str, *, previous: str | None = None, complete: bool = True
) -> ShipmentPush:
    lines = tuple(ShipmentLine(str(item["sku_id"]), item["goods_count"]) for item in order["item_list"])
    return ShipmentPush(order["order_sn"], "S-1", carrier, number, lines, NOW, complete, previous)


def test_a_whole_order_ships_once_and_a_correction_replaces_its_waybill(shop, connector) -> None:
    order = waiting_order(shop, connector)
    assert connector.push_shipment(push_for(order, "SF", "SF1000000001", complete=False)).status == "rejected"
    assert connector.push_shipment(push_for(order, "顺丰", "SF1000000001")).status == "pushed"
    shipped = connector.get_order(order["order_sn"])
    assert (shipped["order_status"], shipped["tracking_number"], shipped["logistics_id"]) == (
        2,
        "SF1000000001",
        44,
    )
    sends = shop.app.state.calls["pdd.logistics.online.send"]
    assert connector.push_shipment(push_for(order, "SF", "SF1000000001")).status == "already_done"
    assert shop.app.state.calls["pdd.logistics.online.send"] == sends  # decided by reading first
    other = connector.push_shipment(push_for(order, "YTO", "YT2000000002"))
    assert other.status == "rejected" and "50001" in other.detail  # shipped already, with another waybill
    fixed = connector.push_shipment(push_for(order, "YTO", "YT2000000002", previous="SF1000000001"))
    assert (fixed.status, fixed.extra) == (
        "pushed",
        {"corrected": "true", "previous_tracking_number": "SF1000000001"},
    )
    assert connector.get_order(order["order_sn"])["tracking_number"] == "YT2000000002"
    unknown = connector.push_shipment(push_for(order, "Pigeon Post", "PP300000003"))
    assert unknown.status == "rejected" and "no Pinduoduo code" in unknown.detail


def test_stock_is_set_in_full_and_read_back(shop, connector) -> None:
    variant = shop.world.catalog.by_sku("MUG-WHITE")
    listing = variant.listing("pinduoduo")
    push = StockPush("MUG-WHITE", str(listing.product_id), str(listing.variant_id), 17, expected_current=3)
    result = connector.set_stock(push)
    assert (result.status, result.extra) == ("pushed", {"compare_and_set": "unsupported"})
    assert connector.listed_stock(push) == 17
    assert shop.world.overlay.stock_levels[("pinduoduo", variant.index, 0)] == 17
    assert connector.set_stock(StockPush(None, "999", None, 1)).status == "rejected"


def test_a_wrong_client_secret_is_refused_once_and_for_good(shop) -> None:
    conn = sandbox_connection("pinduoduo", shop.base_url, "not-the-secret-1234")
    creds = ChannelCredentials("pdd", conn["host"], conn["login"], Secret(conn["password"]), conn["extra"])
    wrong = connector_for_channel(creds, hub_config("pdd_wrong", "pinduoduo").channel("pdd_wrong"))
    before = requests.get(f"{shop.base_url}/_sandbox/state", timeout=10).json()["requests"]
    with pytest.raises(AuthError) as refused:
        wrong.get_order("180831-481803633911509")
    after = requests.get(f"{shop.base_url}/_sandbox/state", timeout=10).json()["requests"]
    assert refused.value.code == "20004"  # the token renewal's signature: 签名验证失败
    assert after["api_requests"] - before["api_requests"] == 1  # not retried
    assert "not-the-secret-1234" not in str(refused.value)
