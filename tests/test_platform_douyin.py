"""Douyin shop 抖店: only its quirks (the registry-wide tests cover pull, pushes, paging faults and token
expiry for every platform). The signature as the official SDK computes it, refused signatures and stale
timestamps, the one-day window, fen and epoch seconds, the whole-order shipment, and the published example
payloads (platforms/douyin/NOTES.md) mapped to the canonical order, also through ``channelhub map``."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from channelhub.platforms import channel_connector, get_platform
from connectors.auth import Secret
from connectors.errors import AuthError
from connectors.gateway import canonical_json, sign
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox, sandbox_connection
from warehouse.ingest import Landed

FIXTURES = Path(__file__).parent / "fixtures" / "douyin"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)
SECRET = "douyin-test-app-secret-0001"
SIGNED = ("app_key", "method", "param_json", "timestamp", "v")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "douyin", seed=31, start=START, interval=600, clock=Clock.frozen(NOW), access_token=SECRET
    ) as running:
        yield running


def credentials(sandbox: RunningSandbox, secret: str = SECRET) -> ChannelCredentials:
    conn = sandbox_connection("douyin", sandbox.base_url, secret)
    return ChannelCredentials("dy", conn["host"], conn["login"], Secret(conn["password"]), conn["extra"])


def connector(sandbox: RunningSandbox, secret: str = SECRET, page_size: int = 20) -> Any:
    channel = hub_config("dy", "douyin", page_size=page_size).channel("dy")
    return channel_connector(channel, credentials(sandbox, secret))


def raw_call(sandbox: RunningSandbox, method: str, params: dict[str, Any], **system: str) -> dict[str, Any]:
    """One call signed by hand, as the official SDK signs it (utils/sign_util.go), without the connector."""
    token = system.pop("access_token", None)
    if token is None and method != "token.create":
        token = raw_call(sandbox, "token.create", TOKEN_PARAMS)["data"]["access_token"]
    query = {
        "app_key": sandbox_connection("douyin", sandbox.base_url, SECRET)["login"],
        "method": method,
        "param_json": canonical_json(params),
        "timestamp": str(int(time.time())),
        "v": "2",
        **system,
    }
    text = "".join(f"{key}{query[key]}" for key in SIGNED)
    query.setdefault(
        "sign", hmac.new(SECRET.encode(), f"{SECRET}{text}{SECRET}".encode(), "sha256").hexdigest()
    )
    query.update(sign_method="hmac-sha256", **({"access_token": token} if token else {}))
    answer = requests.post(f"{sandbox.base_url}/{method.replace('.', '/')}", params=query, timeout=10)
    return answer.json()


TOKEN_PARAMS = {"code": "", "grant_type": "authorization_self", "shop_id": 4463798}


def test_the_gateway_signs_as_the_official_sdk_does() -> None:
    """HMAC-SHA256 keyed by the secret over secret + "app_key..method..param_json..timestamp..v.." + secret,
    lower hex (SDK utils/sign_util.go); MD5 over the same text (the SDK's SpiSign and older clients)."""
    params = {
        "app_key": "7123456789012345678",
        "method": "order.searchList",
        "param_json": '{"page":0,"size":10}',
        "timestamp": "1700000000",
        "v": "2",
        "access_token": "not-signed",
    }
    text = (
        'app_key7123456789012345678methodorder.searchListparam_json{"page":0,"size":10}timestamp1700000000v2'
    )
    wrapped = f"s3cret{text}s3cret"
    assert sign(
        params, "s3cret", "hmac-sha256", uppercase=False, only=frozenset(SIGNED), hmac_wraps_secret=True
    ) == (hmac.new(b"s3cret", wrapped.encode(), hashlib.sha256).hexdigest())
    assert sign(params, "s3cret", "md5", uppercase=False, only=frozenset(SIGNED)) == (
        hashlib.md5(wrapped.encode()).hexdigest()
    )
    # param_json is the business parameters with sorted keys and no spaces, non-ASCII kept.
    assert canonical_json({"size": 10, "page": 0, "name": "抖店"}) == '{"name":"抖店","page":0,"size":10}'


def test_a_wrong_secret_is_refused_as_a_credential_problem_without_leaking_it(sandbox) -> None:
    with pytest.raises(AuthError) as refused:
        list(connector(sandbox, secret="wrong-secret-value-42").fetch_orders(START, NOW))
    assert refused.value.code == "isv.signature-invalid"
    assert "wrong-secret-value-42" not in str(refused.value) and "wrong-secret-value-42" not in repr(
        refused.value
    )


def test_a_stale_timestamp_and_a_bad_signature_are_refused(sandbox) -> None:
    stale = raw_call(
        sandbox, "order.searchList", {"page": 0, "size": 1}, timestamp=str(int(time.time()) - 1200)
    )
    assert (stale["code"], stale["sub_code"]) == (40003, "isv.timestamp-invalid")
    forged = raw_call(sandbox, "order.searchList", {"page": 0, "size": 1}, sign="0" * 64)
    assert (forged["code"], forged["sub_code"]) == (40003, "isv.signature-invalid")
    fine = raw_call(sandbox, "order.searchList", {"page": 0, "size": 1})
    assert fine["code"] == 10000 and fine["data"]["size"] == 1


def test_the_window_limit_is_refused_by_the_platform_and_split_by_the_connector(sandbox) -> None:
    end = int(NOW.timestamp())
    wide = {"update_time_start": end - 2 * 86400, "update_time_end": end, "page": 0, "size": 10}
    refused = raw_call(sandbox, "order.searchList", wide)
    assert refused["code"] == 40004 and refused["data"] is None
    orders = [o for page in connector(sandbox).fetch_orders(NOW - timedelta(days=3), NOW) for o in page]
    assert orders and len({o["order_id"] for o in orders}) == len(orders)
    too_big = raw_call(sandbox, "order.searchList", {"page": 0, "size": 101})
    assert too_big["code"] == 40004


def test_amounts_are_fen_and_times_epoch_seconds(sandbox) -> None:
    world, renderer = sandbox.world, sandbox.app.state.renderer
    state = next(s for i in world.orders_visible(NOW) if (s := world.state(i, NOW)) is not None)
    payload = renderer.render(state)
    order = get_platform("douyin").prepare(payload)
    assert isinstance(order, Landed)
    canonical = order.canonical
    assert canonical.created_at == datetime.fromtimestamp(state.order.created_ts, UTC)
    assert canonical.totals.total * 100 == payload["pay_amount"]
    assert canonical.totals.shipping * 100 == payload["post_amount"]
    line = canonical.lines[0]
    assert line.unit_price * 100 == payload["sku_order_list"][0]["origin_amount"]
    assert line.external_line_id == payload["sku_order_list"][0]["order_id"] != canonical.external_id


def test_an_expired_token_is_replaced_once_and_the_call_replayed(sandbox) -> None:
    dy = connector(sandbox)
    first = list(dy.fetch_orders(NOW - timedelta(hours=1), NOW))
    before = requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=10).json()["requests"]
    requests.post(f"{sandbox.base_url}/_sandbox/douyin/expire_tokens", timeout=10)
    again = list(dy.fetch_orders(NOW - timedelta(hours=1), NOW))
    after = requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=10).json()["requests"]
    assert [o["order_id"] for p in again for o in p] == [o["order_id"] for p in first for o in p]
    assert after["tokens_issued"] == before["tokens_issued"] + 1


