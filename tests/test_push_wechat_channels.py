"""Shipments and stock pushed to the WeChat Channels shop sandbox over real HTTP (tokens, faults and all).

The world's clock is frozen, so nothing ships on its own: every parcel an order shows was pushed here. Orders
are picked from the world by their rendered status; push lines come from the real pull (``get_order`` +
``platforms.wechat_channels.mapping.map_order``), the way the hub would build them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from canonical.order import CanonicalOrder
from connectors.errors import TransientError
from connectors.http import RetryPolicy
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from platforms.wechat_channels.connector import WeChatChannelsConnector
from platforms.wechat_channels.mapping import map_order
from platforms.wechat_channels.pushes import delivery_id_for
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.wechat_channels import DELIVERY_COMPANIES, SANDBOX_LOGIN

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SECRET = "wx-app-secret-5c0ffee5c0ffee5c0ffee"
FAST = RetryPolicy(
    max_attempts=4,
    malformed_attempts=3,
    rate_limit_attempts=10,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_default=0.01,
    retry_after_max=0.01,  # 45011 says "the next minute": the tests do not wait it out
)


class CountingSession(requests.Session):
    """A real session that counts requests per API path and can arm the sandbox's faults just before a
    given call goes out (so the calls before it, like the order read, stay healthy)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}
        self.before: dict[str, Any] = {}

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.calls[path] = self.calls.get(path, 0) + 1
        if path in self.before:
            self.before[path]()
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "wechat_channels",
        seed=11,
        access_token=SECRET,
        clock=Clock.frozen(NOW),
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=10),
    ) as running:
        yield running


def connector_for(sb: RunningSandbox, session: requests.Session | None = None) -> WeChatChannelsConnector:
    return WeChatChannelsConnector.from_connection(
        sb.base_url, SANDBOX_LOGIN, SECRET, retry=FAST, session=session
    )


def find_order(sb: RunningSandbox, status: int, *, min_products: int = 1, min_units: int = 1) -> str:
    renderer = sb.app.state.renderer
    for index in reversed(sb.world.orders_visible()):
        state = sb.world.state(index)
        if state is None or renderer.status(state) != status:
            continue
        products = renderer.products(state)
        if len(products) >= min_products and sum(p.quantity for p in products) >= min_units:
            return renderer.order_id(index)
    raise AssertionError(f"the world has no order in status {status} with {min_products}+ products")


def pulled(connector: WeChatChannelsConnector, order_id: str) -> CanonicalOrder:
    return map_order(connector.get_order(order_id))


def shipment(
    order: CanonicalOrder,
    carrier: str,
    tracking: str,
    quantities: dict[str, int] | None = None,
    key: str = "s1",
) -> ShipmentPush:
    """A push of ``quantities`` per external line id (default: every unit not yet shipped)."""
    wanted = quantities or {
        line.external_line_id: line.quantity - line.shipped_quantity
        for line in order.lines
        if line.quantity > line.shipped_quantity
    }
    by_id = {line.external_line_id: line for line in order.lines}
    return ShipmentPush(
        external_order_id=order.external_id,
        shipment_key=key,
        carrier=carrier,
        tracking_number=tracking,
        lines=tuple(
            ShipmentLine(
                external_line_id=line_id,
                quantity=qty,
                channel_product_id=by_id[line_id].channel_product_id,
                channel_variant_id=by_id[line_id].channel_variant_id,
            )
            for line_id, qty in wanted.items()
        ),
        shipped_at=NOW,
        completes_order=quantities is None,
    )


def parcels(connector: WeChatChannelsConnector, order_id: str) -> list[dict[str, Any]]:
    return connector.get_order(order_id)["order_detail"]["delivery_info"]["delivery_product_info"]


def sandbox_state(sb: RunningSandbox) -> dict[str, Any]:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()


# -- carriers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        ("SF", "SF"),  # a listed code
        ("yunda", "YUNDA"),
        ("韵达", "YUNDA"),  # a listed name
        ("顺丰速运", "SF"),
        ("SF Express", "SF"),  # the table of names
        ("顺丰", "SF"),
        ("ZTO Express", "ZTO"),
        ("J&T Express", "JTSD"),
        ("Yunda Express", "YUNDA"),
        ("China Post", "EMS"),
        ("中国邮政速递物流", "EMS"),
        ("JD Logistics", "JD"),
        ("OTHER", "OTHER"),  # delivery/send takes it for carriers off the list
        ("YD", None),  # the old alias codes are not WeChat's
        ("YZPY", None),
        ("UPS", None),
        ("FedEx", None),
        ("", None),
    ],
)
def test_carrier_names_map_to_the_official_codes_on_the_live_list(carrier, expected):
    assert delivery_id_for(carrier, DELIVERY_COMPANIES) == expected


