"""Contract tests of the WooCommerce sandbox (real HTTP): it enforces the limits and error shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from connectors.woocommerce import MAX_PAGE_SIZE
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.woocommerce import SANDBOX_LOGIN

NOW = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)  # 12:00 in America/Chicago (CDT, UTC-5)
SECRET = "cs_test_0123456789abcdef0123456789abcdef"
SCHEMA = Draft202012Validator(
    json.loads(resources.files("connectors").joinpath("schemas/woocommerce_order.schema.json").read_text())
)


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "woocommerce",
        seed=11,
        access_token=SECRET,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=4),
        clock=Clock.frozen(NOW),
    ) as running:
        yield running


def get(
    shop: RunningSandbox, path: str, auth: Any = (SANDBOX_LOGIN, SECRET), **params: Any
) -> requests.Response:
    return requests.get(f"{shop.base_url}/wp-json/wc/v3{path}", params=params, auth=auth, timeout=10)


def gmt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_basic_auth_and_the_query_string_fallback(shop: RunningSandbox) -> None:
    assert get(shop, "/orders").status_code == 200
    fallback = get(shop, "/orders", auth=None, consumer_key=SANDBOX_LOGIN, consumer_secret=SECRET)
    assert fallback.status_code == 200


@pytest.mark.parametrize(
    ("auth", "code", "message"),
    [
        (None, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
        (("ck_wrong", SECRET), "woocommerce_rest_authentication_error", "Consumer key is invalid."),
        ((SANDBOX_LOGIN, "cs_wrong"), "woocommerce_rest_authentication_error", "Consumer secret is invalid."),
    ],
)
def test_auth_failures_are_401_with_wordpress_error_bodies(
    shop: RunningSandbox, auth: Any, code: str, message: str
) -> None:
    response = get(shop, "/orders", auth=auth)
    assert response.status_code == 401
    assert response.json() == {"code": code, "message": message, "data": {"status": 401}}


def test_per_page_above_100_is_wp_core_rest_invalid_param(shop: RunningSandbox) -> None:
    response = get(shop, "/orders", per_page=MAX_PAGE_SIZE + 1)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "rest_invalid_param" and body["message"] == "Invalid parameter(s): per_page"
    assert body["data"]["status"] == 400
    assert body["data"]["params"] == {
        "per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"
    }
    assert get(shop, "/orders", per_page=0).status_code == 400
    assert get(shop, "/orders", per_page=MAX_PAGE_SIZE).status_code == 200


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"modified_after": "yesterday"}, "modified_after"),
        ({"order": "sideways"}, "order"),
        ({"orderby": "modified"}, "orderby"),  # there is no orderby=modified in v3
        ({"status": "shipped"}, "status"),
        ({"page": "0"}, "page"),
    ],
)
def test_invalid_parameters_are_named(shop: RunningSandbox, params: dict[str, str], bad: str) -> None:
    response = get(shop, "/orders", **params)
    assert response.status_code == 400 and bad in response.json()["data"]["params"]


def test_paging_headers_link_and_a_stable_date_order(shop: RunningSandbox) -> None:
    window = {
        "modified_after": "2026-03-14T06:00:00",
        "dates_are_gmt": "true",
        "order": "asc",
        "per_page": 20,
    }
    first = get(shop, "/orders", **window)
    total, pages = int(first.headers["X-WP-Total"]), int(first.headers["X-WP-TotalPages"])
    assert total > 40 and pages == -(-total // 20)
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', first.headers["Link"]))
    assert set(links) == {"next", "first", "last"} and f"page={pages}" in links["last"]
    assert "consumer_secret" not in first.headers["Link"]
    seen = []
    for page in range(1, pages + 1):
        body = get(shop, "/orders", page=page, **window).json()
        assert len(body) == (20 if page < pages else total - 20 * (pages - 1))
        seen += body
    created = [(o["date_created_gmt"], o["id"]) for o in seen]
    assert created == sorted(created) and len({o["id"] for o in seen}) == total
    assert get(shop, "/orders", page=pages + 1, **window).json() == []
    middle = get(shop, "/orders", page=2, **window)
    assert 'rel="prev"' in middle.headers["Link"] and 'rel="next"' in middle.headers["Link"]
    desc = get(shop, "/orders", **{**window, "order": "desc"}).json()
    assert [o["id"] for o in desc] == [o["id"] for o in reversed(seen)][:20]


def test_modified_bounds_are_exclusive_and_dates_are_gmt_decides_the_zone(shop: RunningSandbox) -> None:
    orders = get(shop, "/orders", per_page=100, order="asc").json()
    modified = gmt(orders[len(orders) // 2]["date_modified_gmt"])
    at = modified.strftime("%Y-%m-%dT%H:%M:%S")
    ids_at = {o["id"] for o in orders if gmt(o["date_modified_gmt"]) == modified}

    def ids(**params: str) -> set[int]:
        return {o["id"] for o in get(shop, "/orders", per_page=100, dates_are_gmt="true", **params).json()}

    assert not ids_at & ids(modified_after=at) and not ids_at & ids(modified_before=at)
    one_second = timedelta(seconds=1)
    around = ids(
        modified_after=(modified - one_second).strftime("%Y-%m-%dT%H:%M:%S"),
        modified_before=(modified + one_second).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    assert around == ids_at
    # Without dates_are_gmt an offset-less time is site time (UTC-5 in March): 5 hours later in UTC.
    local = (modified - timedelta(hours=5) - one_second).strftime("%Y-%m-%dT%H:%M:%S")
    local_ids = {
        o["id"]
        for o in get(
            shop, "/orders", per_page=100, modified_after=local, modified_before=local[:-2] + "59"
        ).json()
    }
    assert ids_at <= local_ids


def test_order_json_quirks(shop: RunningSandbox) -> None:
    orders = get(shop, "/orders", per_page=100).json()
    assert all(SCHEMA.is_valid(o) for o in orders)
    order = orders[0]
    created_local = datetime.fromisoformat(order["date_created"])
    assert gmt(order["date_created_gmt"]) - created_local.replace(tzinfo=UTC) == timedelta(hours=5)
    lines = [line for o in orders for line in o["line_items"]]
    assert all(
        isinstance(line["price"], int | float) and not isinstance(line["price"], bool) for line in lines
    )
    assert any(line["sku"] == "" for line in lines)
    assert any(line["variation_id"] == 0 for line in lines) and any(line["variation_id"] for line in lines)
    refunds = [refund for o in orders for refund in o["refunds"]]
    assert refunds and all(refund["total"].startswith("-") for refund in refunds)
    statuses = {o["status"] for o in orders}
    assert {"processing", "completed"} <= statuses and statuses <= {
        "pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"
    }  # fmt: skip
    assert get(shop, f"/orders/{order['id']}").json() == order


def test_status_filter_and_missing_routes(shop: RunningSandbox) -> None:
    completed = get(shop, "/orders", per_page=100, status="completed").json()
    assert completed and {o["status"] for o in completed} == {"completed"}
    assert get(shop, "/orders/3").json()["code"] == "woocommerce_rest_shop_order_invalid_id"
    missing = get(shop, "/products/7/stock-levels")
    assert missing.status_code == 404 and missing.json()["code"] == "rest_no_route"


def test_host_level_429_storm_and_server_errors(shop: RunningSandbox) -> None:
    shop.faults.update(rate_limit_storm=1.0)
    try:
        throttled = get(shop, "/orders")
    finally:
        shop.faults.clear()
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert "text/html" in throttled.headers["Content-Type"]  # the host's page, not a WordPress error
    shop.faults.update(server_error_rate=1.0)
    try:
        statuses = {get(shop, "/orders").status_code for _ in range(12)}
    finally:
        shop.faults.clear()
    assert statuses <= {500, 502, 503} and len(statuses) >= 2


def test_a_revoked_key_is_wordpress_401_and_a_duplicated_page_is_the_previous_ones(
    shop: RunningSandbox,
) -> None:
    shop.faults.update(credentials_revoked=True)
    try:
        refused = get(shop, "/orders")
        assert refused.status_code == 401
        assert refused.json()["code"] == "woocommerce_rest_authentication_error"
        shop.faults.update(credentials_revoked=False)
        first = get(shop, "/orders", per_page=5, page=1)
        shop.faults.update(duplicate_page_rate=1.0)
        lagging = get(shop, "/orders", per_page=5, page=2)  # a page cache serving what it served last
        shop.faults.clear()
        second = get(shop, "/orders", per_page=5, page=2)
    finally:
        shop.faults.clear()
    assert lagging.json() == first.json() and lagging.headers["Link"] == first.headers["Link"]
    assert second.json() != first.json() and second.headers["X-WP-Total"] == first.headers["X-WP-Total"]