def test_a_partial_shipment_is_one_package_and_a_correction_names_its_package(sandbox) -> None:
    """Part of an order: order.logisticsAddSinglePack (a replay ships nothing again); the rest: the whole
    order's order.logisticsAdd; a correction on an order of two packages: order.logisticsEditByPack."""
    dy = connector(sandbox)
    renderer, world = sandbox.app.state.renderer, sandbox.world
    states = [world.state(i, world.now_ts()) for i in world.orders_visible(world.now())]
    order = next(
        o
        for o in (renderer.render(s) for s in states if s is not None)
        if o["order_status"] == 2 and sum(s["item_num"] for s in o["sku_order_list"]) >= 2
    )
    first = order["sku_order_list"][0]

    def push(lines: list[tuple[str, int]], number: str, carrier: str = "顺丰", previous: str | None = None):
        chosen = tuple(ShipmentLine(line, quantity) for line, quantity in lines)
        shipment = ShipmentPush(
            order["order_id"], f"k-{number}", carrier, number, chosen, NOW, False, previous
        )
        return dy.push_shipment(shipment)

    calls = sandbox.app.state.calls
    assert push([(first["order_id"], 1)], "SF3000000001").status == "pushed"
    assert push([(first["order_id"], 1)], "SF3000000001").status == "already_done"
    packs_sent = calls["order.logisticsAddSinglePack"]
    too_many = push([(first["order_id"], 999)], "SF3000000009")
    assert too_many.status == "rejected" and "still open" in too_many.detail
    assert calls["order.logisticsAddSinglePack"] == packs_sent  # refused before anything was sent

    shipped = dy.get_order(order["order_id"])
    assert [(p["tracking_no"], p["company"]) for p in shipped["logistics_info"]] == [
        ("SF3000000001", "shunfeng")
    ]
    rest = [
        (s["order_id"], s["item_num"] - (s["order_id"] == first["order_id"])) for s in order["sku_order_list"]
    ]
    assert push([r for r in rest if r[1]], "SF3000000002").status == "pushed"
    assert calls["order.logisticsAdd"] >= 1 and dy.get_order(order["order_id"])["order_status"] == 3

    fixed = push([(first["order_id"], 1)], "YT4000000001", "YTO", previous="SF3000000001")
    assert fixed.status == "pushed" and fixed.extra == {
        "corrected": "true",
        "previous_tracking_number": "SF3000000001",
    }
    assert calls["order.logisticsEditByPack"] == 1
    numbers = [p["tracking_no"] for p in dy.get_order(order["order_id"])["logistics_info"]]
    assert numbers == ["YT4000000001", "SF3000000002"]


