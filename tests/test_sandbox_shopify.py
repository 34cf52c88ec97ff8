"""Contract tests of the Shopify sandbox over real HTTP, plus the world it renders.

The world's clock is frozen, so what a request sees is fixed; expected values come from the world itself
(brute force over its orders) or from the Shopify contract (docs/platform-notes.md, Shopify).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.shopify import API_PREFIX, SHOP_LOCATION_ID
from sandbox.world import MAX_ORDER_LIFETIME, World

START = datetime(2024, 11, 1, tzinfo=UTC)  # the stream crosses the end of US daylight time (Nov 3, 06:00 UTC)
NOW = START + timedelta(days=4)
INTERVAL = timedelta(minutes=2)
TOKEN = "shpat_sandbox_test_0123456789abcdef"
ORDERS = f"{API_PREFIX}/orders.json"
COUNT = f"{API_PREFIX}/orders/count.json"
NEW_YORK = ZoneInfo("America/New_York")
SHOP_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}-0[45]:00")
MONEY = re.compile(r"-?\d+\.\d{2}")


def sandbox(**options: Any) -> Any:
    options.setdefault("seed", 11)
    options.setdefault("clock", Clock.frozen(NOW))
    options.setdefault("bucket_size", 10_000)
    options.setdefault("leak_per_second", 10_000.0)
    return run_sandbox("shopify", access_token=TOKEN, start=START, interval=INTERVAL, **options)


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningSandbox]:
    with sandbox() as running:
        yield running


def get(sb: RunningSandbox, path: str, token: str = TOKEN, **params: Any) -> requests.Response:
    url = path if path.startswith("http") else sb.base_url + path
    return requests.get(url, params=params or None, headers={"X-Shopify-Access-Token": token}, timeout=10)


def links(response: requests.Response) -> dict[str, str]:
    """rel -> URL from a Link header, parsed the way Shopify's SDKs do."""
    header = response.headers.get("Link", "")
    return {rel: url for url, rel in re.findall(r'<([^>]*)>;\s*rel="([^"]*)"', header)}


def shop_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def walk(sb: RunningSandbox, **params: Any) -> list[requests.Response]:
    responses = [get(sb, ORDERS, **params)]
    while "next" in links(responses[-1]):
        responses.append(get(sb, links(responses[-1])["next"]))
        assert len(responses) < 500, "pagination does not end"
    return responses


# ------------------------------------------------------------------------------------------ the world


def test_catalog_has_unmapped_and_blank_sku_variants_with_stable_ids() -> None:
    catalog = World(seed=11).catalog
    assert 20 <= len(catalog.variants) <= 40
    unmapped = [v for v in catalog.variants if v.unmapped]
    blank = [v for v in catalog.variants if v.listing("shopify").sku == ""]
    assert len(unmapped) >= 2 and len(blank) >= 2
    assert not any(v.unmapped for v in blank)  # blank-SKU variants are mapped (by variant id) in the hub
    ids = [v.listing("shopify").variant_id for v in catalog.variants]
    assert len(set(ids)) == len(ids) and min(ids) > 2**32  # large, unique Shopify ids
    again = World(seed=11).catalog
    assert [v.platform_ids("shopify") for v in again.variants] == [
        v.platform_ids("shopify") for v in catalog.variants
    ]
    assert catalog.variants[0].platform_ids("shopify")["variant_id"] == str(ids[0])
    assert isinstance(catalog.variants[0].price, Decimal) and catalog.variants[0].title


def test_world_window_arithmetic_matches_brute_force() -> None:
    world = World(seed=4, start=START, interval=timedelta(seconds=47), clock=Clock.frozen(NOW))
    a, b = START + timedelta(hours=30), START + timedelta(hours=31, minutes=13)
    created = [world.get(i).created_at for i in range(world.order_count(b + timedelta(minutes=5)))]
    assert created == sorted(created)  # creation times never go backwards
    assert world.order_count_between(a, b) == sum(1 for t in created if a <= t <= b)
    assert world.order_count(NOW) == sum(1 for _ in range(world.order_count(NOW))) > 0
    assert world.state(world.order_count(NOW), NOW) is None  # the next order does not exist yet

    window = (START + timedelta(days=2), START + timedelta(days=2, hours=2))
    found = [state.index for state in world.updated_between(*window, now=NOW)]
    brute = [
        i
        for i in range(world.order_count(NOW))
        if window[0] <= world.state(i, NOW).updated_at <= window[1]  # type: ignore[union-attr]
    ]
    assert found == brute and len(found) > 100


