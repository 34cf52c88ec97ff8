"""Shipments and stock pushed to the Youzan sandbox over real HTTP: whole and partial shipments by
sub-order, idempotent retries, Youzan's refusals, tracking updates, token refresh, 5xx safety, stock set
and read-back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests

from connectors.errors import TransientError
from connectors.http import RetryPolicy
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from platforms.youzan.connector import YouzanConnector
from platforms.youzan.mapping import map_order
from sandbox import youzan as sandbox_youzan
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from sandbox.world import OrderState

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FAST = RetryPolicy(
    max_attempts=3,
    malformed_attempts=2,
    rate_limit_attempts=3,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_default=0.01,
)


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "youzan", seed=33, start=NOW - timedelta(days=2), interval=600, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


@pytest.fixture(scope="module")
def orders(shop) -> Iterator[OrderState]:
    """Paid orders waiting to ship, several lines, nothing shipped or refunded: one per test that ships."""
    renderer = shop.app.state.renderer

    def waiting(index: int) -> OrderState | None:
        state = shop.world.state(index, NOW)
        if state is None or state.cancelled or state.fulfillments or state.refunds:
            return None
        if renderer.paid_ts(state) is None or len(state.order.lines) < 2:
            return None
        return state

    found = (waiting(i) for i in reversed(shop.world.orders_visible(NOW)))
    return (state for state in found if state is not None)


@pytest.fixture
def connector(shop) -> YouzanConnector:
    return connect(shop)


def connect(shop) -> YouzanConnector:
    return YouzanConnector.from_connection(
        shop.base_url,
        client_id=sandbox_youzan.SANDBOX_LOGIN,
        client_secret=shop.access_token,
        kdt_id=sandbox_youzan.SANDBOX_KDT_ID,
        retry=FAST,
        requests_per_second=1000.0,
    )


def tid(shop, state: OrderState) -> str:
    return shop.app.state.renderer.tid(state.index)


def lines_of(shop, state: OrderState, which: range | list[int] | None = None) -> tuple[ShipmentLine, ...]:
    renderer = shop.app.state.renderer
    chosen = range(len(state.order.lines)) if which is None else which
    return tuple(ShipmentLine(renderer.oid(state.index, i), state.order.lines[i].quantity) for i in chosen)


def shipment(shop, state: OrderState, carrier: str, waybill: str, which=None, **changes) -> ShipmentPush:
    lines = lines_of(shop, state, which)
    return ShipmentPush(
        external_order_id=changes.pop("external_order_id", tid(shop, state)),
        shipment_key=f"hub-{state.index}-{waybill}",
        carrier=carrier,
        tracking_number=waybill,
        lines=changes.pop("lines", lines),
        shipped_at=NOW,
        completes_order=which is None,
    )


def pushed_events(shop, state: OrderState) -> int:
    return len(shop.world.overlay.events_for(state.index))


def pulled(connector: YouzanConnector, wanted: str):
    """The order as the next incremental pull maps it."""
    for page in connector.fetch_orders(NOW - timedelta(minutes=5), NOW + timedelta(minutes=1)):
        for record in page:
            if record["full_order_info"]["order_info"]["tid"] == wanted:
                return map_order(record)
    raise AssertionError(f"{wanted} not in the pull")


def test_a_full_shipment_ships_every_sub_order_with_the_carrier_express_id(shop, orders, connector) -> None:
    state = next(orders)
    result = connector.push_shipment(shipment(shop, state, "SF", "SF1234567890123"))
    assert result.status == "pushed", result.detail
    trade = connector.get_order(tid(shop, state))
    assert trade["full_order_info"]["order_info"]["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert trade["full_order_info"]["order_info"]["consign_time"]
    [delivery] = trade["delivery_order"]
    assert {o["oid"] for o in delivery["oids"]} == {line.external_line_id for line in lines_of(shop, state)}
    assert delivery["express_type"] == 1  # pushed through the API
    express = delivery["dists"][0]["express_info"]
    assert express == {"express_id": sandbox_youzan.EXPRESS_IDS["顺丰速运"], "express_no": "SF1234567890123"}
    assert shop.world.state(state.index, NOW).fulfillment_status == "fulfilled"


def test_a_partial_shipment_then_the_rest_show_in_the_next_pull(shop, orders, connector) -> None:
    state = next(orders)
    first = connector.push_shipment(shipment(shop, state, "yto", "YT7000000000001", which=[0]))
    assert first.status == "pushed", first.detail
    order = pulled(connector, tid(shop, state))
    assert order.fulfillment_status == "partial"
    assert [line.shipped_quantity for line in order.lines] == [state.order.lines[0].quantity] + [0] * (
        len(state.order.lines) - 1
    )

    rest = range(1, len(state.order.lines))
    second = connector.push_shipment(shipment(shop, state, "ZTO", "ZT7000000000002", which=rest))
    assert second.status == "pushed", second.detail
    order = pulled(connector, tid(shop, state))
    assert order.fulfillment_status == "fulfilled"
    assert [line.shipped_quantity for line in order.lines] == [line.quantity for line in state.order.lines]
    waybills = {
        dist["express_info"]["express_no"]
        for delivery in connector.get_order(tid(shop, state))["delivery_order"]
        for dist in delivery["dists"]
    }
    assert waybills == {"YT7000000000001", "ZT7000000000002"}


def test_retrying_the_same_push_is_already_done_and_records_nothing_twice(shop, orders, connector) -> None:
    state = next(orders)
    push = shipment(shop, state, "STO", "ST0000000000777")
    assert connector.push_shipment(push).status == "pushed"
    events = pushed_events(shop, state)
    confirms = shop.app.state.calls["youzan.logistics.online.confirm"]
    again = connect(shop).push_shipment(push)  # a fresh worker, as after a crash
    assert again.status == "already_done", again.detail
    assert pushed_events(shop, state) == events
    assert shop.app.state.calls["youzan.logistics.online.confirm"] == confirms  # decided by reading first


def test_shipping_shipped_sub_orders_with_another_waybill_is_youzans_already_shipped(
    shop, orders, connector
) -> None:
    state = next(orders)
    assert connector.push_shipment(shipment(shop, state, "SF", "SF0000000000001")).status == "pushed"
    events = pushed_events(shop, state)
    result = connector.push_shipment(shipment(shop, state, "SF", "SF0000000000002"))
    assert result.status == "rejected"
    assert result.detail.startswith("Youzan 102570007:") and "已发货" in result.detail
    assert pushed_events(shop, state) == events


def test_more_or_fewer_units_than_a_sub_order_holds_are_rejected_before_any_write(
    shop, orders, connector
) -> None:
    state = next(s for s in orders if s.order.lines[0].quantity > 1)
    confirms = shop.app.state.calls.get("youzan.logistics.online.confirm", 0)
    oid = shop.app.state.renderer.oid(state.index, 0)
    ordered = state.order.lines[0].quantity
    over = connector.push_shipment(
        shipment(shop, state, "SF", "SF0000000000100", lines=(ShipmentLine(oid, ordered + 1),))
    )
    assert over.status == "rejected" and f"only {ordered} ordered" in over.detail
    foreign = connector.push_shipment(
        shipment(shop, state, "SF", "SF0000000000100", lines=(ShipmentLine("123", 1),))
    )
    assert foreign.status == "rejected" and "not a sub-order" in foreign.detail
    part = connector.push_shipment(
        shipment(shop, state, "SF", "SF0000000000100", lines=(ShipmentLine(oid, ordered - 1),))
    )
    assert part.status == "rejected" and "whole sub-orders" in part.detail
    assert shop.app.state.calls.get("youzan.logistics.online.confirm", 0) == confirms
    assert pushed_events(shop, state) == 0


def test_an_unknown_carrier_is_rejected_without_a_push(shop, orders, connector) -> None:
    state = next(orders)
    result = connector.push_shipment(shipment(shop, state, "Acme Freight", "AF0000000000001"))
    assert result.status == "rejected" and "Acme Freight" in result.detail and "express id" in result.detail
    assert pushed_events(shop, state) == 0


def test_youzan_refuses_an_unknown_express_id_and_a_bad_waybill(shop, orders, connector) -> None:
    state = next(orders)
    carrier_as_id = connector.push_shipment(shipment(shop, state, "999", "SF0000000000200"))
    assert carrier_as_id.status == "rejected" and "express id" in carrier_as_id.detail
    bad = connector.push_shipment(shipment(shop, state, "SF", "SF 12"))
    assert bad.status == "rejected" and bad.detail.startswith("Youzan 105000003:")
    assert pushed_events(shop, state) == 0


def test_a_cancelled_order_is_rejected_with_youzans_words(shop, connector) -> None:
    cancelled = next(
        s
        for i in reversed(shop.world.orders_visible(NOW))
        if (s := shop.world.state(i, NOW)) is not None and s.cancelled and not s.fulfillments
    )
    result = connector.push_shipment(shipment(shop, cancelled, "SF", "SF0000000000300"))
    assert result.status == "rejected"
    assert result.detail.startswith("Youzan 102570020:") and "关闭" in result.detail
    assert pushed_events(shop, cancelled) == 0


def test_an_unknown_order_is_rejected(shop, orders, connector) -> None:
    state = next(orders)
    result = connector.push_shipment(
        shipment(shop, state, "SF", "SF0000000000400", external_order_id="E20261121090000999999999")
    )
    assert result.status == "rejected" and result.detail.startswith("Youzan 106100110:")


def test_a_corrected_waybill_goes_through_online_update(shop, orders, connector) -> None:
    state = next(orders)
    first = shipment(shop, state, "YTO", "YT0000000000500")
    assert connector.push_shipment(first).status == "pushed"
    confirms = shop.app.state.calls["youzan.logistics.online.confirm"]
    [before] = connector.get_order(tid(shop, state))["delivery_order"]
    corrected = replace(
        first, carrier="JD", tracking_number="JD0000000000501", previous_tracking_number="YT0000000000500"
    )

    result = connector.push_shipment(corrected)

    assert result.status == "pushed", result.detail
    assert result.extra["action"] == "update_tracking"
    assert result.extra["previous_tracking_number"] == "YT0000000000500"
    dist_id = before["dists"][-1]["dist_id"]
    assert result.platform_ref == dist_id
    assert shop.app.state.tracking_updates[-1] == {
        "tid": tid(shop, state),
        "dist_id": dist_id,
        "previous_express_no": "YT0000000000500",
        "express_id": sandbox_youzan.EXPRESS_IDS["京东快递"],
        "express_no": "JD0000000000501",
    }
    [delivery] = connector.get_order(tid(shop, state))["delivery_order"]
    assert delivery["dists"][-1]["express_info"] == {
        "express_id": sandbox_youzan.EXPRESS_IDS["京东快递"],
        "express_no": "JD0000000000501",
    }
    updates = len(shop.app.state.tracking_updates)
    again = connect(shop).push_shipment(corrected)  # a retry, as after a crash
    assert again.status == "already_done"
    assert len(shop.app.state.tracking_updates) == updates
    assert shop.app.state.calls["youzan.logistics.online.confirm"] == confirms  # never shipped twice
    assert len(shop.world.state(state.index, NOW).fulfillments) == 1  # re-labelled, not shipped twice
    order = pulled(connector, tid(shop, state))
    assert order.fulfillment_status == "fulfilled"


def test_a_correction_whose_first_waybill_never_reached_youzan_ships_as_new(shop, orders, connector) -> None:
    state = next(orders)
    push = replace(shipment(shop, state, "SF", "SF0000000000510"), previous_tracking_number="SF0000000000509")
    updates = len(shop.app.state.tracking_updates)
    result = connector.push_shipment(push)
    assert result.status == "pushed" and "action" not in result.extra, result.detail
    assert len(shop.app.state.tracking_updates) == updates
    [delivery] = connector.get_order(tid(shop, state))["delivery_order"]
    assert delivery["dists"][0]["express_info"]["express_no"] == "SF0000000000510"


def test_youzan_changes_a_waybill_only_once_the_whole_order_shipped(shop, orders, connector) -> None:
    state = next(orders)
    part = shipment(shop, state, "ZTO", "ZT0000000000520", which=[0])
    assert connector.push_shipment(part).status == "pushed"
    corrected = replace(part, tracking_number="ZT0000000000521", previous_tracking_number="ZT0000000000520")
    result = connector.push_shipment(corrected)
    assert result.status == "rejected"
    assert "ZT0000000000520 not changed" in result.detail
    assert f"Youzan {sandbox_youzan.NOT_ALL_SHIPPED}:" in result.detail
    [delivery] = connector.get_order(tid(shop, state))["delivery_order"]
    assert delivery["dists"][-1]["express_info"]["express_no"] == "ZT0000000000520"


def test_a_push_after_the_token_expired_refreshes_once_and_succeeds(shop, orders) -> None:
    connector = connect(shop)
    connector.express_ids()  # a token is held
    state = next(orders)
    shop.app.state.revoke_tokens()
    result = connector.push_shipment(shipment(shop, state, "EMS", "EM000000000CN"))
    assert result.status == "pushed", result.detail
    assert connector.client.stats.token_refreshes == 1
    assert shop.world.state(state.index, NOW).fulfillment_status == "fulfilled"


def fail_next(shop, method: str, *, after_commit: bool, count: int = 1) -> None:
    answer = requests.post(
        f"{shop.base_url}/_sandbox/youzan/fail_next",
        json={"method": method, "count": count, "after_commit": after_commit},
        timeout=5,
    )
    answer.raise_for_status()


def test_a_5xx_on_the_shipment_call_is_not_replayed(shop, orders, connector) -> None:
    state = next(orders)
    push = shipment(shop, state, "SF", "SF0000000000600")
    fail_next(shop, "youzan.logistics.online.confirm", after_commit=False)
    with pytest.raises(TransientError):
        connector.push_shipment(push)  # a replay would have succeeded: the fault fails one call only
    assert connector.client.stats.retries == 0 and pushed_events(shop, state) == 0
    assert connector.push_shipment(push).status == "pushed"


def test_a_lost_answer_then_a_retry_is_already_done(shop, orders, connector) -> None:
    state = next(orders)
    push = shipment(shop, state, "SF", "SF0000000000700")
    fail_next(shop, "youzan.logistics.online.confirm", after_commit=True)
    with pytest.raises(TransientError):
        connector.push_shipment(push)
    assert pushed_events(shop, state) == 1  # Youzan shipped; the answer never came back
    assert connector.push_shipment(push).status == "already_done"
    assert pushed_events(shop, state) == 1


def youzan_listing(shop, sku: str):
    return shop.world.catalog.by_sku(sku).listing("youzan")


def test_stock_is_set_then_read_back(shop, connector) -> None:
    variant = shop.world.catalog.by_sku("HOODIE-NAVY-L")
    listing = variant.listing("youzan")
    push = StockPush(variant.sku, str(listing.product_id), str(listing.variant_id), 17)
    result = connector.set_stock(push)
    assert result.status == "pushed", result.detail
    assert connector.get_stock(str(listing.product_id), str(listing.variant_id)) == 17
    assert shop.world.overlay.stock_levels[("youzan", variant.index, 0)] == 17
    sibling = shop.world.catalog.by_sku("HOODIE-GREY-M")
    assert connector.get_stock(str(listing.product_id), str(sibling.listing("youzan").variant_id)) == (
        sibling.opening_stock
    )


def test_a_single_spec_item_is_set_without_a_sku_id(shop, connector) -> None:
    tote = shop.world.catalog.by_sku("TOTE")
    item_id = str(tote.listing("youzan").product_id)
    assert connector.set_stock(StockPush("TOTE", item_id, None, 5)).status == "pushed"
    assert connector.get_stock(item_id) == 5


def test_a_multi_spec_item_without_a_sku_id_is_youzans_refusal(shop, connector) -> None:
    item_id = str(youzan_listing(shop, "MUG-WHITE").product_id)
    before = len(shop.world.overlay.stock_history)
    result = connector.set_stock(StockPush("MUG-WHITE", item_id, None, 3))
    assert result.status == "rejected" and result.detail.startswith("Youzan 141500103:")
    assert len(shop.world.overlay.stock_history) == before


def test_without_compare_and_set_on_youzan_expected_current_is_reported_not_enforced(shop, connector) -> None:
    listing = youzan_listing(shop, "BEANIE-RED")
    item_id, sku_id = str(listing.product_id), str(listing.variant_id)
    assert connector.set_stock(StockPush("BEANIE-RED", item_id, sku_id, 40)).status == "pushed"
    # Youzan decrements stock on every sale, so a level other than the last push is normal there.
    result = connector.set_stock(StockPush("BEANIE-RED", item_id, sku_id, 10, expected_current=39))
    assert result.status == "pushed" and result.extra == {"compare_and_set": "unsupported"}
    assert "no compare-and-set" in result.detail
    assert connector.get_stock(item_id, sku_id) == 10


def test_a_5xx_on_a_stock_set_is_retried_because_a_full_set_is_safe_to_replay(shop, connector) -> None:
    listing = youzan_listing(shop, "SOCKS-SM")
    fail_next(shop, "youzan.item.quantity.update", after_commit=True)
    result = connector.set_stock(StockPush("SOCKS-SM", str(listing.product_id), str(listing.variant_id), 8))
    assert result.status == "pushed"
    assert connector.client.stats.retries == 1
    assert connector.get_stock(str(listing.product_id), str(listing.variant_id)) == 8


def test_the_sandbox_confirm_without_oids_ships_all_and_refuses_a_list_of_oids(shop, orders) -> None:
    state = next(orders)
    token = requests.post(
        f"{shop.base_url}/auth/token",
        json={
            "client_id": sandbox_youzan.SANDBOX_LOGIN,
            "client_secret": shop.access_token,
            "authorize_type": "silent",
            "grant_id": sandbox_youzan.SANDBOX_KDT_ID,
        },
        timeout=5,
    ).json()["data"]["access_token"]
    url = f"{shop.base_url}/api/youzan.logistics.online.confirm/3.0.0?access_token={token}"
    body = {"tid": tid(shop, state), "out_stype": "7", "out_sid": "SF0000000000800"}
    as_list = requests.post(
        url, json={**body, "oids": [lines_of(shop, state)[0].external_line_id]}, timeout=5
    )
    assert as_list.json()["success"] is False and as_list.json()["code"] == 5000
    answer = requests.post(url, json=body, timeout=5).json()
    assert answer["success"] is True and answer["data"] == {"is_success": True}
    assert shop.world.state(state.index, NOW).fulfillment_status == "fulfilled"
    unknown = requests.post(url, json={**body, "tid": "E20261121090000999999999"}, timeout=5).json()
    assert unknown["code"] == 105000016 and unknown["success"] is False


def test_sub_orders_refunded_before_shipping(shop, connector) -> None:
    """A refunded sub-order has nothing to ship (Youzan's 102570020); a partly refunded one ships its rest."""
    with_removed = [
        s
        for i in reversed(shop.world.orders_visible(NOW))
        if (s := shop.world.state(i, NOW)) is not None
        and not s.cancelled
        and not s.fulfillments
        and any(s.removed)
    ]
    whole = next(
        s for s in with_removed if any(s.removed[i] == ln.quantity for i, ln in enumerate(s.order.lines))
    )
    gone = next(i for i, line in enumerate(whole.order.lines) if whole.removed[i] == line.quantity)
    refused = connector.push_shipment(shipment(shop, whole, "SF", "SF0000000000900", which=[gone]))
    assert refused.status == "rejected" and refused.detail.startswith("Youzan 102570020:")
    assert pushed_events(shop, whole) == 0

    partly = next(
        s for s in with_removed if any(0 < s.removed[i] < ln.quantity for i, ln in enumerate(s.order.lines))
    )
    lines = tuple(
        ShipmentLine(shop.app.state.renderer.oid(partly.index, i), line.quantity - partly.removed[i])
        for i, line in enumerate(partly.order.lines)
    )
    result = connector.push_shipment(shipment(shop, partly, "SF", "SF0000000000901", lines=lines))
    assert result.status == "pushed", result.detail
    order = pulled(connector, tid(shop, partly))
    assert order.fulfillment_status == "fulfilled"
    assert [line.shipped_quantity for line in order.lines] == [line.quantity for line in lines]


def test_pushes_read_the_3x_envelope_of_the_3_0_0_methods(shop, orders) -> None:
    """Youzan's 3.0.0 methods may answer ``{"response": ...}`` / ``{"error_response": ...}`` instead of the
    4.x ``data`` envelope: carriers, shipments, corrections, stock sets and reads all understand both."""
    state = next(orders)
    shop.app.state.legacy_envelope = True
    try:
        connector = connect(shop)
        shipped = connector.push_shipment(shipment(shop, state, "SF", "SF0000000000530"))
        corrected = connector.push_shipment(
            replace(
                shipment(shop, state, "SF", "SF0000000000531"), previous_tracking_number="SF0000000000530"
            )
        )
        tote = shop.world.catalog.by_sku("TOTE")
        item_id = str(tote.listing("youzan").product_id)
        stock = connector.set_stock(StockPush("TOTE", item_id, None, 6))
        level = connector.get_stock(item_id)
        refused = connector.set_stock(
            StockPush("MUG-WHITE", str(youzan_listing(shop, "MUG-WHITE").product_id), None, 3)
        )
    finally:
        shop.app.state.legacy_envelope = False
    assert shipped.status == "pushed", shipped.detail
    assert corrected.status == "pushed" and corrected.extra["action"] == "update_tracking", corrected.detail
    assert stock.status == "pushed" and level == 6
    assert refused.status == "rejected" and refused.detail.startswith("Youzan 141500103:")
