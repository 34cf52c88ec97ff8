"""Table tests of the Shopify mapping (mappings/shopify.py), its connector schema and mappings/common.py.

Fixtures (tests/fixtures/shopify): order_450789469_docs_example.json is Shopify's own REST 2024-10 example
order, verbatim from Shopify/shopify-api-ruby test/rest/2024_10/order_test.rb; the others are built in the
same shape and their amounts add up the way Shopify's do.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator

from canonical.order import MappingError, canonical_order_schema
from mappings import common
from platforms.shopify.mapping import map_order, unwrap

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
FIXTURE_FILES = sorted(path.name for path in FIXTURES.glob("*.json"))

CONNECTOR_SCHEMA = json.loads(resources.files("platforms").joinpath("shopify/order.schema.json").read_text())
connector_validator = Draft202012Validator(CONNECTOR_SCHEMA)
canonical_validator = Draft202012Validator(canonical_order_schema())


def load(name: str) -> list[dict[str, Any]]:
    return unwrap(json.loads((FIXTURES / name).read_text()))


def docs_order() -> dict[str, Any]:
    return load("order_450789469_docs_example.json")[0]


def schema_errors(payload: dict[str, Any]) -> list[str]:
    errors = connector_validator.iter_errors(payload)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- every fixture -------------------------------------------------------------------------------


def test_connector_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(CONNECTOR_SCHEMA)
    assert CONNECTOR_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_fixture_set_is_complete() -> None:
    assert len(FIXTURE_FILES) == 7
    assert sum(len(load(name)) for name in FIXTURE_FILES) == 9


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_passes_connector_schema_and_maps_to_a_valid_canonical_order(name: str) -> None:
    for payload in load(name):
        assert schema_errors(payload) == []
        canonical = map_order(payload).to_json()
        assert [e.message for e in canonical_validator.iter_errors(canonical)] == []
        assert canonical["platform"] == "shopify"


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_mapping_is_deterministic_and_leaves_its_input_alone(name: str) -> None:
    for payload in load(name):
        untouched = copy.deepcopy(payload)
        first, second = map_order(payload), map_order(payload)
        assert first == second
        assert json.dumps(first.to_json(), sort_keys=True) == json.dumps(second.to_json(), sort_keys=True)
        assert payload == untouched


# -- fixture -> expected canonical fields --------------------------------------------------------

# (external_line_id, sku, channel_product_id, channel_variant_id, title, quantity, unit_price, line_total,
#  shipped_quantity, refunded_quantity, restocked_quantity)
Line = tuple[str, str | None, str | None, str | None, str, int, str, str, int, int, int]

BOB = {"external_id": "207119551", "name": "Bob Norman", "email": "bob.norman@mail.example.com",
       "phone": "+16136120707"}  # fmt: skip
BOB_ADDRESS = {"name": "Bob Norman", "phone": "+1(502)-459-2181", "country_code": "US",
               "province": "Kentucky", "city": "Louisville", "district": None,
               "address1": "Chestnut Street 92", "address2": None, "postal_code": "40202"}  # fmt: skip
SAM = {"external_id": "7019378004006", "name": "Sam Lee", "email": "sam.lee@example.com",
       "phone": "+14155550199"}  # fmt: skip
SAM_ADDRESS = {"name": "Sam Lee", "phone": None, "country_code": "US", "province": "California",
               "city": "San Francisco", "district": None, "address1": "500 Howard St", "address2": None,
               "postal_code": "94105"}  # fmt: skip


def totals(subtotal: str, discount: str, shipping: str, tax: str, total: str, refunded: str) -> dict:
    names = ("subtotal", "discount", "shipping", "tax", "total", "refunded")
    return dict(zip(names, (subtotal, discount, shipping, tax, total, refunded), strict=True))


CASES = [
    pytest.param(
        "order_450789469_docs_example.json", 0,
        {
            "external_id": "450789469", "number": "#1001", "currency": "USD",
            # "2008-01-10T11:00:00-05:00" in the shop's zone
            "created_at": "2008-01-10T16:00:00Z", "updated_at": "2008-01-10T16:00:00Z", "cancelled_at": None,
            "payment_status": "partially_refunded", "fulfillment_status": "unfulfilled", "cancelled": False,
            # subtotal_price is passed through as Shopify sent it (the docs example's 597.00 ignores its own
            # discount); refunded is the one successful refund transaction.
            "totals": totals("597.00", "10.00", "0.00", "11.94", "598.94", "209.00"),
            "customer": BOB, "shipping_address": BOB_ADDRESS,
        },
        [
            # The only fulfillment has status "failure": nothing shipped, so legacy restocks restock nothing.
            ("466157049", "IPOD2008GREEN", "632910392", "39072856", "IPod Nano - 8gb - green", 1, "199.00",
             "195.66", 0, 1, 0),
            ("518995019", "IPOD2008RED", "632910392", "49148385", "IPod Nano - 8gb - red", 1, "199.00",
             "195.67", 0, 0, 0),
            ("703073504", "IPOD2008BLACK", "632910392", "457924702", "IPod Nano - 8gb - black", 1, "199.00",
             "195.67", 0, 1, 0),
        ],
        id="docs-example-450789469",
    ),
    pytest.param(
        "order_1002_partial_refund_return_and_cancel.json", 0,
        {
            "external_id": "5731247980838", "number": "#1002", "currency": "USD",
            "created_at": "2024-10-02T13:15:27Z", "updated_at": "2024-10-09T20:40:03Z", "cancelled_at": None,
            "payment_status": "partially_refunded", "fulfillment_status": "partial", "cancelled": False,
            # refunded: 10.00 + 26.45 succeeded; the 8.00 shipping refund is still pending.
            "totals": totals("90.00", "10.00", "8.00", "7.20", "105.20", "36.45"),
            "customer": {"external_id": "7019230150694", "name": "Ana García",
                         "email": "ana.garcia@example.com", "phone": None},
            "shipping_address": {"name": "Ana García", "phone": "+12125550147", "country_code": "US",
                                 "province": "New York", "city": "New York", "district": None,
                                 "address1": "148 W 37th St", "address2": "Suite 1204",
                                 "postal_code": "10018"},
        },
        [
            # total_discount and discount_allocations both say 7.50: subtracted once.
            # One of the two shipped units came back (restock_type "return").
            ("14026584752422", "TEE-MER-BLK-M", "7563914985766", "42918269321510",
             "Merino Crew Tee - Black / M", 3, "25.00", "67.50", 2, 1, 1),
            ("14026584785190", "MUG-ENA-WHT", "7563915018534", "42918269354278", "Enamel Mug - White",
             2, "12.50", "22.50", 0, 1, 0),  # restock_type "cancel": never shipped, nothing to restock
        ],
        id="partial-refund-return-and-cancel",
    ),
    pytest.param(
        "order_1003_cancelled_voided.json", 0,
        {
            "external_id": "5731263152166", "number": "#1003", "currency": "GBP",
            "created_at": "2024-10-03T21:10:05Z", "updated_at": "2024-10-04T07:05:42Z",
            "cancelled_at": "2024-10-04T07:05:41Z", "cancelled": True,
            "payment_status": "voided", "fulfillment_status": "unfulfilled",
            # the refund holds a "void" transaction: no money was refunded
            "totals": totals("36.00", "0.00", "4.95", "6.83", "40.95", "0"),
            "customer": {"external_id": "7019245420838", "name": "Oliver Hughes",
                         "email": "oliver.hughes@example.co.uk", "phone": "+447700900123"},
            "shipping_address": {"name": "Oliver Hughes", "phone": "+447700900123", "country_code": "GB",
                                 "province": None, "city": "Bristol", "district": None,
                                 "address1": "27 Queen Square", "address2": "Flat 3",
                                 "postal_code": "BS1 4ND"},
        },
        [("14026611425318", "CUSH-LIN-SAGE", "7563931271206", "42918301433894", "Linen Cushion Cover - Sage",
          2, "18.00", "36.00", 0, 2, 0)],
        id="cancelled-voided",
    ),
    pytest.param(
        "order_1004_guest_pos_no_sku_big_ids.json", 0,
        {
            "external_id": "820982911946154508", "number": "#1004", "currency": "EUR",
            "created_at": "2024-10-05T12:03:11Z", "updated_at": "2024-10-05T12:03:12Z", "cancelled_at": None,
            "payment_status": "unpaid", "fulfillment_status": "unfulfilled", "cancelled": False,
            "totals": totals("101.00", "0.00", "0.00", "16.13", "101.00", "0"),
            "customer": None, "shipping_address": None,
        },
        [
            # a custom item: sku "", no product or variant
            ("866550311766439020", None, None, None, "Gift wrapping", 1, "5.00", "5.00", 0, 0, 0),
            # sku null: the warehouse resolves it through the variant id
            ("141249953214522974", None, "788032119674292922", "642667041472713922", "Ceramic Vase - Blue",
             2, "48.00", "96.00", 0, 0, 0),
        ],
        id="guest-pos-no-sku-big-ids",
    ),
    pytest.param(
        "order_1005_partly_fulfilled_presentment_usd.json", 0,
        {
            "external_id": "5731299688742", "number": "#1005", "currency": "CAD",
            "created_at": "2024-10-06T23:45:00Z", "updated_at": "2024-10-07T14:12:30Z", "cancelled_at": None,
            "payment_status": "paid", "fulfillment_status": "partial", "cancelled": False,
            # shop money (CAD), not the buyer's USD; discount covers the 4.99 shipping discount too
            "totals": totals("67.75", "9.19", "9.99", "9.45", "82.20", "0"),
            "customer": {"external_id": "7019301392422", "name": "Léa Tremblay",
                         "email": "lea.tremblay@example.ca", "phone": "+15145550143"},
            "shipping_address": {"name": "Léa Tremblay", "phone": "+15145550143", "country_code": "CA",
                                 "province": "Quebec", "city": "Montréal", "district": None,
                                 "address1": "3510 Boulevard Saint-Laurent", "address2": "App. 4B",
                                 "postal_code": "H2X 2V2"},
        },
        [
            # 2 of 3 in the successful fulfillment; the cancelled fulfillment of the third does not count
            ("14026667294758", "SOCK-WOOL-GRY-L", "7563960401958", "42918349242406",
             "Wool Hiking Socks - Grey / L", 3, "14.00", "37.80", 2, 0, 0),
            ("14026667327526", "CAP-TRL-OLV", "7563960434726", "42918349275174", "Trail Cap - Olive",
             1, "29.95", "29.95", 1, 0, 0),
        ],
        id="partly-fulfilled-presentment-usd",
    ),
    pytest.param(
        "order_1009_refunded_legacy_restock_envelope.json", 0,
        {
            "external_id": "5731320987686", "number": "#1009", "currency": "AUD",
            # +11:00 shop: the local date is a day ahead of UTC
            "created_at": "2024-11-01T23:30:00Z", "updated_at": "2024-11-11T22:00:00Z", "cancelled_at": None,
            "payment_status": "refunded", "fulfillment_status": "fulfilled", "cancelled": False,
            "totals": totals("178.00", "0.00", "12.00", "17.27", "190.00", "190.00"),
            # customer.email is null: the order's email is used
            "customer": {"external_id": "7019356409894", "name": "Jack Nguyen",
                         "email": "jack.nguyen@example.com.au", "phone": None},
            "shipping_address": {"name": "Jack Nguyen", "phone": None, "country_code": "AU",
                                 "province": "New South Wales", "city": "Sydney", "district": None,
                                 "address1": "88 George St", "address2": None, "postal_code": "2000"},
        },
        # one refund line without restock_type (restock: true), one "legacy_restock"; both units had shipped
        [("14026702651430", "SKIL-CI-26", "7563982340134", "42918386794534", "Cast Iron Skillet 26cm",
          2, "89.00", "178.00", 2, 2, 2)],
        id="refunded-legacy-restock-order-envelope",
    ),
    pytest.param(
        "orders_page_status_any.json", 0,
        {
            "external_id": "5731335766310", "number": "#1006", "currency": "USD",
            "created_at": "2024-10-10T15:00:00Z", "updated_at": "2024-10-10T15:00:30Z", "cancelled_at": None,
            "payment_status": "paid", "fulfillment_status": "fulfilled", "cancelled": False,
            "totals": totals("32.00", "0.00", "0.00", "0.00", "32.00", "0"),
            "customer": SAM, "shipping_address": SAM_ADDRESS,
        },
        [("14026721329446", "TOTE-CNV-NAT", "7013360664723", "7013360664736", "Canvas Tote",
          1, "32.00", "32.00", 1, 0, 0)],
        id="orders-page-1006-paid-fulfilled",
    ),
    pytest.param(
        "orders_page_status_any.json", 1,
        {
            "external_id": "5731335799078", "number": "#1007",
            # one second before local midnight: the next day in UTC
            "created_at": "2024-10-11T06:59:59Z", "updated_at": "2024-10-11T07:00:05Z",
            "payment_status": "authorized", "fulfillment_status": "unfulfilled", "cancelled": False,
            "totals": totals("64.00", "0.00", "0.00", "0.00", "64.00", "0"),
        },
        [("14026721362214", "WAL-LTH-BRN", "7013360681107", "7013360681120", "Leather Wallet",
          1, "64.00", "64.00", 0, 0, 0)],
        id="orders-page-1007-authorized",
    ),
    pytest.param(
        "orders_page_status_any.json", 2,
        {
            "external_id": "5731335831846", "number": "#1008",
            "payment_status": "paid",  # partially_paid: a deposit was captured
            "fulfillment_status": "unfulfilled",
            "totals": totals("420.00", "0.00", "0.00", "0.00", "420.00", "0"),
        },
        [("14026721394982", "TBL-OAK-SIDE", "7013360697491", "7013360697504", "Oak Side Table",
          1, "420.00", "420.00", 0, 0, 0)],
        id="orders-page-1008-partially-paid",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "index", "expected", "lines"), CASES)
def test_fixture_maps_to_expected_canonical_order(
    name: str, index: int, expected: dict[str, Any], lines: list[Line]
) -> None:
    canonical = map_order(load(name)[index]).to_json()
    assert {key: canonical[key] for key in expected} == expected
    assert [
        (
            line["external_line_id"], line["sku"], line["channel_product_id"], line["channel_variant_id"],
            line["title"], line["quantity"], line["unit_price"], line["line_total"], line["shipped_quantity"],
            line["refunded_quantity"], line["restocked_quantity"],
        )
        for line in canonical["lines"]
    ] == lines  # fmt: skip


def test_inside_the_hub_times_are_utc_and_money_is_decimal() -> None:
    order = map_order(docs_order())
    assert order.created_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert order.created_at.utcoffset() == timedelta(0)
    assert order.totals.refunded == Decimal("209.00")
    assert all(isinstance(line.unit_price, Decimal) for line in order.lines)


# -- unwrap --------------------------------------------------------------------------------------


def test_unwrap_accepts_a_bare_order_an_order_envelope_and_an_orders_page() -> None:
    order = docs_order()
    assert unwrap(order) == [order]
    assert unwrap({"order": order}) == [order]
    assert unwrap({"orders": [order, order]}) == [order, order]
    assert unwrap({"orders": []}) == []


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ([{"id": 1}], "JSON object"),
        ("#1001", "JSON object"),
        ({"orders": {"id": 1}}, '"orders" must be a list'),
        ({"orders": [{"id": 1}, 7]}, "orders[1]"),
        ({"order": [{"id": 1}]}, '"order" must be an order object'),
        ({"errors": "Not Found"}, "error body"),
        ({"count": 3}, "not a Shopify order document"),
    ],
)
def test_unwrap_refuses_anything_else(document: Any, detail: str) -> None:
    with pytest.raises(MappingError) as caught:
        unwrap(document)
    assert detail in caught.value.detail
    assert caught.value.reason == "mapping_failed"


# -- broken payloads -----------------------------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    """A mutation setting (or, with _DELETE, removing) the value at a dotted path; digits index lists."""

    def mutate(order: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = order
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return mutate


_DELETE = object()


def _all(*mutations: Any) -> Any:
    def mutate(order: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(order)

    return mutate


# (mutation, does the connector schema catch it?, what MappingError.detail must mention)
BROKEN = [
    pytest.param(_set("id", _DELETE), True, "id: missing", id="missing-id"),
    pytest.param(_set("id", 450789469.0), False, "id: expected an id", id="float-id"),
    pytest.param(_set("created_at", "2008-01-10 11:00:00"), True, "created_at", id="time-without-offset"),
    pytest.param(_set("updated_at", "2008-13-10T11:00:00-05:00"), False, "updated_at: invalid time",
                 id="month-13"),
    pytest.param(_set("cancelled_at", "yesterday"), True, "cancelled_at", id="bad-cancelled-at"),
    pytest.param(_set("financial_status", "chargeback"), False,
                 "financial_status: unknown value 'chargeback'", id="unknown-financial-status"),
    pytest.param(_set("fulfillment_status", "shipped"), False, "fulfillment_status: unknown value",
                 id="unknown-fulfillment-status"),
    pytest.param(_set("line_items", {"id": 1}), True, "line_items: expected a list",
                 id="line-items-not-a-list"),
    pytest.param(_set("line_items", _DELETE), True, "line_items: expected a list", id="missing-line-items"),
    pytest.param(_all(_set("line_items.0.price", "199,00"), _set("line_items.0.price_set", _DELETE)), True,
                 "line_items[0].price", id="comma-price"),
    pytest.param(_set("line_items.0.price_set.shop_money.amount", "abc"), True,
                 "line_items[0].price_set.shop_money.amount", id="bad-shop-money"),
    pytest.param(_set("line_items.1.quantity", -1), True, "line_items[1].quantity", id="negative-quantity"),
    pytest.param(_set("line_items.2.id", None), True, "line_items[2].id", id="line-without-id"),
    pytest.param(_set("currency", "usd"), True, "currency", id="lowercase-currency"),
    pytest.param(_set("refunds.0.refund_line_items.0.line_item_id", 999), False,
                 "999 is not a line item of this order", id="refund-of-unknown-line"),
    pytest.param(_set("refunds.0.refund_line_items.0.quantity", 2), False,
                 "line_items[2].quantity: 1, yet 2 units are refunded", id="over-refunded-line"),
    pytest.param(_set("refunds.0.transactions.0.currency", "EUR"), False, "not shop currency USD",
                 id="refund-in-presentment-currency"),
    pytest.param(_all(_set("fulfillments.0.status", "success"), _set("fulfillments.0.line_items", "all")),
                 True, "fulfillments[0].line_items", id="bad-fulfillment"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "schema_catches", "detail"), BROKEN)
def test_broken_payload_is_refused(mutate: Any, schema_catches: bool, detail: str) -> None:
    order = docs_order()
    mutate(order)
    if schema_catches:
        assert schema_errors(order) != []
    else:  # the schema cannot see it (a value, not a shape); the mapping must
        assert schema_errors(order) == []
    with pytest.raises(MappingError) as caught:
        map_order(order)
    assert detail in caught.value.detail
    assert caught.value.reason == "mapping_failed"


def test_missing_total_without_its_set_fails_both_layers() -> None:
    order = docs_order()
    del order["total_price"], order["total_price_set"]
    assert any("total_price" in error for error in schema_errors(order))
    with pytest.raises(MappingError, match="total_price: missing"):
        map_order(order)


def test_mapping_error_names_the_order() -> None:
    order = docs_order()
    order["financial_status"] = "chargeback"
    with pytest.raises(MappingError, match=r"^shopify order 450789469: financial_status"):
        map_order(order)


def test_a_non_object_payload_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="expected a Shopify order object"):
        map_order([docs_order()])  # type: ignore[arg-type]


# -- individual rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("financial_status", "payment_status"),
    [
        ("pending", "unpaid"),
        ("authorized", "authorized"),
        ("partially_paid", "paid"),
        ("paid", "paid"),
        ("partially_refunded", "partially_refunded"),
        ("refunded", "refunded"),
        ("voided", "voided"),
        ("expired", "voided"),
        (None, "unpaid"),
    ],
)
def test_payment_status_from_financial_status(financial_status: str | None, payment_status: str) -> None:
    order = docs_order()
    order["financial_status"] = financial_status
    assert map_order(order).payment_status == payment_status


@pytest.mark.parametrize(
    ("shopify_status", "canonical_status"),
    [(None, "unfulfilled"), ("partial", "partial"), ("fulfilled", "fulfilled"), ("restocked", "unfulfilled")],
)
def test_fulfillment_status(shopify_status: str | None, canonical_status: str) -> None:
    order = docs_order()
    order["fulfillment_status"] = shopify_status
    assert map_order(order).fulfillment_status == canonical_status


def test_shop_money_is_preferred_over_the_plain_field_which_is_the_fallback() -> None:
    order = docs_order()
    order["total_price"] = "1.00"  # disagrees with total_price_set.shop_money: the set wins
    assert map_order(order).totals.total == Decimal("598.94")
    del order["total_price_set"]
    assert map_order(order).totals.total == Decimal("1.00")


def test_presentment_money_is_never_used() -> None:
    (order,) = load("order_1005_partly_fulfilled_presentment_usd.json")
    assert order["total_price_set"]["presentment_money"] == {"amount": "60.43", "currency_code": "USD"}
    assert map_order(order).totals.total == Decimal("82.20")


def test_shipping_falls_back_to_the_sum_of_shipping_lines() -> None:
    (order,) = load("order_1005_partly_fulfilled_presentment_usd.json")
    del order["total_shipping_price_set"]
    order["shipping_lines"].append({**order["shipping_lines"][0], "price": "2.50", "price_set": None})
    assert map_order(order).totals.shipping == Decimal("12.49")


def test_line_discount_uses_total_discount_only_without_allocations() -> None:
    (order,) = load("order_1002_partial_refund_return_and_cancel.json")
    tee = order["line_items"][0]
    assert tee["total_discount"] == "7.50" and len(tee["discount_allocations"]) == 1
    assert map_order(order).lines[0].line_total == Decimal("67.50")  # not 60.00: counted once
    tee["discount_allocations"] = []
    assert map_order(order).lines[0].line_total == Decimal("67.50")  # from total_discount alone
    tee["total_discount"], tee["total_discount_set"] = "0.00", None
    assert map_order(order).lines[0].line_total == Decimal("75.00")


def test_shipped_quantity_is_capped_at_the_line_quantity() -> None:
    (order,) = load("order_1005_partly_fulfilled_presentment_usd.json")
    order["fulfillments"].append({**order["fulfillments"][0], "id": 1, "name": "#1005.3"})  # duplicated event
    socks, cap = map_order(order).lines
    assert (socks.quantity, socks.shipped_quantity) == (3, 3)
    assert (cap.quantity, cap.shipped_quantity) == (1, 1)


def test_legacy_restock_counts_only_units_that_had_shipped() -> None:
    (order,) = unwrap(json.loads((FIXTURES / "order_1009_refunded_legacy_restock_envelope.json").read_text()))
    order["fulfillments"][0]["line_items"][0]["quantity"] = 1  # only one of the two skillets shipped
    (line,) = map_order(order).lines
    assert (line.shipped_quantity, line.refunded_quantity, line.restocked_quantity) == (1, 2, 1)


def test_no_restock_refund_is_refunded_but_not_restocked() -> None:
    (order,) = load("order_1002_partial_refund_return_and_cancel.json")
    order["refunds"][0]["refund_line_items"][0]["restock_type"] = "no_restock"
    tee = map_order(order).lines[0]
    assert (tee.shipped_quantity, tee.refunded_quantity, tee.restocked_quantity) == (2, 1, 0)


def test_customer_without_a_record_is_none_and_names_fall_back() -> None:
    order = docs_order()
    order["customer"] = None
    assert map_order(order).customer is None
    order["customer"] = {"id": 5, "first_name": "", "last_name": None, "email": None, "phone": None}
    customer = map_order(order).customer
    assert customer is not None
    # no name; email and phone from the order
    assert (customer.external_id, customer.name, customer.email, customer.phone) == (
        "5", None, "bob.norman@mail.example.com", "+557734881234",
    )  # fmt: skip


def test_address_name_falls_back_to_first_and_last_name() -> None:
    order = docs_order()
    order["shipping_address"]["name"] = ""
    order["shipping_address"]["first_name"] = "Robert"
    address = map_order(order).shipping_address
    assert address is not None and address.name == "Robert Norman"


# -- mappings/common.py --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2008-01-10T11:00:00-05:00", datetime(2008, 1, 10, 16, 0, 0, tzinfo=UTC)),
        ("2024-11-02T10:30:00+11:00", datetime(2024, 11, 1, 23, 30, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250+00:00", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_iso_datetime(text: str, utc: datetime) -> None:
    parsed = common.parse_iso_datetime(text, "t")
    assert parsed == utc and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "bad", ["2024-05-01T12:00:00", "2024-05-01", "2024-02-30T12:00:00Z", "yesterday", "", None, 1714564800]
)
def test_parse_iso_datetime_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^created_at: "):
        common.parse_iso_datetime(bad, "created_at")


def test_parse_optional_iso_datetime() -> None:
    assert common.parse_optional_iso_datetime(None, "t") is None
    assert common.parse_optional_iso_datetime("", "t") is None
    assert common.parse_optional_iso_datetime("2024-05-01T12:00:00Z", "t") == utc(2024, 5, 1, 12)


def test_parse_local_datetime_with_fixed_offset_and_zone() -> None:
    beijing = timedelta(hours=8)  # Taobao / Youzan "yyyy-MM-dd HH:mm:ss" is GMT+8
    assert common.parse_local_datetime("2024-05-01 12:00:00", beijing, "t") == utc(2024, 5, 1, 4)
    assert common.parse_local_datetime("2024-05-01T00:30:00", beijing, "t") == utc(2024, 4, 30, 16, 30)
    berlin = ZoneInfo("Europe/Berlin")  # a WooCommerce site timezone, with daylight saving
    assert common.parse_local_datetime("2024-07-01 12:00:00", berlin, "t") == utc(2024, 7, 1, 10)
    assert common.parse_local_datetime("2024-01-01 12:00:00", berlin, "t") == utc(2024, 1, 1, 11)
    assert common.parse_local_datetime("2024-05-01 12:00:00", timedelta(0), "t").tzinfo is UTC


@pytest.mark.parametrize("bad", ["2024-05-01T12:00:00+08:00", "2024-05-01", "2024-13-01 00:00:00", None, 0])
def test_parse_local_datetime_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^date_created: "):
        common.parse_local_datetime(bad, timedelta(hours=8), "date_created")


def test_parse_epoch_seconds() -> None:
    expected = datetime(2022, 7, 22, 16, 0, tzinfo=UTC)
    assert common.parse_epoch_seconds(1658505600, "t") == expected
    assert common.parse_epoch_seconds("1658505600", "t") == expected
    assert common.parse_epoch_seconds(0, "t") == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", [1658505600000, -1, 1658505600.5, True, "16585O5600", "", None])
def test_parse_epoch_seconds_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^create_time: "):
        common.parse_epoch_seconds(bad, "create_time")


@pytest.mark.parametrize(
    ("value", "exact"),
    [
        ("199.00", "199.00"),
        ("-5.00", "-5.00"),
        ("0", "0"),
        (195.66, "195.66"),  # a JSON number: via str, never via the binary float
        (0.1, "0.1"),
        (42, "42"),
        ("12345678901234567890.12", "12345678901234567890.12"),
        (Decimal("3.30"), "3.30"),
    ],
)
def test_money_is_exact(value: Any, exact: str) -> None:
    amount = common.money(value, "price")
    assert isinstance(amount, Decimal) and format(amount, "f") == exact


def test_money_from_a_json_float_is_not_the_binary_float() -> None:
    parsed = json.loads('{"subtotal": 195.66}')["subtotal"]
    assert isinstance(parsed, float)
    assert common.money(parsed, "subtotal") == Decimal("195.66") != Decimal(parsed)


@pytest.mark.parametrize("bad", ["199,00", "1e3", " 1.00", "", "NaN", None, True, math.nan, math.inf, {}])
def test_money_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^line_items\[0\]\.price: "):
        common.money(bad, "line_items[0].price")


def test_optional_money() -> None:
    assert common.optional_money(None, "x") is None
    assert common.optional_money("1.50", "x") == Decimal("1.50")


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(1999, "19.99"), ("100", "1.00"), (0, "0.00"), (5, "0.05"), (-250, "-2.50"),
     (12345678901234567, "123456789012345.67")],
)  # fmt: skip
def test_money_from_minor_units(fen: Any, yuan: str) -> None:
    assert format(common.money_from_minor_units(fen, "order_price"), "f") == yuan


def test_money_from_minor_units_other_exponents() -> None:
    assert common.money_from_minor_units(1500, "x", exponent=0) == Decimal("1500")  # JPY has no minor unit
    assert format(common.money_from_minor_units(1500, "x", exponent=3), "f") == "1.500"  # KWD


@pytest.mark.parametrize("bad", [19.99, 1999.0, True, "19.99", "", None])
def test_money_from_minor_units_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^order_price: expected an integer amount"):
        common.money_from_minor_units(bad, "order_price")


@pytest.mark.parametrize(
    ("value", "text"), [(None, None), ("", None), ("   ", None), (" Flat 3 ", "Flat 3"), (94105, "94105")]
)
def test_blank_to_none(value: Any, text: str | None) -> None:
    assert common.blank_to_none(value, "address2") == text


@pytest.mark.parametrize("bad", [{"a": 1}, ["x"], 1.5, True])
def test_blank_to_none_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^zip: expected text"):
        common.blank_to_none(bad, "zip")


def test_big_ids_stay_exact() -> None:
    big = json.loads('{"id": 820982911946154508}')["id"]  # > 2**53: a float would read 820982911946154496
    assert big > 2**53
    assert common.id_str(big, "id") == "820982911946154508"
    assert common.id_str("3704612354559743232", "order_id") == "3704612354559743232"
    assert common.id_str(" 42 ", "id") == "42"
    assert common.optional_id_str(None, "product_id") is None
    assert common.optional_id_str("", "product_id") is None
    assert common.optional_id_str(7, "product_id") == "7"


@pytest.mark.parametrize("bad", [float(820982911946154508), 1.0, True, "", "  ", None, [1]])
def test_id_str_refuses(bad: Any) -> None:
    with pytest.raises(MappingError, match=r"^id: expected an id"):
        common.id_str(bad, "id")


def test_join_name() -> None:
    assert common.join_name("Bob", "Norman") == "Bob Norman"
    assert common.join_name(" Léa ", None) == "Léa"
    assert common.join_name("", None) is None
