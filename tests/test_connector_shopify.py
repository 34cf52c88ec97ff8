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

from connectors.errors import ApiError, AuthError, MalformedResponse
from connectors.http import LeakyBucketThrottle, RetryPolicy
from connectors.shopify import ShopifyConnector
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
    with pytest.raises(ValueError, match="API versions"):
        ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, api_version="latest")
    connector = ShopifyConnector.from_connection("http://127.0.0.1:1", TOKEN, api_version="2025-01")
    assert connector.client.base_path == "/admin/api/2025-01"
    assert TOKEN not in repr(connector)