def test_orders_are_lazy_and_live_within_their_lifetime() -> None:
    world = World(seed=2, start=START, interval=timedelta(seconds=1))
    started = time.perf_counter()
    far = world.get(5_000_000)  # computed on its own, without generating the ones before it
    assert time.perf_counter() - started < 0.5
    assert far.created_at >= START + timedelta(seconds=5_000_000)
    for index in range(300):
        order = world.get(index)
        assert all(
            order.created_ts < e.at <= order.created_ts + MAX_ORDER_LIFETIME.total_seconds()
            for e in order.events
        )
        assert 1 <= len(order.lines) <= 4


def test_order_states_follow_their_events() -> None:
    world = World(seed=9, start=START, interval=INTERVAL)
    kinds: set[str] = set()
    for index in range(400):
        order = world.get(index)
        end = world.state(index, order.created_ts + MAX_ORDER_LIFETIME.total_seconds())
        assert end is not None
        kinds.update(e.kind for e in order.events)
        assert end.updated_ts == max([order.created_ts, *(e.at for e in order.events)])
        for line in order.lines:  # never ship more than was ordered and not removed
            assert 0 <= end.shipped[line.index] + end.removed[line.index] <= line.quantity
        if end.cancelled:
            assert end.closed and not any(end.shipped) and end.financial_status in ("refunded", "voided")
        if end.fulfillment_status == "fulfilled":
            assert all(end.fulfillable(line.index) == 0 for line in order.lines)
    assert kinds == {"paid", "cancelled", "fulfilled", "refunded", "closed"}


# ------------------------------------------------------------------------------------------ listing filters


def test_default_status_open_hides_cancelled_and_closed_orders(shop: RunningSandbox) -> None:
    window = {"created_at_min": "2024-11-02T00:00:00-04:00", "created_at_max": "2024-11-02T04:00:00-04:00"}
    default = get(shop, ORDERS, limit=250, **window).json()["orders"]
    everything = get(shop, ORDERS, limit=250, status="any", **window).json()["orders"]
    assert default and all(o["closed_at"] is None and o["cancelled_at"] is None for o in default)
    assert any(o["cancelled_at"] for o in everything) and any(o["closed_at"] for o in everything)
    assert {o["id"] for o in default} < {o["id"] for o in everything}
    cancelled = get(shop, ORDERS, limit=250, status="cancelled", **window).json()["orders"]
    assert cancelled and all(o["cancelled_at"] and o["cancel_reason"] for o in cancelled)
    counts = {s: get(shop, COUNT, status=s, **window).json()["count"] for s in ("open", "closed", "any")}
    assert counts["any"] == len(everything) == counts["open"] + counts["closed"]
    assert get(shop, COUNT, **window).json()["count"] == len(default)  # count.json defaults to open too


def test_updated_at_window_is_inclusive_and_offsets_are_honoured(shop: RunningSandbox) -> None:
    world = shop.world
    a, b = START + timedelta(days=2, hours=3), START + timedelta(days=2, hours=5)
    expected = [shop.app.state.renderer.order_id(s.index) for s in world.updated_between(a, b)]
    new_york = {"updated_at_min": "2024-11-02T23:00:00-04:00", "updated_at_max": "2024-11-03T00:00:00-05:00"}
    shanghai = {"updated_at_min": "2024-11-03T11:00:00+08:00", "updated_at_max": "2024-11-03T13:00:00+08:00"}
    for window in (new_york, shanghai):
        orders = get(shop, ORDERS, limit=250, status="any", **window).json()["orders"]
        assert [o["id"] for o in orders] == expected
        assert all(a <= shop_time(o["updated_at"]) <= b for o in orders)
    zulu = get(shop, ORDERS, limit=250, status="any", updated_at_min="2024-11-03T03:00:00Z").json()["orders"]
    assert all(shop_time(o["updated_at"]) >= a for o in zulu)
    # An order updated exactly at the boundary is inside both windows that share it.
    boundary = datetime.fromisoformat(
        get(shop, ORDERS, limit=1, status="any", **new_york).json()["orders"][0]["updated_at"]
    )
    left = get(shop, ORDERS, limit=250, status="any", updated_at_max=boundary.isoformat()).json()["orders"]
    assert shop_time(boundary.isoformat()) in {shop_time(o["updated_at"]) for o in left}


@pytest.mark.parametrize(
    "params",
    [
        {"updated_at_min": "2024-11-02T23:00:00"},  # no offset
        {"updated_at_min": "2024-11-02"},
        {"created_at_max": "yesterday"},
        {"updated_at_max": "2024-13-02T23:00:00-04:00"},
        {"status": "archived"},
        {"limit": "251"},
        {"limit": "0"},
        {"limit": "ten"},
    ],
)
def test_bad_parameters_are_400_with_an_errors_body(shop: RunningSandbox, params: dict[str, str]) -> None:
    response = get(shop, ORDERS, **params)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == set(params)  # the error names the parameter


