"""ShopifyConnector against the Shopify sandbox (real HTTP, real leaky bucket, injected faults).

The world's clock is frozen so the set of orders in a window is fixed; the expected set comes from the
world itself (``World.updated_between``, inclusive like Shopify's ``updated_at_min``/``max``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from connectors.auth import Secret
from connectors.errors import ApiError, AuthError, MalformedResponse
from connectors.http import LeakyBucketThrottle, RetryPolicy
from platforms.shopify.connector import (
    DEFAULT_API_VERSION,
    ShopifyConnector,
    UnsupportedApiVersion,
    connector_for_channel,
    supported_versions,
)
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=6), NOW)
TOKEN = "shpat_test_5c0ffee5c0ffee5c0ffee5c0ffee"
FAST = RetryPolicy(
    max_attempts=8,
    malformed_attempts=3,
    rate_limit_attempts=20,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_max=0.05,  # the sandbox says Retry-After: 2.0; exact honouring is tested in the framework
)


def sandbox(**options: Any) -> Any:
    options.setdefault("seed", 3)
    return run_sandbox(
        "shopify",
        access_token=TOKEN,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=5),
        clock=Clock.frozen(NOW),
        **options,
    )


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with sandbox() as running:
        yield running


def connector_for(sb: RunningSandbox, **options: Any) -> ShopifyConnector:
    options.setdefault("retry", FAST)
    options.setdefault("page_size", 10)
    options.setdefault("leak_per_second", 2.0)
    return ShopifyConnector.from_connection(sb.base_url, sb.access_token, **options)


def expected_ids(sb: RunningSandbox, start: datetime, end: datetime) -> set[int]:
    renderer = sb.app.state.renderer
    return {renderer.order_id(state.index) for state in sb.world.updated_between(start, end)}


def served(sb: RunningSandbox) -> dict[str, int]:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()["requests"]


def pull(connector: ShopifyConnector, start: datetime, end: datetime) -> list[list[dict[str, Any]]]:
    return list(connector.fetch_orders(start, end))


def test_pulls_every_order_updated_in_the_window_across_pages_any_status(shop: RunningSandbox) -> None:
    connector = connector_for(shop)
    pages = pull(connector, *WINDOW)
    ids = [order["id"] for page in pages for order in page]
    expected = expected_ids(shop, *WINDOW)
    assert len(pages) >= 4 and all(1 <= len(page) <= 10 for page in pages)
    assert len(ids) == len(set(ids))  # cursor pages neither repeat nor skip
    assert set(ids) == expected
    # status=any: cancelled and closed orders come too (Shopify's default, status=open, would drop them)
    assert any(order["cancelled_at"] for page in pages for order in page)
    assert any(order["closed_at"] and not order["cancelled_at"] for page in pages for order in page)
    assert connector.client.stats.status_counts == {200: len(pages)}  # no follow-up was rejected (400)


def test_an_order_updated_exactly_at_a_window_boundary_is_not_lost(shop: RunningSandbox) -> None:
    connector = connector_for(shop, page_size=250)
    orders = [order for page in pull(connector, *WINDOW) for order in page]
    boundary_order = orders[len(orders) // 2]
    boundary = datetime.fromisoformat(boundary_order["updated_at"]).astimezone(UTC)
    earlier = {o["id"] for page in pull(connector, WINDOW[0], boundary) for o in page}
    later = {o["id"] for page in pull(connector, boundary, WINDOW[1]) for o in page}
    assert boundary_order["id"] in earlier and boundary_order["id"] in later  # a harmless duplicate, no loss
    assert earlier | later == {o["id"] for o in orders}


def test_count_and_get_order_agree_with_the_listing(shop: RunningSandbox) -> None:
    connector = connector_for(shop, page_size=250)
    orders = [order for page in pull(connector, *WINDOW) for order in page]
    assert connector.count_orders(*WINDOW) == len(orders)
    assert connector.get_order(orders[0]["id"]) == orders[0]
    with pytest.raises(ApiError) as caught:
        connector.get_order(1)
    assert caught.value.status == 404 and caught.value.request_id


def test_pages_are_fetched_lazily(shop: RunningSandbox) -> None:
    connector = connector_for(shop)
    pages = connector.fetch_orders(*WINDOW)
    assert served(shop)["api_requests"] == 0  # creating the generator sends nothing
    first = next(pages)
    assert len(first) == 10
    assert served(shop)["api_requests"] == 1 and connector.client.stats.requests == 1
    next(pages)
    assert served(shop)["api_requests"] == 2
    pages.close()


def test_429_storms_server_errors_and_truncated_bodies_still_yield_the_complete_set() -> None:
    with sandbox(seed=5) as sb:
        sb.faults.update(rate_limit_storm=0.25, server_error_rate=0.2, truncated_body_rate=0.1)
        connector = connector_for(sb)
        ids = [order["id"] for page in pull(connector, *WINDOW) for order in page]
        assert set(ids) == expected_ids(sb, *WINDOW) and len(ids) == len(set(ids))
        stats, seen_by_server = connector.client.stats, served(sb)
        assert stats.rate_limited > 0 and stats.server_errors > 0 and stats.malformed > 0
        assert seen_by_server["throttled"] > 0 and seen_by_server["injected_errors"] > 0


def test_a_shop_that_stays_broken_surfaces_a_typed_error() -> None:
    with sandbox() as sb:
        sb.faults.update(truncated_body_rate=1.0)
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            pull(connector_for(sb), *WINDOW)
        assert served(sb)["api_requests"] == FAST.malformed_attempts


def test_the_limiter_keeps_a_long_pull_under_a_small_bucket() -> None:
    with sandbox(bucket_size=6, leak_per_second=25.0) as sb:
        connector = connector_for(sb, page_size=4, leak_per_second=25.0)
        ids = [order["id"] for page in pull(connector, *WINDOW) for order in page]
        throttle = connector.client.throttle
        assert isinstance(throttle, LeakyBucketThrottle)
        assert set(ids) == expected_ids(sb, *WINDOW)
        assert connector.client.stats.requests > 20  # many more calls than the bucket holds
        assert served(sb)["throttled"] == 0 and connector.client.stats.rate_limited == 0
        assert throttle.size == 6 and throttle.peak_used <= 5
        assert connector.client.stats.throttle_waits > 0


def test_without_pacing_the_same_pull_overflows_the_bucket() -> None:
    """Control for the test above: the sandbox really enforces the bucket."""
    with sandbox(bucket_size=6, leak_per_second=25.0) as sb:
        connector = connector_for(sb, page_size=4, leak_per_second=10_000.0)  # a limiter that never waits
        ids = [order["id"] for page in pull(connector, *WINDOW) for order in page]
        assert set(ids) == expected_ids(sb, *WINDOW)  # 429s were retried ...
        assert served(sb)["throttled"] > 0  # ... but they happened


def test_a_bad_token_is_an_auth_error_that_never_shows_the_token(
    shop: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "shpat_wrong_0000111122223333"
    connector = ShopifyConnector.from_connection(shop.base_url, wrong, retry=FAST)
    with pytest.raises(AuthError) as caught:
        next(connector.fetch_orders(*WINDOW))
    error = caught.value
    assert error.status == 401 and error.request_id and "Invalid API key" in str(error)
    texts = [str(error), repr(error), repr(connector), *(r.getMessage() for r in caplog.records)]
    assert all(wrong not in text and TOKEN not in text for text in texts)
    assert served(shop)["unauthorized"] == 1  # not retried


def test_connection_options_are_validated() -> None:
    with pytest.raises(ValueError, match="page_size"):
        ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, page_size=251)
    connector = ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, api_version="2026-07")
    assert connector.client.base_path == "/admin/api/2026-07" and connector.api_version == "2026-07"
    assert TOKEN not in repr(connector)


# --- the pinned API version --------------------------------------------------------------------------------


def test_shopify_supports_each_quarterly_version_for_twelve_months_from_its_release() -> None:
    assert supported_versions(datetime(2026, 12, 6, tzinfo=UTC)) == [
        "2026-01",
        "2026-04",
        "2026-07",
        "2026-10",
    ]
    # 2027-01 comes out at 17:00 UTC on January 1st, and 2026-01 leaves then: 2026-04 is the oldest.
    assert supported_versions(datetime(2027, 1, 1, 16, 59, tzinfo=UTC))[-1] == "2026-10"
    assert supported_versions(datetime(2027, 1, 1, 17, 0, tzinfo=UTC)) == [
        "2026-04",
        "2026-07",
        "2026-10",
        "2027-01",
    ]
    assert DEFAULT_API_VERSION in supported_versions(datetime(2027, 9, 30, tzinfo=UTC))


def test_a_version_that_is_not_stable_or_not_supported_today_is_refused_naming_the_window() -> None:
    today = datetime(2026, 12, 6, tzinfo=UTC)
    window = "supported on 2026-12-06: 2026-01 .. 2026-10"
    for version, why in (
        ("2024-10", "past Shopify's support"),
        ("2025-10", "past Shopify's support"),
        ("2027-01", "not released yet"),
        ("unstable", "not a dated stable version"),
        ("2026-11", "not a dated stable version"),
    ):
        with pytest.raises(UnsupportedApiVersion) as caught:
            ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, api_version=version, now=today)
        assert why in str(caught.value) and window in str(caught.value), caught.value
        assert isinstance(caught.value, ValueError)
    assert ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, now=today).api_version == "2026-10"
    with pytest.raises(UnsupportedApiVersion, match="past Shopify's support"):  # the default ages out too
        ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, now=datetime(2027, 10, 2, tzinfo=UTC))


def test_every_url_follows_the_pinned_version_and_a_connection_may_pin_another(shop: RunningSandbox) -> None:
    answered: list[tuple[str, str]] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda r, *a, **k: answered.append((r.request.path_url, r.headers.get("X-Shopify-API-Version", "")))
    )
    pull(connector_for(shop, session=session), *WINDOW)
    channel = hub_config("shopify_pin", platform="shopify").channel("shopify_pin")
    pinned = connector_for_channel(
        ChannelCredentials("pin", shop.base_url, secret=Secret(TOKEN), extra={"api_version": "2026-07"}),
        channel,
    )
    pinned.client.session.hooks["response"].append(session.hooks["response"][0])
    assert pinned.get_order(pinned.get("orders", params={"limit": 1})[0]["id"])

    default_calls = [a for a in answered if a[0].startswith("/admin/api/2026-10/orders.json")]
    assert len(default_calls) >= 4 and {version for _, version in default_calls} == {"2026-10"}
    assert [version for path, version in answered if path.startswith("/admin/api/2026-07/")] == [
        "2026-07",
        "2026-07",
    ]
    assert all(path.startswith(("/admin/api/2026-10/", "/admin/api/2026-07/")) for path, _ in answered)


# --- the 60 days an order stays visible without read_all_orders --------------------------------------------

OLD_WINDOW = (NOW - timedelta(days=70), NOW - timedelta(days=50))


@pytest.fixture
def old_shop() -> Iterator[RunningSandbox]:
    """A shop with 75 days of orders, its token without read_all_orders."""
    with run_sandbox(
        "shopify",
        seed=4,
        access_token=TOKEN,
        start=NOW - timedelta(days=75),
        interval=timedelta(hours=3),
        clock=Clock.frozen(NOW),
    ) as running:
        set_scopes(running, ["read_orders", "read_products", "write_inventory"])
        yield running


def set_scopes(sb: RunningSandbox, scopes: list[str]) -> None:
    answer = requests.post(f"{sb.base_url}/_sandbox/access_scopes", json={"access_scopes": scopes}, timeout=5)
    answer.raise_for_status()


def test_without_read_all_orders_older_orders_are_left_out_silently_and_a_backfill_is_warned(
    old_shop: RunningSandbox,
) -> None:
    connector = connector_for(old_shop, page_size=250)
    connector.clock = lambda: NOW
    horizon = NOW - timedelta(days=60)
    renderer = old_shop.app.state.renderer
    in_window = list(old_shop.world.updated_between(*OLD_WINDOW))
    old = [s for s in in_window if s.order.created_at < horizon]
    assert old and len(old) < len(in_window)

    pulled = {order["id"] for page in pull(connector, *OLD_WINDOW) for order in page}
    assert pulled == {renderer.order_id(s.index) for s in in_window if s.order.created_at >= horizon}
    assert connector.count_orders(*OLD_WINDOW) == len(pulled)
    with pytest.raises(ApiError) as caught:
        connector.get_order(renderer.order_id(old[0].index))
    assert caught.value.status == 404

    before = served(old_shop)["api_requests"]
    assert connector.warnings_for_window(NOW - timedelta(days=2), NOW) == []  # recent: no scope check
    assert served(old_shop)["api_requests"] == before
    [warning] = connector.warnings_for_window(*OLD_WINDOW)
    assert warning.code == "order_visibility_limit"
    assert "read_all_orders" in warning.message and f"{horizon:%Y-%m-%d %H:%M}" in warning.message
    assert connector.warnings_for_window(*OLD_WINDOW) == [warning]
    assert served(old_shop)["api_requests"] == before + 1  # the scopes are read once per connector
    assert "read_all_orders" not in connector.access_scopes()


def test_with_read_all_orders_a_backfill_sees_every_order_and_is_not_warned(old_shop: RunningSandbox) -> None:
    set_scopes(old_shop, ["read_orders", "read_all_orders"])
    connector = connector_for(old_shop, page_size=250)
    connector.clock = lambda: NOW
    renderer = old_shop.app.state.renderer

    pulled = {order["id"] for page in pull(connector, *OLD_WINDOW) for order in page}

    assert pulled == {renderer.order_id(s.index) for s in old_shop.world.updated_between(*OLD_WINDOW)}
    assert connector.warnings_for_window(*OLD_WINDOW) == []