def test_stock_is_set_outright_and_read_back(sandbox) -> None:
    dy = connector(sandbox)
    variant = sandbox.world.catalog.variants[0]
    listing = variant.listing("douyin")
    push = StockPush(listing.sku or None, str(listing.product_id), str(listing.variant_id), 17)
    assert dy.set_stock(push).status == "pushed"
    assert dy.listed_stock(push) == 17
    assert dy.set_stock(StockPush(None, "x", "y", 1)).status == "rejected"


EXPECTED = {
    "order_searchList_docs_example.json": {
        "external_id": "4781320682406083640",
        "created_at": "2021-04-02T09:23:33Z",
        "payment_status": "paid",
        "fulfillment_status": "fulfilled",
        "cancelled": False,
        "totals": {
            "subtotal": "4.90",
            "discount": "-2.90",
            "shipping": "0.10",
            "tax": "0.00",
            "total": "5.00",
            "refunded": "0.00",
        },
        "line": ("4781320682406083640", "djfafj", "3473196049974326300", "3254535", 2, "1.00", "5.00", 2, 0),
        "address": ("张三", "12345678911", "北京市", "市辖区", "海淀区", "中关村街道 丹棱街1号"),
    },
    "order_searchList_agiso_refunded_after_shipping.json": {
        "external_id": "6936476692437472563",
        "created_at": "2024-11-18T07:55:51Z",
        "payment_status": "refunded",
        "fulfillment_status": "fulfilled",
        "cancelled": False,  # closed after it shipped: a return, not a cancellation
        "totals": {
            "subtotal": "0.01",
            "discount": "0.00",
            "shipping": "0.00",
            "tax": "0.00",
            "total": "0.01",
            "refunded": "0.01",
        },
        "line": (
            "6936476692437472563",
            "112233",
            "3660207428038974464",
            "3410716076201730",
            1,
            "0.01",
            "0.01",
            1,
            1,
        ),
        "address": (None, None, "福建省", "厦门市", "思明区", "莲前街道"),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_example_payloads_map_to_the_expected_order(name: str) -> None:
    want = EXPECTED[name]
    [payload] = get_platform("douyin").unwrap(json.loads((FIXTURES / name).read_text()))
    landed = get_platform("douyin").prepare(payload)
    assert isinstance(landed, Landed), landed
    order = landed.canonical.to_json()
    for key in ("external_id", "created_at", "payment_status", "fulfillment_status", "cancelled", "totals"):
        assert order[key] == want[key], key
    [line] = order["lines"]
    assert (
        line["external_line_id"],
        line["sku"],
        line["channel_product_id"],
        line["channel_variant_id"],
        line["quantity"],
        line["unit_price"],
        line["line_total"],
        line["shipped_quantity"],
        line["refunded_quantity"],
    ) == want["line"]
    address = order["shipping_address"]
    assert (
        address["name"],
        address["phone"],
        address["province"],
        address["city"],
        address["district"],
        address["address1"],
    ) == want["address"]
    assert address["country_code"] == "CN" and order["currency"] == "CNY"


def test_channelhub_map_prints_the_published_examples() -> None:
    for name in sorted(EXPECTED):
        done = subprocess.run(
            [sys.executable, "-m", "channelhub.cli", "map", "--platform", "douyin", str(FIXTURES / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        [order] = json.loads(done.stdout)
        assert order["platform"] == "douyin" and order["external_id"] == EXPECTED[name]["external_id"]