def test_a_carrier_missing_from_the_shops_list_is_not_mapped():
    assert delivery_id_for("SF Express", {"YTO": "圆通速递"}) is None
    assert delivery_id_for("圆通速递", {"YTO": "圆通速递"}) == "YTO"
    assert delivery_id_for("Fengwang", {"FWX": "Fengwang"}) == "FWX"  # a listed name the table does not know


def test_the_company_list_comes_from_the_current_endpoint_once_per_connector(shop):
    session = CountingSession()
    connector = connector_for(shop, session)
    assert connector.delivery_companies() == DELIVERY_COMPANIES
    connector.delivery_companies()
    assert session.calls == {
        "cgi-bin/stable_token": 1,
        "channels/ec/order/deliverycompanylist/new/get": 1,
    }


# -- shipments -----------------------------------------------------------------------------------------


def test_full_shipment_ships_the_order_and_the_next_pull_shows_it(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20, min_products=2)
    order = pulled(connector, order_id)
    assert order.fulfillment_status == "unfulfilled"

    result = connector.push_shipment(shipment(order, "SF Express", "SF1400000000001"))

    assert result.status == "pushed" and result.platform_ref == "SF1400000000001"
    raw = connector.get_order(order_id)
    assert raw["status"] == 30
    [parcel] = raw["order_detail"]["delivery_info"]["delivery_product_info"]
    assert parcel["delivery_id"] == "SF" and parcel["delivery_name"] == "顺丰速运"
    assert parcel["waybill_id"] == "SF1400000000001" and parcel["deliver_type"] == 1
    assert raw["order_detail"]["delivery_info"]["ship_done_time"] == int(NOW.timestamp())

    shop.world.clock.advance(timedelta(minutes=5))  # the next sync run, a little later
    pages = list(connector.fetch_orders(NOW - timedelta(minutes=1), NOW + timedelta(minutes=5)))
    [again] = [map_order(o) for page in pages for o in page if o["order_id"] == order_id]
    assert again.fulfillment_status == "fulfilled"
    assert [line.shipped_quantity for line in again.lines] == [line.quantity for line in again.lines]
    assert again.updated_at == NOW


def test_partial_shipment_then_the_rest(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20, min_products=2)
    order = pulled(connector, order_id)
    first, *rest = order.lines

    partial = connector.push_shipment(
        shipment(order, "YTO", "YT7000000000001", {first.external_line_id: first.quantity})
    )
    assert partial.status == "pushed"
    assert connector.get_order(order_id)["status"] == 21
    middle = pulled(connector, order_id)
    assert middle.fulfillment_status == "partial"
    assert [line.shipped_quantity for line in middle.lines] == [first.quantity] + [0] * len(rest)

    remainder = connector.push_shipment(shipment(middle, "中通", "ZT7500000000002", key="s2"))
    assert remainder.status == "pushed"
    assert connector.get_order(order_id)["status"] == 30
    shipped = parcels(connector, order_id)
    assert [(p["delivery_id"], p["waybill_id"]) for p in shipped] == [
        ("YTO", "YT7000000000001"),
        ("ZTO", "ZT7500000000002"),
    ]
    assert pulled(connector, order_id).fulfillment_status == "fulfilled"


def test_a_retried_push_is_already_done_and_records_nothing_twice(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20, min_products=2)
    order = pulled(connector, order_id)
    first = order.lines[0]
    push = shipment(order, "STO", "77300000000001", {first.external_line_id: first.quantity})

    assert connector.push_shipment(push).status == "pushed"
    retried = connector.push_shipment(push)  # a partial parcel: the platform itself would take it again

    assert retried.status == "already_done" and retried.platform_ref == "77300000000001"
    assert len(parcels(connector, order_id)) == 1
    assert sandbox_state(shop)["requests"]["deliveries"] == 1
    assert shop.world.overlay.summary()["pushed_fulfillments"] == 1
    assert pulled(connector, order_id).lines[0].shipped_quantity == first.quantity