def test_limit_defaults_to_50_and_caps_at_250(shop: RunningSandbox) -> None:
    assert len(get(shop, ORDERS, status="any").json()["orders"]) == 50
    assert len(get(shop, ORDERS, status="any", limit=250).json()["orders"]) == 250


def test_since_id_ids_and_fields(shop: RunningSandbox) -> None:
    first = get(shop, ORDERS, status="any", limit=5).json()["orders"]
    after = get(shop, ORDERS, status="any", limit=5, since_id=first[1]["id"]).json()["orders"]
    assert [o["id"] for o in after[:3]] == [o["id"] for o in first[2:]]
    picked = get(shop, ORDERS, status="any", ids=f"{first[4]['id']},{first[0]['id']},7").json()["orders"]
    assert [o["id"] for o in picked] == [first[0]["id"], first[4]["id"]]
    slim = get(shop, ORDERS, status="any", limit=3, fields="id,updated_at,line_items").json()["orders"]
    assert [set(o) for o in slim] == [{"id", "updated_at", "line_items"}] * 3


# ------------------------------------------------------------------------------------------ pagination


def test_link_cursor_walks_every_page_once_and_inherits_the_filters(shop: RunningSandbox) -> None:
    window = {"updated_at_min": "2024-11-03T00:00:00-05:00", "updated_at_max": "2024-11-03T04:00:00-05:00"}
    reference = get(shop, ORDERS, limit=250, status="any", **window).json()["orders"]
    assert 40 < len(reference) < 250
    pages = walk(shop, limit=7, status="any", fields="id,updated_at", **window)
    ids = [o["id"] for page in pages for o in page.json()["orders"]]
    assert ids == [o["id"] for o in reference]  # no duplicates, no gaps, ascending ids
    assert all(1 <= len(page.json()["orders"]) <= 7 for page in pages)
    assert "next" not in links(pages[-1]) and "previous" not in links(pages[0])
    for page in pages[1:]:
        url = links(pages[pages.index(page) - 1])["next"]
        assert set(re.findall(r"[?&]([a-z_]+)=", url)) == {"limit", "page_info", "fields"}
        assert all(set(o) == {"id", "updated_at"} for o in page.json()["orders"])  # fields travels too
    # rel="previous" leads back to the page before.
    back = get(shop, links(pages[2])["previous"]).json()["orders"]
    assert [o["id"] for o in back] == [o["id"] for o in pages[1].json()["orders"]]


@pytest.mark.parametrize("extra", [{"status": "any"}, {"updated_at_min": "2024-11-03T00:00:00-05:00"}])
def test_page_info_with_another_filter_is_400(shop: RunningSandbox, extra: dict[str, str]) -> None:
    next_url = links(get(shop, ORDERS, limit=3, status="any"))["next"]
    response = get(shop, next_url, **extra)
    assert response.status_code == 400
    (name,) = extra
    assert response.json() == {
        "errors": {
            name: f"{name} cannot be passed when page_info is present. "
            "See https://shopify.dev/api/usage/pagination-rest for more information."
        }
    }
    assert get(shop, next_url, limit=3).status_code == 200  # limit (and fields) may still be changed


def test_tampered_page_info_is_400(shop: RunningSandbox) -> None:
    next_url = links(get(shop, ORDERS, limit=3, status="any"))["next"]
    page_info = re.search(r"page_info=([^&]+)", next_url).group(1)  # type: ignore[union-attr]
    body = json.loads(base64.urlsafe_b64decode(page_info + "=" * (-len(page_info) % 4)))
    body["last_id"] -= 1000  # a forged cursor that still decodes
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    for bad in (forged, page_info[:-3], "not-a-cursor"):
        response = get(shop, ORDERS, page_info=bad)
        assert response.status_code == 400
        assert response.json() == {"errors": {"page_info": "Invalid value."}}


# ------------------------------------------------------------------------------------------ auth, faults


def test_wrong_or_missing_token_is_401(shop: RunningSandbox) -> None:
    for token in ("shpat_wrong", ""):
        response = get(shop, ORDERS, token=token)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }
        assert response.headers["X-Request-Id"]


def test_leaky_bucket_overflow_is_429_with_retry_after() -> None:
    with sandbox(bucket_size=4, leak_per_second=1.0) as sb:
        limits = []
        for _ in range(4):
            response = get(sb, COUNT)
            assert response.status_code == 200
            limits.append(response.headers["X-Shopify-Shop-Api-Call-Limit"])
        assert limits == ["1/4", "2/4", "3/4", "4/4"]
        throttled = get(sb, COUNT)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "2.0"
        assert throttled.headers["X-Shopify-Shop-Api-Call-Limit"] == "4/4"
        assert throttled.headers["X-Request-Id"]
        assert throttled.json() == {
            "errors": "Exceeded 2 calls per second for api client. "
            "Reduce request rates to resume uninterrupted service."
        }
        time.sleep(1.1)  # one slot leaks back within a second
        assert get(sb, COUNT).status_code == 200


