"""Table tests of the WooCommerce mapping (mappings/woocommerce.py) and its connector schema.

Fixtures (tests/fixtures/woocommerce): orders_list_docs_example.json is the "List all orders" response of
the official docs (woocommerce/woocommerce-rest-api-docs, wp-api-v3/_orders.md: orders 727 and 723),
verbatim; order_723_with_refunds_docs_example.json is that order 723 with, under channelhub_refunds, the
docs' "List all refunds" answer for it (wp-api-v3/_order-refunds.md: refunds 726 and 724), verbatim; the
other order_*.json files were rendered by the WooCommerce sandbox, one per status and quirk.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hub_configs import hub_config, write_hub_config
from jsonschema import Draft202012Validator

from canonical.order import MappingError, NotAnOrder, canonical_order_schema
from channelhub.platforms import Skipped, get_platform
from platforms.woocommerce.mapping import map_order, not_an_order, unwrap
from warehouse.ingest import Landed, Rejected

FIXTURES = Path(__file__).parent / "fixtures" / "woocommerce"
FIXTURE_FILES = sorted(path.name for path in FIXTURES.glob("*.json"))
SCHEMA = json.loads(resources.files("platforms").joinpath("woocommerce/order.schema.json").read_text())
schema_validator = Draft202012Validator(SCHEMA)
canonical_validator = Draft202012Validator(canonical_order_schema())


def load(name: str) -> list[dict[str, Any]]:
    return unwrap(json.loads((FIXTURES / name).read_text()))


def one(name: str) -> dict[str, Any]:
    (order,) = load(name)
    return order


def docs_orders() -> dict[int, dict[str, Any]]:
    return {order["id"]: order for order in load("orders_list_docs_example.json")}


def schema_errors(payload: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema_validator.iter_errors(payload)
    ]


def test_connector_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_fixture_passes_the_schema_and_maps_to_a_valid_canonical_order(name: str) -> None:
    for payload in load(name):
        untouched = copy.deepcopy(payload)
        assert schema_errors(payload) == []
        canonical = map_order(payload).to_json()
        assert [e.message for e in canonical_validator.iter_errors(canonical)] == []
        assert map_order(payload).to_json() == canonical and payload == untouched  # pure, deterministic
        totals = {k: Decimal(v) for k, v in canonical["totals"].items()}
        assert totals["subtotal"] + totals["shipping"] + totals["tax"] == totals["total"]


def test_docs_order_727_processing_with_a_simple_product_and_a_variation() -> None:
    order = map_order(docs_orders()[727])
    assert (order.external_id, order.number, order.currency) == ("727", "727", "USD")
    # the _gmt fields are UTC; the plain ones (16:28 site time) are never read
    assert order.created_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)
    assert order.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert (order.payment_status, order.fulfillment_status, order.cancelled) == ("paid", "unfulfilled", False)
    simple, variation = order.lines
    # sku "" -> null, variation_id 0 -> null: the warehouse resolves it by product id
    assert (simple.sku, simple.channel_product_id, simple.channel_variant_id) == (None, "93", None)
    assert (variation.sku, variation.channel_product_id, variation.channel_variant_id) == ("Bar3", "22", "23")
    # price is a JSON number (3); unit_price comes from the exact subtotal string instead
    assert simple.unit_price == Decimal("3.00") and simple.line_total == Decimal("6.00")
    assert variation.title == "Ship Your Idea – Color: Black, Size: M Test"
    assert order.totals.subtotal == Decimal("18.00") and order.totals.total == Decimal("29.35")
    assert order.customer is not None and order.customer.external_id is None  # customer_id 0: a guest
    assert order.customer.email == "john.doe@example.com"
    assert order.shipping_address is not None and order.shipping_address.phone == "(555) 555-5555"


def test_docs_order_723_negative_refund_totals_under_the_docs_refund_key() -> None:
    order = map_order(docs_orders()[723])
    assert order.totals.refunded == Decimal("19.00")  # "-10.00" and "-9.00"
    assert order.payment_status == "partially_refunded"
    assert order.fulfillment_status == "fulfilled"
    assert [line.shipped_quantity for line in order.lines] == [1, 1]
    assert order.customer is not None and order.customer.external_id == "26"


@pytest.mark.parametrize(
    ("name", "payment", "fulfilment", "cancelled", "shipped_all", "refunded_all"),
    [
        ("order_1240_pending.json", "unpaid", "unfulfilled", False, False, False),
        ("order_1408_on_hold.json", "authorized", "unfulfilled", False, False, False),
        ("order_1084_completed_simple_and_variation.json", "paid", "fulfilled", False, True, False),
        ("order_1008_completed_return_refund.json", "partially_refunded", "fulfilled", False, True, False),
        (
            "order_5792_processing_partial_refund_coupon.json",
            "partially_refunded",
            "unfulfilled",
            False,
            False,
            False,
        ),
        ("order_1048_refunded.json", "refunded", "unfulfilled", False, False, True),
        ("order_1108_cancelled.json", "voided", "unfulfilled", True, False, False),
        ("order_1748_failed.json", "voided", "unfulfilled", False, False, False),
    ],
)
def test_status_table(
    name: str, payment: str, fulfilment: str, cancelled: bool, shipped_all: bool, refunded_all: bool
) -> None:
    payload = one(name)
    order = map_order(payload)
    assert (order.payment_status, order.fulfillment_status, order.cancelled) == (
        payment,
        fulfilment,
        cancelled,
    )
    assert all(line.shipped_quantity == (line.quantity if shipped_all else 0) for line in order.lines)
    assert all(line.refunded_quantity == (line.quantity if refunded_all else 0) for line in order.lines)
    assert order.cancelled_at == (order.updated_at if cancelled else None)


def test_a_coupon_discount_shows_in_line_totals_and_the_discount_total() -> None:
    payload = one("order_5792_processing_partial_refund_coupon.json")
    order = map_order(payload)
    assert order.totals.discount == Decimal(payload["discount_total"]) > 0
    assert (
        sum(line.unit_price * line.quantity - line.line_total for line in order.lines)
        == order.totals.discount
    )
    assert order.totals.refunded == -Decimal(payload["refunds"][0]["total"])


def test_blank_sku_and_guest_from_the_sandbox() -> None:
    payload = one("order_1344_completed_guest_blank_sku.json")
    (line,) = map_order(payload).lines
    assert payload["line_items"][0]["sku"] == "" and line.sku is None
    assert line.channel_product_id == str(payload["line_items"][0]["product_id"])
    assert map_order(payload).customer.external_id is None  # type: ignore[union-attr]


def test_a_cancelled_order_that_had_been_paid_stays_paid_and_one_refunded_in_full_is_refunded() -> None:
    payload = copy.deepcopy(docs_orders()[727])
    payload["status"] = "cancelled"
    assert map_order(payload).payment_status == "paid"  # date_paid is set and nothing was refunded
    payload["refunds"] = [{"id": 730, "reason": "", "total": "-29.35"}]
    assert map_order(payload).payment_status == "refunded"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(status="shipped"), "status: unknown value 'shipped'"),
        (lambda p: p.update(date_modified_gmt="2017-03-22T19:28:08+00:00"), "date_modified_gmt"),
        (lambda p: p["line_items"][0].update(quantity="2 pcs"), "line_items[0].quantity"),
        (lambda p: p["line_items"][0].update(subtotal=6.0), None),  # a float amount is read exactly
        (lambda p: p.update(refunds=[{"id": 1, "total": "10.00"}]), "should be negative"),
        (lambda p: p.update(currency="usd"), "currency"),
    ],
)
def test_bad_payloads_name_the_field(change: Any, message: str | None) -> None:
    payload = copy.deepcopy(docs_orders()[727])
    change(payload)
    if message is None:
        assert map_order(payload).lines[0].unit_price == Decimal("3")
        return
    with pytest.raises(MappingError, match=r"woocommerce order 727: .*" + message.replace("[", r"\[")):
        map_order(payload)


def test_the_schema_rejects_what_the_sandbox_breaks_and_string_prices() -> None:
    payload = copy.deepcopy(docs_orders()[727])
    payload["line_items"][0]["quantity"] = "2 pcs"
    assert any(error.startswith("line_items/0/quantity") for error in schema_errors(payload))
    payload = copy.deepcopy(docs_orders()[727])
    payload["line_items"][0]["price"] = "3.00"
    assert any(error.startswith("line_items/0/price") for error in schema_errors(payload))


def test_unwrap_takes_a_listing_an_order_or_a_batch_answer_and_refuses_error_bodies() -> None:
    orders = list(docs_orders().values())
    assert unwrap(orders) == orders
    assert unwrap(orders[0]) == [orders[0]]
    assert unwrap({"create": [orders[0]], "update": [orders[1]], "delete": []}) == orders
    with pytest.raises(MappingError, match="woocommerce_rest_authentication_error"):
        unwrap({"code": "woocommerce_rest_authentication_error", "message": "Consumer key is invalid."})
    with pytest.raises(MappingError, match="expected an order object"):
        unwrap([1, 2])


# -------------------------------------------------------------------------------------- drafts and plugins

WOO = get_platform("woocommerce")


@pytest.mark.parametrize("status", ["checkout-draft", "auto-draft"])
def test_drafts_are_no_orders_and_are_skipped_whatever_their_shape(status: str) -> None:
    payload = copy.deepcopy(docs_orders()[727])
    payload["status"] = status
    assert not_an_order(payload) is not None
    with pytest.raises(NotAnOrder, match=status):
        map_order(payload)
    skipped = WOO.prepare(payload)
    assert isinstance(skipped, Skipped) and skipped.external_id == "727" and status in skipped.detail
    del payload["date_modified_gmt"]  # the schema would refuse it: still skipped, never queued
    assert isinstance(WOO.prepare(payload), Skipped)


def test_a_plugin_status_maps_through_the_channels_status_map_and_otherwise_fails() -> None:
    payload = copy.deepcopy(docs_orders()[723])
    payload["status"] = "shipped"
    rejected = WOO.prepare(payload)
    assert isinstance(rejected, Rejected) and rejected.reason == "mapping_failed"
    assert "unknown value 'shipped'" in rejected.detail and "status_map" in rejected.detail
    order = map_order(payload, status_map={"shipped": "completed"})
    assert (order.payment_status, order.fulfillment_status) == ("partially_refunded", "fulfilled")
    config = hub_config("woo_plugins", "woocommerce", status_map={"shipped": "completed"})
    landed = WOO.prepare(payload, config.channel("woo_plugins"))
    assert isinstance(landed, Landed) and landed.canonical.fulfillment_status == "fulfilled"
    payload["status"] = "awaiting-pickup"  # declared nowhere: still a mapping_failed exception
    assert isinstance(WOO.prepare(payload, config.channel("woo_plugins")), Rejected)


# ------------------------------------------------------------------------------------------ refunds


def docs_order_with_refunds() -> dict[str, Any]:
    return one("order_723_with_refunds_docs_example.json")


def test_refund_objects_say_which_line_was_refunded_docs_refund_724() -> None:
    order = map_order(docs_order_with_refunds())
    album, ninja = order.lines
    # refund 724 took back one "Woo Album #2" (line 311) after completion; refund 726 is money only
    assert (album.external_line_id, album.refunded_quantity, album.shipped_quantity) == ("311", 1, 1)
    assert (ninja.refunded_quantity, ninja.shipped_quantity) == (0, 1)
    assert album.restocked_quantity == 0  # the line carries no _restock_refunded_items: nothing came back
    assert order.totals.refunded == Decimal("19.00")


def test_restocked_units_are_those_put_back_after_completion_never_more() -> None:
    payload = docs_order_with_refunds()
    album = payload["line_items"][0]
    album["meta_data"] = [{"id": 1, "key": "_restock_refunded_items", "value": "1"}]
    assert map_order(payload).lines[0].restocked_quantity == 1
    # The same refund made before completion: the unit never shipped, so its restock is no return.
    payload["channelhub_refunds"][1]["date_created_gmt"] = "2017-03-21T19:50:00"
    line = map_order(payload).lines[0]
    assert (line.refunded_quantity, line.shipped_quantity, line.restocked_quantity) == (1, 0, 0)


def test_refund_objects_must_cover_the_summary_and_name_real_lines() -> None:
    payload = docs_order_with_refunds()
    payload["channelhub_refunds"] = payload["channelhub_refunds"][:1]
    with pytest.raises(MappingError, match="refund 724 has no object in channelhub_refunds"):
        map_order(payload)
    payload = docs_order_with_refunds()
    payload["channelhub_refunds"][1]["line_items"][0]["meta_data"][0]["value"] = "999"
    with pytest.raises(MappingError, match="_refunded_item_id 999 is no line of the order"):
        map_order(payload)
    payload = docs_order_with_refunds()
    payload["channelhub_refunds"][1]["line_items"][0]["quantity"] = 1
    assert any("channelhub_refunds/1/line_items/0/quantity" in e for e in schema_errors(payload))
    with pytest.raises(MappingError, match="expected a whole number <= 0"):
        map_order(payload)


def test_without_refund_objects_the_summary_alone_refunds_no_line() -> None:
    order = map_order(docs_orders()[723])  # a webhook delivery or a hand-made file: no channelhub_refunds
    assert [line.refunded_quantity for line in order.lines] == [0, 0]
    assert [line.shipped_quantity for line in order.lines] == [1, 1]


def test_channelhub_map_takes_a_channels_status_map_and_skips_drafts(tmp_path: Path) -> None:
    orders = copy.deepcopy(list(docs_orders().values()))
    orders[0]["status"], orders[1]["status"] = "checkout-draft", "shipped"
    page = tmp_path / "orders.json"
    page.write_text(json.dumps(orders))
    config, _ = write_hub_config(tmp_path, "woo_cli", "woocommerce", status_map={"shipped": "completed"})

    def run(*options: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "channelhub.cli", "map", *options, str(page)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    plain = run("--platform", "woocommerce")
    assert plain.returncode == 1 and "unknown value 'shipped'" in plain.stderr
    assert "727: skipped: status 'checkout-draft'" in plain.stderr and json.loads(plain.stdout) == []
    with_channel = run("--channel", "woo_cli", "--config", str(config))
    assert with_channel.returncode == 0, with_channel.stderr
    [mapped] = json.loads(with_channel.stdout)
    assert (mapped["external_id"], mapped["fulfillment_status"]) == ("723", "fulfilled")