def test_over_quantity_is_rejected_with_the_platforms_words(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20)
    order = pulled(connector, order_id)
    line = order.lines[0]

    result = connector.push_shipment(
        shipment(order, "SF", "SF1400000000009", {line.external_line_id: line.quantity + 1})
    )

    assert result.status == "rejected"
    assert "109000" in result.detail and "超过待发货数量" in result.detail
    assert parcels(connector, order_id) == []


def test_unknown_carrier_is_rejected_before_anything_is_sent(shop):
    session = CountingSession()
    connector = connector_for(shop, session)
    order = pulled(connector, find_order(shop, 20))

    result = connector.push_shipment(shipment(order, "UPS", "1Z999AA10123456784"))

    assert result.status == "rejected" and "'UPS'" in result.detail and "YUNDA" in result.detail
    assert "company list" in result.detail
    assert "channels/ec/order/delivery/send" not in session.calls


def test_the_platform_refuses_a_delivery_id_off_its_list(shop):
    connector = connector_for(shop)
    order = pulled(connector, find_order(shop, 20))
    line = order.lines[0]
    answer = requests.post(  # a valid token through the real token endpoint
        f"{shop.base_url}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": SANDBOX_LOGIN, "secret": SECRET},
        timeout=5,
    ).json()
    body = {
        "order_id": order.external_id,
        "delivery_list": [
            {
                "delivery_id": "YD",  # Yunda's code is YUNDA
                "waybill_id": "1Z999AA10123456784",
                "deliver_type": 1,
                "product_infos": [
                    {
                        "product_id": line.channel_product_id,
                        "sku_id": line.channel_variant_id,
                        "product_cnt": 1,
                    }
                ],
            }
        ],
    }
    refused = requests.post(
        f"{shop.base_url}/channels/ec/order/delivery/send",
        params={"access_token": answer["access_token"]},
        json=body,
        timeout=5,
    )
    assert refused.status_code == 200
    assert refused.json()["errcode"] == 606004 and "delivery_id不合法" in refused.json()["errmsg"]


def test_a_cancelled_order_is_rejected(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 200)
    order = pulled(connector, order_id)
    push = shipment(order, "SF", "SF1400000000077", {order.lines[0].external_line_id: 1})

    result = connector.push_shipment(push)

    assert result.status == "rejected" and "109000" in result.detail and "已取消" in result.detail
    assert sandbox_state(shop)["requests"]["deliveries"] == 0


def test_shipping_already_shipped_items_again_is_the_platforms_already_shipped(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20, min_products=2)
    order = pulled(connector, order_id)
    first = order.lines[0]
    only_first = {first.external_line_id: first.quantity}
    assert connector.push_shipment(shipment(order, "YUNDA", "4300000000001", only_first)).status == "pushed"

    result = connector.push_shipment(shipment(order, "YUNDA", "4300000000002", only_first, key="s2"))

    assert result.status == "rejected" and "109001" in result.detail and "已经发货" in result.detail
    assert len(parcels(connector, order_id)) == 1


def correction(push: ShipmentPush, carrier: str, tracking: str) -> ShipmentPush:
    return replace(
        push, carrier=carrier, tracking_number=tracking, previous_tracking_number=push.tracking_number
    )


def test_a_corrected_tracking_number_reaches_deliveryinfo_update(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20)
    first = shipment(pulled(connector, order_id), "SF", "SF1400000000100")
    assert connector.push_shipment(first).status == "pushed"

    fixed = correction(first, "JD", "JDVA00000000101")
    changed = connector.push_shipment(fixed)

    assert changed.status == "pushed" and changed.detail == "update_delivery"
    assert changed.extra["action"] == "update_tracking"
    assert changed.extra["previous_tracking_number"] == "SF1400000000100"
    assert changed.platform_ref == "JDVA00000000101" and changed.extra["replaced_delivery_id"] == "SF"
    [update] = shop.app.state.delivery_updates
    assert update["order_id"] == order_id
    assert update["old"] == ("SF", "SF1400000000100") and update["new"] == ("JD", "JDVA00000000101")
    [parcel] = parcels(connector, order_id)
    assert (parcel["delivery_id"], parcel["waybill_id"]) == ("JD", "JDVA00000000101")
    assert sandbox_state(shop)["requests"]["deliveries"] == 1  # the parcel was changed, not sent again

    again = connector.push_shipment(fixed)  # a retry of the correction: the new number is there
    assert again.status == "already_done" and again.extra["action"] == "update_tracking"
    assert len(shop.app.state.delivery_updates) == 1


