"""WooCommerce pushes (tracking out, stock out) against the sandbox over real HTTP, asserting what the shop
ended up with: its Shipment Tracking items, its order notes, the order's status, its products' stock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from woo_auth import WooOAuth

from canonical.order import CanonicalOrder
from connectors.errors import TransientError
from connectors.http import RetryPolicy
from connectors.pushes import ShipmentLine, ShipmentPush, StockPush
from platforms.woocommerce.connector import WooCommerceConnector
from platforms.woocommerce.mapping import map_order
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.woocommerce import SANDBOX_LOGIN, wc_status

NOW = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
SECRET = "cs_test_feedfacefeedfacefeedfacefeedface"
FAST = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.02, backoff_jitter=0.005)


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "woocommerce",
        seed=4,
        access_token=SECRET,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=4),
        clock=Clock.frozen(NOW),
    ) as running:
        yield running


@pytest.fixture
def woo(shop: RunningSandbox) -> Iterator[WooCommerceConnector]:
    with WooCommerceConnector.from_connection(shop.base_url, SANDBOX_LOGIN, SECRET, retry=FAST) as connector:
        yield connector


def api(shop: RunningSandbox, path: str, **params: Any) -> Any:
    response = requests.get(
        f"{shop.base_url}{path}", params=params, auth=WooOAuth(SANDBOX_LOGIN, SECRET), timeout=5
    )
    response.raise_for_status()
    return response.json()


def settings(shop: RunningSandbox, **changes: Any) -> None:
    requests.post(f"{shop.base_url}/_sandbox/woocommerce", json=changes, timeout=5).raise_for_status()


def find_order(shop: RunningSandbox, status: str, *, units: int = 1) -> dict[str, Any]:
    """A served order in ``status`` with at least ``units`` units on its first line."""
    world, renderer = shop.world, shop.app.state.renderer
    for index in world.orders_visible():
        state = world.state(index)
        if state is None or wc_status(state) != status or state.order.lines[0].quantity < units:
            continue
        if status == "processing" and any(state.shipped):
            continue
        return api(shop, f"/wp-json/wc/v3/orders/{renderer.order_id(index)}")
    raise AssertionError(f"the seeded world has no {status} order with {units}+ units on a line")


def push_for(order: dict[str, Any], key: str, number: str, lines: list[tuple[int, int]], **kw: Any) -> Any:
    items = order["line_items"]
    return ShipmentPush(
        external_order_id=str(order["id"]),
        shipment_key=key,
        carrier=kw.pop("carrier", "UPS"),
        tracking_number=number,
        lines=tuple(ShipmentLine(str(items[i]["id"]), qty) for i, qty in lines),
        shipped_at=NOW,
        completes_order=kw.pop("completes_order", False),
    )


def everything(order: dict[str, Any]) -> list[tuple[int, int]]:
    return [(i, item["quantity"]) for i, item in enumerate(order["line_items"])]


def trackings(shop: RunningSandbox, order_id: int) -> list[dict[str, Any]]:
    return api(shop, f"/wp-json/wc-shipment-tracking/v3/orders/{order_id}/shipment-trackings")


def notes(shop: RunningSandbox, order_id: int) -> list[dict[str, Any]]:
    return api(shop, f"/wp-json/wc/v3/orders/{order_id}/notes")


def pulled(woo: WooCommerceConnector, order_id: int) -> CanonicalOrder:
    """The order as the next incremental pull maps it."""
    found = [
        map_order(payload)
        for page in woo.fetch_orders(NOW - timedelta(minutes=5), NOW + timedelta(seconds=1))
        for payload in page
        if payload["id"] == order_id
    ]
    assert found, f"order {order_id} is not in the pull window: its modified time did not move"
    return found[-1]


# ------------------------------------------------------------------------------------------ shipments


def test_full_shipment_records_tracking_completes_the_order_and_the_pull_shows_it(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing")
    push = push_for(order, "S-1", "1Z999AA10123456784", everything(order), completes_order=True)

    result = woo.push_shipment(push)

    assert result.status == "pushed" and result.extra["mode"] == "shipment_tracking"
    [item] = trackings(shop, order["id"])
    assert item["tracking_id"] == result.platform_ref
    assert (item["tracking_provider"], item["tracking_number"]) == ("UPS", "1Z999AA10123456784")
    assert item["tracking_link"] == "https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784"
    assert item["date_shipped"] == "2026-05-04"
    served = api(shop, f"/wp-json/wc/v3/orders/{order['id']}")
    assert served["status"] == "completed" and served["date_completed_gmt"] == "2026-05-04T15:00:00"
    [meta] = served["meta_data"]
    assert meta["key"] == "_wc_shipment_tracking_items"
    assert meta["value"][0]["tracking_number"] == "1Z999AA10123456784"
    canonical = pulled(woo, order["id"])
    assert canonical.fulfillment_status == "fulfilled"
    assert [line.shipped_quantity for line in canonical.lines] == [line.quantity for line in canonical.lines]
    [shipment] = shop.world.state(shop.app.state.renderer.index_of(order["id"])).fulfillments
    assert shipment.pushed and shipment.tracking_number == "1Z999AA10123456784"


def test_partial_shipment_keeps_the_order_processing_then_the_rest_completes_it(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing", units=2)
    first_qty = order["line_items"][0]["quantity"]
    partial = push_for(order, "S-1", "9400100000000000000001", [(0, 1)], carrier="USPS")

    assert woo.push_shipment(partial).status == "pushed"

    served = api(shop, f"/wp-json/wc/v3/orders/{order['id']}")
    assert served["status"] == "processing"  # core WooCommerce has no partial shipment
    assert [t["tracking_number"] for t in trackings(shop, order["id"])] == ["9400100000000000000001"]
    assert map_order(served).fulfillment_status == "unfulfilled"
    # The ledger counts what was pushed: shipping the first line in full now is one unit too many.
    too_many = push_for(order, "S-2", "9400100000000000000002", [(0, first_qty)], carrier="USPS")
    refused = woo.push_shipment(too_many)
    assert refused.status == "rejected"
    assert f"{first_qty} to ship but only {first_qty - 1} of {first_qty} remain unshipped" in refused.detail

    rest = [(0, first_qty - 1), *everything(order)[1:]]
    final = push_for(order, "S-2", "9400100000000000000002", rest, carrier="USPS", completes_order=True)
    assert woo.push_shipment(final).status == "pushed"

    numbers = [t["tracking_number"] for t in trackings(shop, order["id"])]
    assert numbers == ["9400100000000000000001", "9400100000000000000002"]
    canonical = pulled(woo, order["id"])
    assert canonical.fulfillment_status == "fulfilled"
    assert [line.shipped_quantity for line in canonical.lines] == [line.quantity for line in canonical.lines]


def test_a_retry_is_already_done_and_records_nothing_twice(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing")
    push = push_for(order, "S-1", "1Z999AA10123456784", everything(order), completes_order=True)
    assert woo.push_shipment(push).status == "pushed"
    before = (trackings(shop, order["id"]), notes(shop, order["id"]), shop.world.overlay.summary())

    again = woo.push_shipment(push)

    assert again.status == "already_done" and "already on WooCommerce order" in again.detail
    assert (trackings(shop, order["id"]), notes(shop, order["id"]), shop.world.overlay.summary()) == before


def test_a_changed_number_replaces_the_shipments_tracking(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing")
    woo.push_shipment(push_for(order, "S-1", "1Z0000000000000001", everything(order), completes_order=True))

    fixed = woo.push_shipment(
        push_for(order, "S-1", "1Z0000000000000002", everything(order), completes_order=True)
    )

    assert fixed.status == "pushed" and fixed.extra["action"] == "update_tracking"
    assert fixed.extra["previous_tracking_number"] == "1Z0000000000000001"
    assert [t["tracking_number"] for t in trackings(shop, order["id"])] == ["1Z0000000000000002"]
    assert len(shop.world.state(shop.app.state.renderer.index_of(order["id"])).fulfillments) == 1


def correction(push: ShipmentPush, key: str, number: str) -> ShipmentPush:
    """``push`` corrected: the warehouse re-reported it (under ``key``) with a new tracking number."""
    changes = {
        "shipment_key": key,
        "tracking_number": number,
        "previous_tracking_number": push.tracking_number,
    }
    return ShipmentPush(**_fields(push) | changes)


def test_a_correction_replaces_the_previous_number_whatever_ledger_key_recorded_it(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing", units=2)
    first_qty = order["line_items"][0]["quantity"]
    wrong = push_for(order, "S-1", "1Z0000000000000001", [(0, 1)])
    assert woo.push_shipment(wrong).status == "pushed"

    fixed = woo.push_shipment(correction(wrong, "row-7", "1Z0000000000000002"))

    assert fixed.status == "pushed" and fixed.extra["action"] == "update_tracking"
    assert fixed.extra["previous_tracking_number"] == "1Z0000000000000001"
    assert [t["tracking_number"] for t in trackings(shop, order["id"])] == ["1Z0000000000000002"]
    ledger = [
        n["note"] for n in notes(shop, order["id"]) if n["note"].startswith("ChannelHub shipment row-7")
    ]
    assert ledger and ledger[0].endswith("replacing 1Z0000000000000001")
    again = woo.push_shipment(correction(wrong, "row-7", "1Z0000000000000002"))
    assert again.status == "already_done"
    # The corrected shipment still ships one unit: the rest of the order goes out next, not refused.
    rest = [(0, first_qty - 1), *everything(order)[1:]]
    final = push_for(order, "S-2", "1Z0000000000000003", rest, completes_order=True)
    assert woo.push_shipment(final).status == "pushed"
    numbers = [t["tracking_number"] for t in trackings(shop, order["id"])]
    assert numbers == ["1Z0000000000000002", "1Z0000000000000003"]


def test_a_correction_without_the_extension_tells_the_buyer_which_number_it_replaces(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    settings(shop, shipment_tracking=False)
    order = find_order(shop, "processing")
    wrong = push_for(order, "S-1", "1Z0000000000000001", everything(order), completes_order=True)
    assert woo.push_shipment(wrong).status == "pushed"

    fixed = woo.push_shipment(correction(wrong, "S-1b", "1Z0000000000000002"))

    assert fixed.status == "pushed" and fixed.extra["previous_tracking_number"] == "1Z0000000000000001"
    customer = [n["note"] for n in notes(shop, order["id"]) if n["customer_note"]]
    assert customer[0] == "Shipped via UPS 1Z0000000000000002 (replaces 1Z0000000000000001)"


def test_a_previous_number_that_never_reached_the_shop_is_pushed_as_a_new_shipment(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing")
    push = ShipmentPush(
        **_fields(push_for(order, "S-1", "1Z0000000000000002", everything(order), completes_order=True))
        | {"previous_tracking_number": "1Z0000000000000001"}
    )

    result = woo.push_shipment(push)

    assert result.status == "pushed" and "action" not in result.extra
    assert [t["tracking_number"] for t in trackings(shop, order["id"])] == ["1Z0000000000000002"]
    assert api(shop, f"/wp-json/wc/v3/orders/{order['id']}")["status"] == "completed"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("cancelled", "is 'cancelled' in WooCommerce: nothing to ship"),
        ("completed", "is already 'completed' in WooCommerce (every item shipped)"),
        ("unknown_order", "woocommerce_rest_shop_order_invalid_id: Invalid ID. (HTTP 404)"),
        ("unknown_carrier", "carrier 'ACME' has no WooCommerce mapping"),
        ("unknown_line", "has no line item 1"),
        ("over_quantity", "remain unshipped"),
    ],
)
def test_rejections_carry_the_reason_and_change_nothing(
    shop: RunningSandbox, woo: WooCommerceConnector, case: str, expected: str
) -> None:
    order = find_order(shop, {"cancelled": "cancelled", "completed": "completed"}.get(case, "processing"))
    push = push_for(order, "S-9", "1Z0000000000000009", everything(order), completes_order=True)
    if case == "unknown_order":
        push = ShipmentPush(**{**_fields(push), "external_order_id": "3"})
    elif case == "unknown_carrier":
        push = ShipmentPush(**{**_fields(push), "carrier": "ACME"})
    elif case == "unknown_line":
        push = ShipmentPush(**{**_fields(push), "lines": (ShipmentLine("1", 1),)})
    elif case == "over_quantity":
        push = push_for(order, "S-9", "1Z0000000000000009", [(0, order["line_items"][0]["quantity"] + 1)])

    result = woo.push_shipment(push)

    assert result.status == "rejected" and expected in result.detail
    assert shop.app.state.store.summary()["tracking_items"] == 0
    assert shop.world.overlay.summary()["pushed_fulfillments"] == 0


def _fields(push: ShipmentPush) -> dict[str, Any]:
    return {name: getattr(push, name) for name in push.__dataclass_fields__}


def test_the_extension_does_not_check_providers_so_the_connector_uses_custom_ones(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing")
    raw = requests.post(
        f"{shop.base_url}/wp-json/wc-shipment-tracking/v3/orders/{order['id']}/shipment-trackings",
        json={"tracking_provider": "Nowhere Express", "tracking_number": "NX1"},
        auth=WooOAuth(SANDBOX_LOGIN, SECRET),
        timeout=5,
    )
    assert raw.status_code == 201 and (raw.json()["tracking_provider"], raw.json()["tracking_link"]) == (
        "",
        "",
    )

    result = woo.push_shipment(push_for(order, "S-1", "SF1234567890", everything(order), carrier="sf"))

    assert result.status == "pushed"
    item = trackings(shop, order["id"])[-1]
    assert item["tracking_provider"] == "SF Express"
    assert item["tracking_link"] == "https://www.sf-express.com/chn/en/waybill/waybill-detail/SF1234567890"


def test_without_the_extension_a_customer_note_and_completion_stand_in(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    settings(shop, shipment_tracking=False)
    order = find_order(shop, "processing")
    missing = requests.get(
        f"{shop.base_url}/wp-json/wc-shipment-tracking/v3/orders/{order['id']}/shipment-trackings",
        auth=WooOAuth(SANDBOX_LOGIN, SECRET),
        timeout=5,
    )
    assert missing.status_code == 404 and missing.json()["code"] == "rest_no_route"
    push = push_for(order, "S-1", "1Z999AA10123456784", everything(order), completes_order=True)

    result = woo.push_shipment(push)
    again = woo.push_shipment(push)

    assert result.status == "pushed" and result.extra["mode"] == "order_note"
    assert again.status == "already_done"
    customer = [n["note"] for n in notes(shop, order["id"]) if n["customer_note"]]
    assert customer == ["Shipped via UPS 1Z999AA10123456784"]
    assert api(shop, f"/wp-json/wc/v3/orders/{order['id']}")["status"] == "completed"
    assert pulled(woo, order["id"]).fulfillment_status == "fulfilled"


def test_a_lost_answer_to_a_post_is_not_replayed_and_the_retry_finishes_the_job(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    order = find_order(shop, "processing")
    push = push_for(order, "S-1", "1Z999AA10123456784", everything(order), completes_order=True)
    settings(shop, fail_writes=1, fail_writes_after_apply=True)  # the tracking POST lands, its answer is lost

    with pytest.raises(TransientError):
        woo.push_shipment(push)

    assert len(trackings(shop, order["id"])) == 1  # applied once, never replayed
    assert api(shop, f"/wp-json/wc/v3/orders/{order['id']}")["status"] == "processing"
    finished = woo.push_shipment(push)
    assert finished.status == "pushed" and "order completed" in finished.detail
    assert len(trackings(shop, order["id"])) == 1
    assert api(shop, f"/wp-json/wc/v3/orders/{order['id']}")["status"] == "completed"


# ------------------------------------------------------------------------------------------ stock


def _listing(shop: RunningSandbox, *, variation: bool) -> tuple[Any, str, str | None]:
    for variant in shop.world.catalog.variants:
        if (variant.variant_title is not None) == variation:
            ids = variant.listing("woocommerce")
            return variant, str(ids.product_id), str(ids.variant_id) if variation else None
    raise AssertionError("no such listing in the catalog")


@pytest.mark.parametrize("variation", [False, True], ids=["simple", "variation"])
def test_stock_set_then_read_back(shop: RunningSandbox, woo: WooCommerceConnector, variation: bool) -> None:
    variant, product_id, variation_id = _listing(shop, variation=variation)
    path = f"/wp-json/wc/v3/products/{product_id}" + (f"/variations/{variation_id}" if variation else "")
    assert api(shop, path)["stock_quantity"] == variant.opening_stock

    result = woo.set_stock(StockPush(variant.sku, product_id, variation_id or product_id, 17))

    assert result.status == "pushed"
    served = api(shop, path)
    assert (served["stock_quantity"], served["manage_stock"], served["stock_status"]) == (17, True, "instock")
    assert shop.world.overlay.stock_levels[("woocommerce", variant.index, 0)] == 17
    assert woo.set_stock(StockPush(variant.sku, product_id, variation_id, 0)).status == "pushed"
    assert api(shop, path)["stock_status"] == "outofstock"


def test_stock_compare_is_a_read_first_and_a_mismatch_is_rejected(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    variant, product_id, variation_id = _listing(shop, variation=True)
    stale = StockPush(variant.sku, product_id, variation_id, 5, expected_current=variant.opening_stock + 1)

    refused = woo.set_stock(stale)
    fresh = woo.set_stock(StockPush(variant.sku, product_id, variation_id, 5, variant.opening_stock))

    assert refused.status == "rejected" and "no compare-and-set" in refused.detail
    assert fresh.status == "pushed"
    assert len(shop.world.overlay.stock_history) == 1


def test_stock_rejections_use_woocommerce_errors(shop: RunningSandbox, woo: WooCommerceConnector) -> None:
    _, product_id, _ = _listing(shop, variation=True)

    unknown_product = woo.set_stock(StockPush("X", "7", None, 3))
    unknown_variation = woo.set_stock(StockPush("X", product_id, "8", 3))

    assert unknown_product.status == "rejected"
    assert unknown_product.detail == "woocommerce_rest_product_invalid_id: Invalid ID. (HTTP 404)"
    assert unknown_variation.detail.startswith("woocommerce_rest_product_variation_invalid_id")
    assert shop.world.overlay.stock_history == []


def test_a_5xx_on_a_stock_put_is_retried_because_a_put_is_safe_to_replay(
    shop: RunningSandbox, woo: WooCommerceConnector
) -> None:
    variant, product_id, _ = _listing(shop, variation=False)
    settings(shop, fail_writes=2, fail_writes_after_apply=False)

    result = woo.set_stock(StockPush(variant.sku, product_id, product_id, 9))

    assert result.status == "pushed" and woo.client.stats.server_errors == 2
    assert api(shop, f"/wp-json/wc/v3/products/{product_id}")["stock_quantity"] == 9
