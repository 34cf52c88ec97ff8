"""Shipment and stock pushes: ShopifyConnector against the Shopify sandbox over real HTTP.

The world's clock is frozen at NOW, so a pushed fulfillment is stamped NOW and bumps the order's updated_at to
NOW. Assertions are on what the channel ended up with: the order as Shopify serves it, its fulfillment
orders, the inventory levels, and the world's overlay (what the sandbox recorded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.errors import ApiError, TransientError
from connectors.http import RetryPolicy
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from platforms.shopify.connector import ShopifyConnector
from platforms.shopify.mapping import map_order
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.shopify import API_PREFIX, INVALID_QUANTITY, SHOP_LOCATION_ID
from sandbox.world import OrderState, Variant

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = "shpat_test_push_0123456789abcdef0123"
FAST = RetryPolicy(
    max_attempts=4, backoff_initial=0.01, backoff_max=0.02, backoff_jitter=0.005, retry_after_max=0.05
)
CLOSED_FO = re.compile(r"^Fulfillment order \d+ has an unfulfillable status= closed\.$")


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "shopify",
        seed=3,
        access_token=TOKEN,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=5),
        clock=Clock.frozen(NOW),
    ) as running:
        yield running


def connector_for(sb: RunningSandbox, **options: Any) -> ShopifyConnector:
    options.setdefault("retry", FAST)
    return ShopifyConnector.from_connection(sb.base_url, sb.access_token, **options)


def find_order(sb: RunningSandbox, wanted: Callable[[OrderState], bool]) -> OrderState:
    now = sb.world.now_ts()
    for index in reversed(sb.world.orders_visible()):  # recent orders: not shipped by the world yet
        state = sb.world.state(index, now)
        if state is not None and wanted(state):
            return state
    raise AssertionError("the world has no such order")


def unshipped(state: OrderState) -> bool:
    return not state.cancelled and not any(state.shipped) and not any(state.removed)


def shipment(
    sb: RunningSandbox, state: OrderState, lines: list[tuple[int, int]], number: str, carrier: str = "UPS"
) -> ShipmentPush:
    renderer = sb.app.state.renderer
    return ShipmentPush(
        external_order_id=str(renderer.order_id(state.index)),
        shipment_key=f"shp-{state.index}-{number}",
        carrier=carrier,
        tracking_number=number,
        lines=tuple(
            ShipmentLine(str(renderer.line_item_id(state.index, line)), quantity) for line, quantity in lines
        ),
        shipped_at=NOW,
        completes_order=False,
    )


def every_line(state: OrderState) -> list[tuple[int, int]]:
    return [(line.index, line.quantity) for line in state.order.lines]


def pushed_count(sb: RunningSandbox) -> int:
    return sb.world.overlay.summary()["pushed_fulfillments"]


def order_of(connector: ShopifyConnector, push: ShipmentPush) -> dict[str, Any]:
    return connector.get_order(push.external_order_id)


def fulfillment_orders(connector: ShopifyConnector, push: ShipmentPush) -> list[dict[str, Any]]:
    return connector.get("fulfillment_orders", path_params={"order_id": push.external_order_id})


# --- shipments ----------------------------------------------------------------------------------------------


def test_full_shipment_creates_a_fulfillment_with_tracking_and_closes_the_fulfillment_order(
    shop: RunningSandbox,
) -> None:
    state = find_order(shop, lambda s: unshipped(s) and len(s.order.lines) >= 2)
    connector = connector_for(shop)
    push = shipment(shop, state, every_line(state), "1Z999AA10123456784")

    result = connector.push_shipment(push)

    assert result.status == "pushed", result.detail
    order = order_of(connector, push)
    assert order["fulfillment_status"] == "fulfilled"
    [fulfillment] = order["fulfillments"]
    assert str(fulfillment["id"]) == result.platform_ref
    assert fulfillment["tracking_number"] == "1Z999AA10123456784"
    assert fulfillment["tracking_company"] == "UPS"
    assert "1Z999AA10123456784" in fulfillment["tracking_url"]
    assert {str(i["id"]): i["quantity"] for i in fulfillment["line_items"]} == {
        line.external_line_id: line.quantity for line in push.lines
    }
    assert all(item["fulfillable_quantity"] == 0 for item in order["line_items"])
    [fo] = fulfillment_orders(connector, push)
    assert fo["status"] == "closed" and all(item["fulfillable_quantity"] == 0 for item in fo["line_items"])
    assert pushed_count(shop) == 1


def test_partial_shipment_then_the_rest(shop: RunningSandbox) -> None:
    state = find_order(shop, lambda s: unshipped(s) and s.order.lines[0].quantity >= 2)
    connector = connector_for(shop)
    first_qty = state.order.lines[0].quantity
    first = shipment(shop, state, [(0, 1)], "9400111899223197428490", carrier="USPS")

    assert connector.push_shipment(first).status == "pushed"
    order = order_of(connector, first)
    assert order["fulfillment_status"] == "partial"
    [fo] = fulfillment_orders(connector, first)
    assert fo["status"] == "in_progress"
    assert fo["line_items"][0]["fulfillable_quantity"] == first_qty - 1

    rest = [(0, first_qty - 1)] + [(line.index, line.quantity) for line in state.order.lines[1:]]
    second = shipment(shop, state, rest, "1Z999AA10123456785")
    result = connector.push_shipment(second)

    assert result.status == "pushed", result.detail
    order = order_of(connector, second)
    assert order["fulfillment_status"] == "fulfilled"
    assert [f["tracking_number"] for f in order["fulfillments"]] == [
        "9400111899223197428490",
        "1Z999AA10123456785",
    ]
    assert [f["name"] for f in order["fulfillments"]] == [order["name"] + ".1", order["name"] + ".2"]
    assert fulfillment_orders(connector, second)[0]["status"] == "closed"
    assert pushed_count(shop) == 2


def test_a_retried_push_is_already_done_and_records_nothing_twice(shop: RunningSandbox) -> None:
    state = find_order(shop, unshipped)
    connector = connector_for(shop)
    push = shipment(shop, state, every_line(state), "1Z999AA10123456786")

    first = connector.push_shipment(push)
    again = connector.push_shipment(push)
    retried_elsewhere = connector_for(shop).push_shipment(push)  # e.g. another worker after a lost answer

    assert first.status == "pushed"
    assert again.status == retried_elsewhere.status == "already_done"
    assert again.platform_ref == first.platform_ref
    assert pushed_count(shop) == 1
    assert len(order_of(connector, push)["fulfillments"]) == 1
    assert connector.client.stats.status_counts[201] == 1  # one create only


def test_a_changed_tracking_number_updates_the_fulfillment(shop: RunningSandbox) -> None:
    state = find_order(shop, unshipped)
    connector = connector_for(shop)
    push = shipment(shop, state, every_line(state), "1Z999AA10123456787")
    created = connector.push_shipment(push)

    corrected = replace(push, tracking_number="SF1234567890123", carrier="SF")
    result = connector.push_shipment(corrected)

    assert result.status == "pushed", result.detail
    assert result.extra["action"] == "update_tracking"
    assert result.extra["previous_tracking_number"] == "1Z999AA10123456787"
    assert result.platform_ref == created.platform_ref
    [fulfillment] = order_of(connector, push)["fulfillments"]
    assert fulfillment["tracking_number"] == "SF1234567890123"
    assert fulfillment["tracking_company"] == "SF Express"
    assert "SF1234567890123" in fulfillment["tracking_url"]
    assert pushed_count(shop) == 1
    assert connector.push_shipment(corrected).status == "already_done"


def test_more_units_than_remain_are_rejected_in_shopifys_words(shop: RunningSandbox) -> None:
    state = find_order(shop, unshipped)
    connector = connector_for(shop)
    quantity = state.order.lines[0].quantity
    push = shipment(shop, state, [(0, quantity + 1)], "1Z999AA10123456788")

    result = connector.push_shipment(push)

    assert result.status == "rejected"
    assert result.detail == INVALID_QUANTITY == "Invalid fulfillment order line item quantity requested."
    assert result.extra["status"] == "422"
    assert pushed_count(shop) == 0
    assert order_of(connector, push)["fulfillments"] == []


def test_shipping_already_shipped_items_again_is_rejected(shop: RunningSandbox) -> None:
    state = find_order(shop, lambda s: unshipped(s) and len(s.order.lines) >= 2)
    connector = connector_for(shop)
    line0 = state.order.lines[0].quantity
    assert (
        connector.push_shipment(shipment(shop, state, [(0, line0)], "1Z999AA10123456789")).status == "pushed"
    )

    # Line 0 again, with the rest, under another number: the open fulfillment order has no unit of it left.
    again = connector.push_shipment(shipment(shop, state, every_line(state), "1Z999AA10123456790"))
    assert again.status == "rejected" and again.detail == INVALID_QUANTITY

    # Once everything shipped, the fulfillment order is closed: Shopify says so.
    rest = [(line.index, line.quantity) for line in state.order.lines[1:]]
    assert connector.push_shipment(shipment(shop, state, rest, "1Z999AA10123456791")).status == "pushed"
    closed = connector.push_shipment(shipment(shop, state, [(1, 1)], "1Z999AA10123456792"))
    assert closed.status == "rejected" and CLOSED_FO.match(closed.detail), closed.detail
    assert pushed_count(shop) == 2


def test_a_cancelled_order_is_rejected_because_its_fulfillment_order_is_closed(shop: RunningSandbox) -> None:
    state = find_order(shop, lambda s: s.cancelled)
    connector = connector_for(shop)
    push = shipment(shop, state, every_line(state), "1Z999AA10123456793")

    result = connector.push_shipment(push)

    assert result.status == "rejected"
    assert CLOSED_FO.match(result.detail), result.detail
    assert fulfillment_orders(connector, push)[0]["status"] == "closed"
    assert pushed_count(shop) == 0


def test_an_unknown_carrier_is_kept_as_given_without_a_link_and_an_unknown_line_is_refused(
    shop: RunningSandbox,
) -> None:
    # Shopify has no "unknown carrier" refusal: any company name is stored ("Other" carrier), with no link.
    state = find_order(shop, unshipped)
    connector = connector_for(shop)
    push = shipment(shop, state, every_line(state), "ACME-0001", carrier="Acme Couriers")

    result = connector.push_shipment(push)

    assert result.status == "pushed", result.detail
    [fulfillment] = order_of(connector, push)["fulfillments"]
    assert fulfillment["tracking_company"] == "Acme Couriers"
    assert fulfillment["tracking_url"] is None and fulfillment["tracking_urls"] == []

    stranger = replace(push, tracking_number="ACME-0002", lines=(ShipmentLine("123456789", 1),))
    refused = connector.push_shipment(stranger)
    assert refused.status == "rejected" and "line item 123456789 is not on Shopify order" in refused.detail


def test_the_next_order_pull_shows_the_shipped_quantities(shop: RunningSandbox) -> None:
    state = find_order(shop, lambda s: unshipped(s) and s.order.lines[0].quantity >= 2)
    connector = connector_for(shop)
    push = shipment(shop, state, [(0, 1)], "1Z999AA10123456794")
    assert connector.push_shipment(push).status == "pushed"

    pulled = [
        order
        for page in connector.fetch_orders(NOW - timedelta(minutes=1), NOW + timedelta(seconds=1))
        for order in page
    ]
    [payload] = [order for order in pulled if str(order["id"]) == push.external_order_id]
    canonical = map_order(payload)

    assert canonical.updated_at == NOW
    assert canonical.fulfillment_status == "partial"
    shipped = {line.external_line_id: line.shipped_quantity for line in canonical.lines}
    assert shipped[push.lines[0].external_line_id] == 1
    assert sum(shipped.values()) == 1


# --- stock --------------------------------------------------------------------------------------------------


def a_variant(sb: RunningSandbox) -> Variant:
    return sb.world.catalog.mapped_variants[0]


def stock_push(variant: Variant, quantity: int, expected: int | None = None) -> StockPush:
    listing = variant.listing("shopify")
    return StockPush(
        merchant_sku=variant.sku,
        channel_product_id=str(listing.product_id),
        channel_variant_id=str(listing.variant_id),
        quantity=quantity,
        expected_current=expected,
    )


def levels(sb: RunningSandbox, variant: Variant) -> list[dict[str, Any]]:
    item = variant.listing("shopify").inventory_item_id
    response = requests.get(
        f"{sb.base_url}{API_PREFIX}/inventory_levels.json",
        params={"inventory_item_ids": item, "location_ids": SHOP_LOCATION_ID},
        headers={"X-Shopify-Access-Token": TOKEN},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["inventory_levels"]


def test_stock_set_then_read_back(shop: RunningSandbox) -> None:
    variant = a_variant(shop)
    connector = connector_for(shop)
    assert levels(shop, variant)[0]["available"] == variant.opening_stock

    result = connector.set_stock(stock_push(variant, 17))

    assert result.status == "pushed", result.detail
    assert result.extra["location_id"] == str(SHOP_LOCATION_ID)
    assert result.platform_ref == str(variant.listing("shopify").inventory_item_id)
    [level] = levels(shop, variant)
    assert level["available"] == 17 and level["location_id"] == SHOP_LOCATION_ID
    assert shop.world.overlay.stock_levels[("shopify", variant.index, SHOP_LOCATION_ID)] == 17
    variant_json = connector.get("variant", path_params={"variant_id": variant.listing("shopify").variant_id})
    assert variant_json["inventory_quantity"] == 17


def test_many_listings_are_read_in_one_inventory_levels_request_and_a_bad_one_does_not_stop_the_rest(
    shop: RunningSandbox,
) -> None:
    variants = shop.world.catalog.variants
    connector = connector_for(shop)
    assert connector.set_stock(stock_push(variants[1], 17)).status == "pushed"
    listings = [
        stock_push(variants[0], 0),
        replace(stock_push(variants[0], 0), channel_variant_id=None),  # no variant id: cannot be resolved
        replace(stock_push(variants[0], 0), channel_variant_id="999"),  # Shopify has no such variant
        *(stock_push(v, 0) for v in variants[1:]),
    ]
    connector = connector_for(shop)  # nothing cached: the first read resolves every variant

    first = connector.listed_stocks(listings)
    first_requests = connector.client.stats.requests
    again = connector.listed_stocks(listings)

    assert first[0] == variants[0].opening_stock and first[3] == 17
    assert first[3:] == [17, *(v.opening_stock for v in variants[2:])]
    assert isinstance(first[1], ApiError) and "channel_variant_id" in str(first[1])
    assert isinstance(first[2], ApiError) and "Not Found" in str(first[2])
    # locations.json, one variant lookup per listing with an id, then ONE inventory_levels.json for all of
    # them (it was one per listing). Read again, the known variants are cached: the unknown one is asked
    # again (it may exist by now), the levels read once more.
    assert first_requests == 1 + (len(listings) - 1) + 1
    assert connector.client.stats.requests - first_requests == 2
    assert again[0] == first[0] and again[3:] == first[3:]
    assert [connector.listed_stock(listing) for listing in listings[3:6]] == first[3:6]
    before = connector.client.stats.requests
    assert connector.listed_stocks(listings[3:] * 3) == first[3:] * 3  # 75 listings: 50 per read
    assert connector.client.stats.requests - before == 2


def test_compare_and_set_applies_on_a_match_and_is_rejected_on_a_mismatch(shop: RunningSandbox) -> None:
    variant = a_variant(shop)
    connector = connector_for(shop)
    opening = variant.opening_stock

    applied = connector.set_stock(stock_push(variant, 30, expected=opening))
    assert applied.status == "pushed", applied.detail
    assert levels(shop, variant)[0]["available"] == 30

    # The same push replayed (its answer was lost): Shopify's compare fails, the level already is 30.
    assert connector.set_stock(stock_push(variant, 30, expected=opening)).status == "already_done"

    stale = connector.set_stock(stock_push(variant, 12, expected=opening))
    assert stale.status == "rejected"
    assert "The changeFromQuantity value does not match persisted value." in stale.detail
    assert stale.extra["code"] == "CHANGE_FROM_QUANTITY_STALE" and stale.extra["current"] == "30"
    assert levels(shop, variant)[0]["available"] == 30
    assert len(shop.world.overlay.stock_history) == 1


def test_a_stock_push_without_a_variant_id_or_with_an_unknown_one_is_rejected(shop: RunningSandbox) -> None:
    variant = a_variant(shop)
    connector = connector_for(shop)

    no_id = connector.set_stock(replace(stock_push(variant, 5), channel_variant_id=None))
    unknown = connector.set_stock(replace(stock_push(variant, 5), channel_variant_id="999"))

    assert no_id.status == "rejected" and "channel_variant_id" in no_id.detail
    assert unknown.status == "rejected" and unknown.detail == "Not Found"
    assert shop.world.overlay.stock_history == []


def served(sb: RunningSandbox) -> dict[str, int]:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()["requests"]


class SetRecorder:
    """A requests response hook: the variables of every GraphQL call sent, and a sale (the level lowered by
    one) landing right after each of the first ``sales`` level reads, before the set that follows it."""

    def __init__(self, sb: RunningSandbox, variant: Variant, sales: int = 0) -> None:
        self.sb, self.variant, self.sales = sb, variant, sales
        self.sent: list[dict[str, Any]] = []

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = requests.utils.urlparse(response.request.url).path
        if path.endswith("/graphql.json"):
            self.sent.append(json.loads(response.request.body)["variables"])
        elif path.endswith("/inventory_levels.json") and self.sales > 0:
            self.sales -= 1
            stock = self.sb.app.state.stock
            with stock.lock:
                level = stock.available(self.variant.index, SHOP_LOCATION_ID)
                stock.set(self.variant.index, SHOP_LOCATION_ID, level - 1, int(self.sb.world.now_ts()))

    def change_from(self) -> list[int | None]:
        return [v["input"]["quantities"][0]["changeFromQuantity"] for v in self.sent]

    def keys(self) -> list[str]:
        return [v["idempotencyKey"] for v in self.sent]


def recording(sb: RunningSandbox, recorder: SetRecorder, **options: Any) -> ShopifyConnector:
    session = requests.Session()
    session.hooks["response"].append(recorder)
    return connector_for(sb, session=session, **options)


def test_a_stale_change_from_quantity_is_refused_then_read_again_and_retried_under_a_new_key(
    shop: RunningSandbox,
) -> None:
    variant = a_variant(shop)
    opening = variant.opening_stock
    recorder = SetRecorder(shop, variant, sales=1)  # a sale lands between the first read and its set

    result = recording(shop, recorder).set_stock(stock_push(variant, 25))

    assert result.status == "pushed", result.detail
    assert recorder.change_from() == [opening, opening - 1]  # refused as stale, then against the new read
    assert len(set(recorder.keys())) == 2  # a new set, a new key (the old one would be a parameter mismatch)
    assert all("compareQuantity" not in json.dumps(v) for v in recorder.sent)
    assert served(shop)["stale_sets"] == 1 and served(shop)["inventory_sets"] == 1
    assert levels(shop, variant)[0]["available"] == 25


def test_a_level_that_keeps_changing_is_rejected_after_a_bounded_number_of_sets(shop: RunningSandbox) -> None:
    variant = a_variant(shop)
    recorder = SetRecorder(shop, variant, sales=10)  # a sale after every read

    result = recording(shop, recorder).set_stock(stock_push(variant, 25))

    assert result.status == "rejected" and "kept changing" in result.detail
    assert result.extra["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert len(recorder.sent) == 3 and served(shop)["stale_sets"] == 3
    assert levels(shop, variant)[0]["available"] == variant.opening_stock - 4  # four reads, four sales


def test_the_same_figures_set_again_later_are_a_new_operation_under_a_new_key(shop: RunningSandbox) -> None:
    variant = a_variant(shop)
    opening = variant.opening_stock
    recorder = SetRecorder(shop, variant)
    connector = recording(shop, recorder)

    for quantity in (30, opening, 30):  # the third set has the first one's figures: opening -> 30
        assert connector.set_stock(stock_push(variant, quantity)).status == "pushed"

    assert recorder.change_from() == [opening, 30, opening]
    assert len(set(recorder.keys())) == 3  # a key from the figures alone would be answered, not applied
    assert served(shop)["inventory_sets"] == 3 and served(shop).get("idempotent_replays", 0) == 0
    assert levels(shop, variant)[0]["available"] == 30


class LosesTheFirstSetAnswer(requests.Session):
    """The first inventorySetQuantities reaches Shopify and is applied, but its answer never arrives."""

    lost = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        if url.endswith("/graphql.json") and not self.lost:
            self.lost += 1
            raise requests.ReadTimeout("the answer was lost on the way back")
        return response


def test_a_set_replayed_after_a_lost_answer_carries_the_same_key_and_is_applied_once(
    shop: RunningSandbox,
) -> None:
    variant = a_variant(shop)
    session = LosesTheFirstSetAnswer()
    connector = connector_for(shop, session=session)

    result = connector.set_stock(stock_push(variant, 19))

    assert result.status == "pushed", result.detail
    assert session.lost == 1 and connector.client.stats.network_errors == 1
    assert served(shop)["idempotent_replays"] == 1  # Shopify answered the replay from the first request
    assert served(shop)["inventory_sets"] == 1 and len(shop.world.overlay.stock_history) == 1
    assert levels(shop, variant)[0]["available"] == 19


def test_graphql_throttled_is_retried_by_the_client_waiting_for_the_cost_to_come_back(
    shop: RunningSandbox,
) -> None:
    variant = a_variant(shop)
    requests.post(
        f"{shop.base_url}/_sandbox/graphql_throttle", json={"next": 3}, timeout=5
    ).raise_for_status()
    waits: list[float] = []
    connector = connector_for(shop, retry=replace(FAST, retry_after_max=5.0), sleep=waits.append)

    result = connector.set_stock(stock_push(variant, 21))

    assert result.status == "pushed", result.detail
    assert connector.client.stats.rate_limited == 3
    assert waits == [pytest.approx(0.1)] * 3  # (requested cost 10 - 0 available) / 100 restored a second
    assert served(shop)["throttled"] == 3 and served(shop)["inventory_sets"] == 1
    assert levels(shop, variant)[0]["available"] == 21


# --- tracking corrections -----------------------------------------------------------------------------------


def test_a_corrected_number_updates_the_fulfillment_carrying_the_previous_one(shop: RunningSandbox) -> None:
    state = find_order(shop, lambda s: unshipped(s) and s.order.lines[0].quantity == 2)
    connector = connector_for(shop)
    first = shipment(shop, state, [(0, 1)], "1Z999AA10123456701")
    second = shipment(shop, state, [(0, 1)], "1Z999AA10123456702")
    created = connector.push_shipment(first)
    assert created.status == "pushed" and connector.push_shipment(second).status == "pushed"

    # Both parcels hold one unit of line 0: only the previous number says which one was corrected.
    correction = replace(
        first, tracking_number="SF1234567890199", carrier="SF", previous_tracking_number="1Z999AA10123456701"
    )
    result = connector.push_shipment(correction)

    assert result.status == "pushed", result.detail
    assert result.extra["action"] == "update_tracking"
    assert result.extra["previous_tracking_number"] == "1Z999AA10123456701"
    assert result.platform_ref == created.platform_ref
    updates = shop.app.state.tracking_updates
    assert [(u["fulfillment_id"], u["previous_number"], u["number"]) for u in updates] == [
        (int(created.platform_ref), "1Z999AA10123456701", "SF1234567890199")
    ]
    numbers = [f["tracking_number"] for f in order_of(connector, first)["fulfillments"]]
    assert numbers == ["SF1234567890199", "1Z999AA10123456702"]
    assert connector.push_shipment(correction).status == "already_done"
    assert len(updates) == 1 and pushed_count(shop) == 2


def test_a_correction_whose_previous_number_never_reached_shopify_is_pushed_as_a_new_shipment(
    shop: RunningSandbox,
) -> None:
    state = find_order(shop, unshipped)
    connector = connector_for(shop)
    push = replace(
        shipment(shop, state, every_line(state), "1Z999AA10123456703"),
        previous_tracking_number="NEVER-SENT-1",
    )

    result = connector.push_shipment(push)

    assert result.status == "pushed", result.detail
    assert "action" not in result.extra
    assert shop.app.state.tracking_updates == [] and pushed_count(shop) == 1
    [fulfillment] = order_of(connector, push)["fulfillments"]
    assert fulfillment["tracking_number"] == "1Z999AA10123456703"


# --- 5xx: replayed only when safe ---------------------------------------------------------------------------


class FaultSwitch:
    """A requests response hook: turns the sandbox's 5xx on after a chosen request, and off after ``limit``
    injected errors; logs (method, path, status) of every exchange."""

    def __init__(self, sb: RunningSandbox, after: str, limit: int | None = None) -> None:
        self.sb, self.after, self.limit = sb, after, limit
        self.log: list[tuple[str, str, int]] = []
        self.graphql_keys: list[str] = []
        self.injected = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = requests.utils.urlparse(response.request.url).path
        self.log.append((response.request.method or "", path, response.status_code))
        if path.endswith("/graphql.json"):
            self.graphql_keys.append(json.loads(response.request.body)["variables"]["idempotencyKey"])
        if response.status_code >= 500:
            self.injected += 1
            if self.limit is not None and self.injected >= self.limit:
                self.sb.faults.clear()
        elif path.endswith(self.after):
            self.sb.faults.update(server_error_rate=1.0)

    def attempts(self, method: str, suffix: str) -> int:
        return sum(1 for m, path, _ in self.log if m == method and path.endswith(suffix))


def test_a_5xx_on_the_fulfillment_create_is_not_replayed_and_a_later_push_ships_once(
    shop: RunningSandbox,
) -> None:
    state = find_order(shop, unshipped)
    switch = FaultSwitch(shop, after="fulfillment_orders.json")
    session = requests.Session()
    session.hooks["response"].append(switch)
    connector = connector_for(shop, session=session)
    push = shipment(shop, state, every_line(state), "1Z999AA10123456795")

    with pytest.raises(TransientError):
        connector.push_shipment(push)

    assert switch.attempts("POST", "/fulfillments.json") == 1  # a create is never replayed blindly
    assert pushed_count(shop) == 0
    shop.faults.clear()
    session.hooks["response"].clear()
    assert connector.push_shipment(push).status == "pushed"
    assert connector.push_shipment(push).status == "already_done"
    assert pushed_count(shop) == 1


def test_a_5xx_on_an_absolute_stock_set_is_replayed(shop: RunningSandbox) -> None:
    variant = a_variant(shop)
    # The set reads the current level, then compare-and-sets against it: the 5xx hit that set.
    switch = FaultSwitch(shop, after="/inventory_levels.json", limit=2)
    session = requests.Session()
    session.hooks["response"].append(switch)
    connector = connector_for(shop, session=session)

    result = connector.set_stock(stock_push(variant, 8))

    assert result.status == "pushed", result.detail
    assert switch.attempts("POST", "/graphql.json") == 3  # two 5xx, then the set
    assert len(set(switch.graphql_keys)) == 1  # a replay carries the same idempotency key
    assert levels(shop, variant)[0]["available"] == 8
    assert len(shop.world.overlay.stock_history) == 1