def test_a_correction_changes_one_parcel_of_a_split_shipment(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20, min_products=2)
    order = pulled(connector, order_id)
    head = order.lines[0]
    one = shipment(order, "YTO", "YT7000000000001", {head.external_line_id: head.quantity})
    assert connector.push_shipment(one).status == "pushed"
    rest = shipment(pulled(connector, order_id), "ZTO", "ZT7500000000002", key="s2")
    assert connector.push_shipment(rest).status == "pushed"

    changed = connector.push_shipment(correction(rest, "STO", "77300000000003"))

    assert changed.status == "pushed" and changed.detail == "update_delivery"
    assert [(p["delivery_id"], p["waybill_id"]) for p in parcels(connector, order_id)] == [
        ("YTO", "YT7000000000001"),
        ("STO", "77300000000003"),
    ]
    assert pulled(connector, order_id).fulfillment_status == "fulfilled"


def test_a_previous_number_that_never_reached_wechat_is_pushed_as_a_new_parcel(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20)
    push = replace(
        shipment(pulled(connector, order_id), "SF", "SF1400000000200"),
        previous_tracking_number="SF1400000000199",
    )

    result = connector.push_shipment(push)

    assert result.status == "pushed" and result.detail == "send_delivery"
    assert [p["waybill_id"] for p in parcels(connector, order_id)] == ["SF1400000000200"]
    assert shop.app.state.delivery_updates == []


def test_corrections_stop_at_the_platforms_limit_and_a_bare_new_number_is_refused(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, 20)
    push = shipment(pulled(connector, order_id), "SF", "SF1400000000300")
    assert connector.push_shipment(push).status == "pushed"
    for n in range(1, 4):  # three changes while the order is not completed
        push = correction(push, "SF", f"SF140000000030{n}")
        assert connector.push_shipment(push).status == "pushed"

    refused = connector.push_shipment(correction(push, "SF", "SF1400000000309"))

    assert (
        refused.status == "rejected"
        and "606041" in refused.detail
        and "修改物流次数已达上限" in refused.detail
    )
    # without the previous number a new number for shipped units is a second parcel: the platform refuses it
    bare = connector.push_shipment(replace(push, tracking_number="SF1400000000310"))
    assert bare.status == "rejected" and "109001" in bare.detail
    assert [p["waybill_id"] for p in parcels(connector, order_id)] == ["SF1400000000303"]


def test_a_push_after_token_expiry_refreshes_once_and_succeeds(shop):
    connector = connector_for(shop)
    order = pulled(connector, find_order(shop, 20))
    issued = sandbox_state(shop)["wechat"]["tokens_issued"]
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"expire_tokens": True}, timeout=5)

    result = connector.push_shipment(shipment(order, "EMS", "EA000000001CN"))

    assert result.status == "pushed"
    assert connector.client.stats.token_refreshes == 1
    assert sandbox_state(shop)["wechat"]["tokens_issued"] == issued + 1
    assert sandbox_state(shop)["requests"]["deliveries"] == 1


def test_a_5xx_on_a_push_is_not_replayed_and_a_later_retry_lands_once(shop):
    session = CountingSession()
    connector = connector_for(shop, session)
    order_id = find_order(shop, 20)
    order = pulled(connector, order_id)
    push = shipment(order, "SF", "SF1400000000200")
    send = "channels/ec/order/delivery/send"
    session.before[send] = lambda: shop.faults.update(server_error_rate=1.0)

    with pytest.raises(TransientError):
        connector.push_shipment(push)
    assert session.calls[send] == 1  # a non-idempotent push: one attempt, no replay

    shop.faults.clear()
    session.before.clear()
    assert connector.push_shipment(push).status == "pushed"
    assert connector.push_shipment(push).status == "already_done"
    assert session.calls[send] == 2 and len(parcels(connector, order_id)) == 1