def test_faults_produce_5xx_and_429_storms_and_can_be_cleared() -> None:
    with sandbox(faults=Faults(seed=3)) as sb:
        assert requests.post(f"{sb.base_url}/_sandbox/faults", json={"server_error_rate": 1.0}, timeout=5).ok
        responses = [get(sb, ORDERS, limit=1) for _ in range(12)]
        assert {r.status_code for r in responses} <= {500, 502, 503}
        assert len({r.status_code for r in responses}) >= 2
        assert any("json" not in r.headers["Content-Type"] for r in responses)  # gateway pages are HTML
        sb.faults.update(server_error_rate=0.0, rate_limit_storm=1.0)
        storm = get(sb, ORDERS, limit=1)
        assert storm.status_code == 429 and storm.headers["Retry-After"] == "2.0"
        sb.faults.update(rate_limit_storm=0.0, truncated_body_rate=1.0)
        with pytest.raises(ValueError):
            get(sb, ORDERS, limit=1).json()
        state = requests.post(
            f"{sb.base_url}/_sandbox/faults", json={"truncated_body_rate": 0}, timeout=5
        ).json()
        assert state["truncated_body_rate"] == 0 and get(sb, ORDERS, limit=1).status_code == 200
        bad = requests.post(f"{sb.base_url}/_sandbox/faults", json={"server_error_rate": 2}, timeout=5)
        assert bad.status_code == 400 and sb.faults.server_error_rate == 0.0


def test_injected_faults_are_reproducible_from_their_seed() -> None:
    def statuses() -> list[int]:
        with sandbox(faults=Faults(seed=8, server_error_rate=0.5)) as sb:
            return [get(sb, COUNT).status_code for _ in range(16)]

    first = statuses()
    assert first == statuses() and 200 in first and len(set(first)) >= 2


def test_a_storm_on_graphql_is_throttled_shopifys_graphql_way() -> None:
    with sandbox(faults=Faults(seed=3, rate_limit_storm=1.0)) as sb:
        answer = graphql(sb, set_quantities_body(sb, 5, change_from=None, key="storm-1"))
        assert answer.status_code == 200  # GraphQL throttles in the body
        assert answer.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert "X-Shopify-Shop-Api-Call-Limit" not in answer.headers  # not the REST bucket


# ------------------------------------------------------------------------------------------ API versions


def test_supported_versions_answer_as_themselves_older_ones_fall_forward_others_are_404(
    shop: RunningSandbox,
) -> None:
    for version, served in (("2026-10", "2026-10"), ("2026-07", "2026-07"), ("2026-04", "2026-04")):
        response = get(shop, f"/admin/api/{version}/orders/count.json")
        assert response.status_code == 200 and response.headers["X-Shopify-API-Version"] == served
    for past in ("2024-10", "2025-10", "2026-01"):  # Shopify answers a version past support as its oldest
        response = get(shop, f"/admin/api/{past}/orders.json", limit=1)
        assert response.status_code == 200 and response.headers["X-Shopify-API-Version"] == "2026-04"
        assert f"/admin/api/{past}/orders.json?" in links(response)["next"]  # the client's URL goes on
    for unknown in ("2027-01", "unstable", "2024-11", "latest"):
        response = get(shop, f"/admin/api/{unknown}/orders.json")
        assert response.status_code == 404 and response.json() == {"errors": "Not Found"}


def test_the_old_compare_and_set_is_refused_even_under_its_own_version() -> None:
    """What the hub pinned to 2024-10 sent until 2027-01: Shopify answers it as 2026-04, which refuses it."""
    with sandbox() as sb:
        variant, item = a_listing(sb)
        old = {
            "query": "mutation SetAvailable($input: InventorySetQuantitiesInput!) { inventorySetQuantities("
            "input: $input) { userErrors { code field message } } }",
            "variables": {
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "ignoreCompareQuantity": False,
                    "quantities": [
                        {
                            "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
                            "locationId": f"gid://shopify/Location/{SHOP_LOCATION_ID}",
                            "quantity": 7,
                            "compareQuantity": variant.opening_stock,
                        }
                    ],
                }
            },
        }
        answer = graphql(sb, old, version="2024-10")
        assert answer.status_code == 200 and answer.headers["X-Shopify-API-Version"] == "2026-04"
        [error] = answer.json()["errors"]
        assert error["message"] == (
            "Variable $input of type InventorySetQuantitiesInput! was provided invalid value for "
            "ignoreCompareQuantity (Field is not defined on InventorySetQuantitiesInput), "
            "quantities.0.compareQuantity (Field is not defined on InventorySetQuantityInput)"
        )
        assert [p["path"] for p in error["extensions"]["problems"]] == [
            ["ignoreCompareQuantity"],
            ["quantities", 0, "compareQuantity"],
        ]
        assert "data" not in answer.json() and sb.world.overlay.stock_history == []


# ---------------------------------------------------------------------------------- inventorySetQuantities


def a_listing(sb: RunningSandbox) -> tuple[Any, int]:
    variant = sb.world.catalog.mapped_variants[0]
    return variant, variant.listing("shopify").inventory_item_id


def set_quantities_body(
    sb: RunningSandbox, quantity: int, *, change_from: Any = "current", key: str | None = "k-1"
) -> dict[str, Any]:
    variant, item = a_listing(sb)
    line: dict[str, Any] = {
        "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
        "locationId": f"gid://shopify/Location/{SHOP_LOCATION_ID}",
        "quantity": quantity,
    }
    if change_from == "current":
        line["changeFromQuantity"] = sb.app.state.stock.available(variant.index, SHOP_LOCATION_ID)
    elif change_from != "omit":
        line["changeFromQuantity"] = change_from
    directive = "" if key is None else " @idempotent(key: $idempotencyKey)"
    return {
        "query": "mutation SetAvailable($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {\n"
        f"  inventorySetQuantities(input: $input){directive} {{\n"
        "    inventoryAdjustmentGroup { changes { name delta quantityAfterChange } }\n"
        "    userErrors { code field message }\n  }\n}",
        "variables": {
            "idempotencyKey": key,
            "input": {"name": "available", "reason": "correction", "quantities": [line]},
        },
    }


def graphql(sb: RunningSandbox, body: dict[str, Any], version: str = "2026-10") -> requests.Response:
    return requests.post(
        f"{sb.base_url}/admin/api/{version}/graphql.json",
        json=body,
        headers={"X-Shopify-Access-Token": TOKEN},
        timeout=10,
    )