def test_a_push_answered_after_the_read_timeout_is_not_replayed_and_the_retry_finds_it(shop):
    """The platform records the parcel, then its answer comes too late (``Faults.timeout_rate``): a read
    timeout leaves it open whether the push landed, so it is not replayed; the next attempt reads the order
    and finds the parcel."""
    session = CountingSession()
    connector = WeChatChannelsConnector.from_connection(
        shop.base_url, SANDBOX_LOGIN, SECRET, retry=FAST, session=session, timeout=(5.0, 1.0)
    )
    order_id = find_order(shop, 20)
    push = shipment(pulled(connector, order_id), "SF", "SF1400000000300")
    send = "channels/ec/order/delivery/send"
    session.before[send] = lambda: shop.faults.update(timeout_rate=1.0, hang_seconds=2.0)

    with pytest.raises(TransientError, match="read timeout"):
        connector.push_shipment(push)
    assert session.calls[send] == 1

    shop.faults.clear()
    session.before.clear()
    assert connector.push_shipment(push).status == "already_done"
    assert session.calls[send] == 1 and len(parcels(connector, order_id)) == 1


# -- stock ---------------------------------------------------------------------------------------------


def listing(sb: RunningSandbox, variant_index: int = 0) -> dict[str, str]:
    return sb.world.catalog.variants[variant_index].platform_ids("wechat_channels")


def test_stock_set_then_read_back(shop):
    connector = connector_for(shop)
    ids = listing(shop, 3)
    opening = shop.world.catalog.variants[3].opening_stock
    assert connector.get_stock(ids["product_id"], ids["variant_id"])["normal_stock_num"] == opening

    result = connector.set_stock(StockPush(ids["sku"] or None, ids["product_id"], ids["variant_id"], 17))

    assert result.status == "pushed" and result.platform_ref == f"{ids['product_id']}:{ids['variant_id']}"
    data = connector.get_stock(ids["product_id"], ids["variant_id"])
    assert data["normal_stock_num"] == 17 and data["total_stock_num"] == 17 and data["warehouse_stocks"] == []
    assert shop.world.overlay.stock_levels[("wechat_channels", 3, 0)] == 17


def test_regional_warehouse_stock_is_set_per_out_warehouse_id(shop):
    connector = connector_for(shop)
    ids = listing(shop, 4)
    push = StockPush(None, ids["product_id"], ids["variant_id"], 9, location_ref="wh-east-sh")

    assert connector.set_stock(push).status == "pushed"
    assert connector.set_stock(StockPush(None, ids["product_id"], ids["variant_id"], 30)).status == "pushed"

    data = connector.get_stock(ids["product_id"], ids["variant_id"])
    assert data["warehouse_stocks"] == [{"out_warehouse_id": "wh-east-sh", "num": 9}]
    assert data["normal_stock_num"] == 30 and data["total_stock_num"] == 39
    unknown = connector.set_stock(
        StockPush(None, ids["product_id"], ids["variant_id"], 1, location_ref="nope")
    )
    assert unknown.status == "rejected" and "warehouse not exist" in unknown.detail


def test_stock_has_no_compare_and_set_so_expected_current_is_not_enforced(shop):
    connector = connector_for(shop)
    ids = listing(shop, 5)
    stale = StockPush(None, ids["product_id"], ids["variant_id"], 12, expected_current=99_999)

    result = connector.set_stock(stale)

    assert result.status == "pushed" and "unsupported" in result.extra["compare_and_set"]
    assert connector.get_stock(ids["product_id"], ids["variant_id"])["normal_stock_num"] == 12


def test_stock_for_an_unknown_listing_is_rejected_with_the_platforms_words(shop):
    connector = connector_for(shop)
    ids = listing(shop, 0)

    result = connector.set_stock(StockPush(None, ids["product_id"], "1", 5))

    assert result.status == "rejected" and "product not exist" in result.detail
    no_ids = connector.set_stock(StockPush("TSHIRT-RED-M", None, None, 5))
    assert no_ids.status == "rejected" and "product_id and sku_id" in no_ids.detail


def test_a_stock_set_is_replayed_after_5xx_because_a_set_is_safe_to_repeat(shop):
    session = CountingSession()
    connector = connector_for(shop, session)
    ids = listing(shop, 6)
    shop.faults.update(server_error_rate=1.0)

    with pytest.raises(TransientError):
        connector.set_stock(StockPush(None, ids["product_id"], ids["variant_id"], 3))

    assert session.calls["channels/ec/product/stock/update"] == FAST.max_attempts