def payload(answer: requests.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["inventorySetQuantities"]


def test_set_quantities_requires_change_from_quantity_and_the_idempotent_directive() -> None:
    with sandbox() as sb:
        missing = graphql(sb, set_quantities_body(sb, 5, change_from="omit")).json()
        assert missing == {
            "errors": [
                {
                    "message": "InventorySetQuantityInput must include the following argument: "
                    "changeFromQuantity.",
                    "extensions": {"code": "INVALID_FIELD_ARGUMENTS"},
                }
            ]
        }
        undirected = graphql(sb, set_quantities_body(sb, 5, key=None)).json()
        assert undirected["errors"][0]["message"] == (
            "The @idempotent directive is required for this mutation but was not provided."
        )
        no_key = set_quantities_body(sb, 5)
        no_key["variables"]["idempotencyKey"] = None
        [error] = graphql(sb, no_key).json()["errors"]
        assert error["message"] == "Variable $idempotencyKey of type String! was provided invalid value"
        assert error["locations"] == [{"line": 1, "column": 61}]  # where the variable is defined
        assert sb.world.overlay.stock_history == []


def test_set_quantities_compares_change_from_quantity_and_null_skips_the_check() -> None:
    with sandbox() as sb:
        variant, _ = a_listing(sb)
        stale = payload(
            graphql(sb, set_quantities_body(sb, 5, change_from=variant.opening_stock + 1, key="a"))
        )
        assert stale == {
            "inventoryAdjustmentGroup": None,
            "userErrors": [
                {
                    "code": "CHANGE_FROM_QUANTITY_STALE",
                    "field": ["input", "quantities", "0", "changeFromQuantity"],
                    "message": "The changeFromQuantity value does not match persisted value.",
                }
            ],
        }
        applied = payload(graphql(sb, set_quantities_body(sb, 5, key="b")))
        assert applied["userErrors"] == []
        assert applied["inventoryAdjustmentGroup"]["changes"][0]["quantityAfterChange"] == 5
        unchecked = payload(graphql(sb, set_quantities_body(sb, 9, change_from=None, key="c")))
        assert (
            unchecked["userErrors"] == []
            and sb.app.state.stock.available(variant.index, SHOP_LOCATION_ID) == 9
        )


def test_an_idempotency_key_replays_the_first_answer_and_refuses_other_variables() -> None:
    with sandbox() as sb:
        first = set_quantities_body(sb, 11, key="key-1")
        answer = payload(graphql(sb, first))
        again = graphql(sb, first)  # a replay after a lost answer

        assert payload(again) == answer and len(sb.world.overlay.stock_history) == 1
        other = set_quantities_body(sb, 12, key="key-1")
        assert payload(graphql(sb, other))["userErrors"] == [
            {
                "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                "field": None,
                "message": "The same idempotency key cannot be used with different operation parameters.",
            }
        ]
        stale = set_quantities_body(sb, 13, change_from=-1, key="key-2")
        assert payload(graphql(sb, stale))["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
        assert payload(graphql(sb, stale))["userErrors"][0]["code"] == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"
        state = requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()["requests"]
        assert state["idempotent_replays"] == 1 and state["inventory_sets"] == 1 and state["stale_sets"] == 1
        assert len(sb.world.overlay.stock_history) == 1


def test_graphql_throttles_by_query_cost_in_an_http_200_body() -> None:
    with sandbox() as sb:
        costs = sb.app.state.costs
        costs.points, costs.restore_per_second = 15.0, 0.001  # room for one call of 10 points
        ok = graphql(sb, set_quantities_body(sb, 3, key="t-1"))
        assert ok.json()["extensions"]["cost"] == {
            "requestedQueryCost": 10,
            "actualQueryCost": 10,
            "throttleStatus": {"maximumAvailable": 15.0, "currentlyAvailable": 5.0, "restoreRate": 0.001},
        }
        throttled = graphql(sb, set_quantities_body(sb, 4, key="t-2"))
        assert throttled.status_code == 200
        body = throttled.json()
        assert body["errors"] == [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ]
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 10 and cost["actualQueryCost"] is None
        assert 5.0 <= cost["throttleStatus"]["currentlyAvailable"] < 5.1
        assert "data" not in body and len(sb.world.overlay.stock_history) == 1

        costs.points, costs.restore_per_second = 2000.0, 100.0
        time.sleep(0.15)  # 100 points a second: room again for a call of 10
        requests.post(
            f"{sb.base_url}/_sandbox/graphql_throttle", json={"next": 2}, timeout=5
        ).raise_for_status()
        codes = [graphql(sb, set_quantities_body(sb, 4, key="t-3")).json().get("errors") for _ in range(3)]
        assert [c[0]["extensions"]["code"] if c else None for c in codes] == ["THROTTLED", "THROTTLED", None]
        state = requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()
        assert state["requests"]["throttled"] == 3 and state["graphql_throttle_next"] == 0


def test_access_scopes_are_served_to_the_token_and_can_be_changed(shop: RunningSandbox) -> None:
    scopes = get(shop, "/admin/oauth/access_scopes.json").json()["access_scopes"]
    assert {"handle": "read_orders"} in scopes and {"handle": "read_all_orders"} in scopes
    assert get(shop, "/admin/oauth/access_scopes.json", token="shpat_wrong").status_code == 401
    bad = requests.post(f"{shop.base_url}/_sandbox/access_scopes", json={"access_scopes": "x"}, timeout=5)
    assert bad.status_code == 400


# ------------------------------------------------------------------------------------------ a living stream


def test_orders_evolve_as_the_clock_advances() -> None:
    with sandbox(clock=Clock.frozen(START + timedelta(hours=6))) as sb:
        now = sb.clock.now()
        renderer = sb.app.state.renderer
        index = next(  # a recent order with something still ahead of it
            i
            for i in range(sb.world.order_count() - 1, 0, -1)
            if any(e.at > now.timestamp() for e in sb.world.get(i).events)
        )
        order_id = renderer.order_id(index)
        before = get(sb, f"{API_PREFIX}/orders/{order_id}.json").json()["order"]
        count_before = get(sb, COUNT, status="any").json()["count"]
        next_order_id = renderer.order_id(sb.world.order_count())
        assert get(sb, f"{API_PREFIX}/orders/{next_order_id}.json").status_code == 404

        clock = requests.post(f"{sb.base_url}/_sandbox/clock", json={"advance_seconds": 3 * 86400}, timeout=5)
        assert clock.ok and clock.json()["frozen"] is True
        after = get(sb, f"{API_PREFIX}/orders/{order_id}.json").json()["order"]
        assert shop_time(after["updated_at"]) > shop_time(before["updated_at"])
        changed = {
            k
            for k in ("financial_status", "fulfillment_status", "closed_at", "refunds")
            if before[k] != after[k]
        }
        assert changed, "an event that happened changes what the order shows"
        assert get(sb, COUNT, status="any").json()["count"] == count_before + 3 * 86400 // INTERVAL.seconds
        assert get(sb, f"{API_PREFIX}/orders/{next_order_id}.json").status_code == 200
        # The updated window now finds the order by its new updated_at.
        at = after["updated_at"]
        window = get(sb, ORDERS, status="any", limit=250, updated_at_min=at, updated_at_max=at).json()[
            "orders"
        ]
        assert order_id in {o["id"] for o in window}


def test_same_seed_same_payload_other_seed_other_payload() -> None:
    def first_page(seed: int) -> bytes:
        with sandbox(seed=seed) as sb:
            return get(sb, ORDERS, status="any", limit=20).content

    assert first_page(21) == first_page(21)
    assert first_page(21) != first_page(22)


def test_single_order_and_404(shop: RunningSandbox) -> None:
    listed = get(shop, ORDERS, status="any", limit=1).json()["orders"][0]
    single = get(shop, f"{API_PREFIX}/orders/{listed['id']}.json")
    assert single.status_code == 200 and single.json() == {"order": listed}
    for missing in (listed["id"] + 1, 450789469, "abc"):
        response = get(shop, f"{API_PREFIX}/orders/{missing}.json")
        assert response.status_code == 404 and response.json() == {"errors": "Not Found"}


# ------------------------------------------------------------------------------------------ payload realism


def test_payloads_look_like_real_shopify_orders(shop: RunningSandbox) -> None:
    orders = [o for page in walk(shop, status="any", limit=250) for o in page.json()["orders"]]
    assert len(orders) == shop.world.order_count()
    offsets = set()
    for order in orders:
        for key in ("created_at", "updated_at", "processed_at", "closed_at", "cancelled_at"):
            if order[key] is not None:
                assert SHOP_TIME.fullmatch(order[key]), order[key]
                local = datetime.fromisoformat(order[key])
                assert (
                    local.utcoffset() == local.astimezone(NEW_YORK).utcoffset()
                )  # the shop's DST-aware offset
                offsets.add(local.utcoffset())
        assert order["name"] == f"#{order['order_number']}" and order["admin_graphql_api_id"].endswith(
            str(order["id"])
        )
        for key in ("total_price", "subtotal_price", "total_tax", "total_discounts", "current_total_price"):
            assert MONEY.fullmatch(order[key]) and order[f"{key}_set"]["shop_money"]["amount"] == order[key]
        shipping = Decimal(order["total_shipping_price_set"]["shop_money"]["amount"])
        total = Decimal(order["subtotal_price"]) + shipping + Decimal(order["total_tax"])
        assert Decimal(order["total_price"]) == total
        items = sum(Decimal(li["price"]) * li["quantity"] for li in order["line_items"])
        assert Decimal(order["total_line_items_price"]) == items
        assert Decimal(order["subtotal_price"]) == items - Decimal(order["total_discounts"])
        assert order["fulfillment_status"] in (None, "partial", "fulfilled")
        shipped = sum(li["quantity"] for f in order["fulfillments"] for li in f["line_items"])
        assert (order["fulfillment_status"] is None) == (shipped == 0)
        for fulfillment in order["fulfillments"]:
            assert fulfillment["tracking_number"] and fulfillment["tracking_numbers"] == [
                fulfillment["tracking_number"]
            ]
            assert fulfillment["name"].startswith(order["name"] + ".")
    assert offsets == {timedelta(hours=-4), timedelta(hours=-5)}  # before and after the DST change

    lines = [li for o in orders for li in o["line_items"]]
    assert any(li["sku"] == "" for li in lines) and any(li["sku"] for li in lines)
    assert all(isinstance(li["variant_id"], int) and isinstance(li["product_id"], int) for li in lines)
    assert all(MONEY.fullmatch(li["price"]) for li in lines)
    assert any("customer" not in o for o in orders) and any("customer" in o for o in orders)
    statuses = {o["financial_status"] for o in orders}
    assert {"paid", "pending", "partially_refunded", "refunded", "voided", "authorized"} <= statuses
    assert {o["fulfillment_status"] for o in orders} == {None, "partial", "fulfilled"}
    refund_lines = [rl for o in orders for r in o["refunds"] for rl in r["refund_line_items"]]
    assert {rl["restock_type"] for rl in refund_lines} == {"cancel", "return", "no_restock"}
    assert all(isinstance(rl["subtotal"], float) for rl in refund_lines)  # a JSON number, as Shopify sends
    assert all(MONEY.fullmatch(rl["subtotal_set"]["shop_money"]["amount"]) for rl in refund_lines)
    assert any(o["discount_codes"] for o in orders) and any(o["tax_lines"] for o in orders)


def test_pushed_fulfilments_join_the_order_and_bump_updated_at() -> None:
    world = World(seed=6, start=START, interval=INTERVAL, clock=Clock.frozen(NOW))
    index = next(
        i for i in range(50) if not world.state(i, NOW).fulfillments and not world.state(i, NOW).cancelled
    )
    order = world.get(index)
    pushed_at = int(NOW.timestamp()) - 60  # days after the order's own life: only the overlay can move it
    world.overlay.record_fulfillment(
        index,
        pushed_at,
        ((0, order.lines[0].quantity),),
        "UPS",
        "1Z999AA10123456784",
        "https://ups.example/1",
    )
    state = world.state(index, NOW)
    assert state is not None and state.updated_ts == pushed_at
    assert state.shipped[0] == order.lines[0].quantity and state.fulfillments[-1].pushed
    window = (NOW - timedelta(minutes=5), NOW)
    assert index in [s.index for s in world.updated_between(*window)]
    assert world.overlay.summary()["pushed_fulfillments"] == 1


# ----------------------------------------------------------------------------------------- fault matrix knobs


def test_fault_knobs_are_validated_listed_and_cleared() -> None:
    with sandbox(faults=Faults(seed=3)) as sb:
        url = f"{sb.base_url}/_sandbox/faults"
        changes = {
            "timeout_rate": 0.5,
            "hang_seconds": 2,
            "duplicate_page_rate": 0.25,
            "shuffle_page_rate": 1,
            "clock_step_seconds": 60,
            "clock_skew_seconds": -240,
            "token_expiry_rate": 0.1,
            "credentials_revoked": True,
        }
        state = requests.post(url, json=changes, timeout=5).json()
        assert {name: state[name] for name in changes} == {**changes, "credentials_revoked": True}
        assert requests.get(url, timeout=5).json() == state
        for bad in (
            {"duplicate_page_rate": 1.5},
            {"hang_seconds": -1},
            {"clock_step_seconds": -5},
            {"clock_skew_seconds": 10**6},
            {"credentials_revoked": "maybe"},
            {"shuffle_page_rate": True},
        ):
            refused = requests.post(url, json=bad, timeout=5)
            assert refused.status_code == 400, bad
        assert sb.faults.to_dict() == state  # a refused change leaves every knob as it was
        sb.faults.clear()
        assert sb.faults.to_dict() == {**Faults().to_dict(), "seed": 3}


def test_a_revoked_token_is_shopifys_401_until_restored() -> None:
    with sandbox() as sb:
        sb.faults.update(credentials_revoked=True)
        refused = get(sb, ORDERS, limit=1)
        assert refused.status_code == 401 and refused.json()["errors"].startswith("[API] Invalid API key")
        sb.faults.clear()
        assert get(sb, ORDERS, limit=1).status_code == 200


def test_a_duplicated_page_is_the_previous_cursors_answer_and_a_shuffled_page_keeps_its_cursors() -> None:
    window = {"status": "any", "limit": 5, "created_at_min": (NOW - timedelta(minutes=40)).isoformat()}
    with sandbox() as sb:
        clean = walk(sb, **window)
        assert len(clean) >= 3
        sb.faults.update(duplicate_page_rate=1.0)
        first = get(sb, ORDERS, **window)
        assert first.content == clean[0].content  # a walk's first page always comes as asked
        second = get(sb, links(first)["next"])
        assert second.content == first.content  # the previous cursor's answer again ...
        assert links(second)["next"] == links(first)["next"]  # ... pointing at the cursor just asked for
        sb.faults.update(duplicate_page_rate=0.0, shuffle_page_rate=1.0)
        shuffled = walk(sb, **window)
        ids = [[o["id"] for o in r.json()["orders"]] for r in shuffled]
        assert ids != [[o["id"] for o in r.json()["orders"]] for r in clean]
        assert [sorted(page) for page in ids] == [[o["id"] for o in r.json()["orders"]] for r in clean]


def test_a_hang_holds_the_answer_back_past_the_clients_read_timeout() -> None:
    with sandbox() as sb:
        sb.faults.update(timeout_rate=1.0, hang_seconds=1.0)
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{sb.base_url}{COUNT}", headers={"X-Shopify-Access-Token": TOKEN}, timeout=0.3)
        started = time.monotonic()
        assert get(sb, COUNT).status_code == 200  # a patient client gets the answer, late
        assert time.monotonic() - started >= 1.0


def test_clock_skew_shifts_the_platforms_now_and_listing_steps_move_the_clock() -> None:
    with sandbox() as sb:
        sb.faults.update(clock_skew_seconds=-3600)
        clock = requests.get(f"{sb.base_url}/_sandbox/clock", timeout=5).json()
        assert datetime.fromisoformat(clock["now"]) == NOW
        assert datetime.fromisoformat(clock["platform_now"]) == NOW - timedelta(hours=1)
        # the orders the platform has are those created by its own clock
        count = get(sb, COUNT, status="any").json()["count"]
        assert count == sb.world.order_count(NOW - timedelta(hours=1)) < sb.world.order_count(NOW)
        sb.faults.update(clock_skew_seconds=0, clock_step_seconds=300)
        get(sb, ORDERS, limit=1)
        get(sb, COUNT)  # only listings move the clock
        assert sb.clock.now() == NOW + timedelta(minutes=5)
