"""The Youzan connector against the Youzan sandbox over real HTTP: paging, window splitting, page caps,
throttling, token refresh and refusal, 5xx and timeout retries, and success:false answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from connectors.errors import ApiError, AuthError, RateLimited, TransientError
from connectors.http import RetryPolicy
from platforms.youzan.connector import MAX_PAGE_NO, YouzanConnector
from sandbox import youzan as sandbox_youzan
from sandbox.clock import Clock
from sandbox.server import run_sandbox

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FAST = RetryPolicy(
    max_attempts=4,
    malformed_attempts=3,
    rate_limit_attempts=4,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_default=0.01,
)


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "youzan", seed=21, start=NOW - timedelta(days=3), interval=600, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


def connect(shop, *, secret: str | None = None, **options) -> YouzanConnector:
    options.setdefault("retry", FAST)
    options.setdefault("requests_per_second", 1000.0)
    return YouzanConnector.from_connection(
        shop.base_url,
        client_id=sandbox_youzan.SANDBOX_LOGIN,
        client_secret=secret or shop.access_token,
        kdt_id=sandbox_youzan.SANDBOX_KDT_ID,
        **options,
    )


def expected_tids(shop, start: datetime, end: datetime) -> set[str]:
    renderer = shop.app.state.renderer
    return {renderer.tid(s.index) for s in shop.world.updated_between(start, end, NOW)}


def tids(pages) -> list[str]:
    return [r["full_order_info"]["order_info"]["tid"] for page in pages for r in page]


def test_page_size_above_the_platform_cap_is_capped(shop) -> None:
    connector = connect(shop, page_size=250)
    assert connector.page_size == 100
    assert set(tids(connector.fetch_orders(NOW - timedelta(hours=20), NOW))) == expected_tids(
        shop, NOW - timedelta(hours=20), NOW
    )


@pytest.mark.parametrize("shape", ["paginator", "has_next"])
def test_the_4_0_4_paginator_shapes_page_the_whole_window_backwards(shop, shape) -> None:
    """``data.paginator`` with ``total_count``, or with only ``has_next`` (the last page then found by
    probing), instead of ``data.total_results``: every order once, read from the last page to the first."""
    start = NOW - timedelta(hours=20)
    shop.app.state.list_shape = shape
    try:
        connector = connect(shop, page_size=10)
        pages = list(connector.fetch_orders(start, NOW))
    finally:
        shop.app.state.list_shape = "total_results"
    got = tids(pages)
    expected = expected_tids(shop, start, NOW)
    assert len(got) == len(set(got)) and set(got) == expected
    last = -(-len(expected) // 10)
    assert len(pages) == last and len(pages[0]) == len(expected) - 10 * (last - 1)  # the last page first
    listing_requests = connector.client.stats.requests - 1  # less the token
    if shape == "paginator":
        assert listing_requests == 1 + last  # the probe, then every page
    else:
        assert last < listing_requests <= 1 + last + 2 * last.bit_length()  # a few probes to find the end


@pytest.mark.parametrize("shape", ["total_results", "has_next"])
def test_a_window_past_the_page_cap_is_halved_whatever_the_paging_shape(shop, shape) -> None:
    start = NOW - timedelta(days=4)
    shop.app.state.list_shape = shape
    try:
        got = tids(connect(shop, page_size=2).fetch_orders(start, NOW))
    finally:
        shop.app.state.list_shape = "total_results"
    expected = expected_tids(shop, start, NOW)
    assert len(expected) > 2 * MAX_PAGE_NO, "the window must overflow the page cap"
    assert len(got) == len(set(got)) and set(got) == expected


def test_windows_longer_than_three_months_are_split(shop) -> None:
    start = NOW - timedelta(days=200)
    connector = connect(shop)
    got = tids(connector.fetch_orders(start, NOW))
    # The sandbox refuses spans over 3 months, so success means every listing was within the limit.
    assert set(got) == expected_tids(shop, start, NOW)
    # the token, two empty spans of 90 days, then the last span: page 1 for its total, then its pages of
    # 100 from the last to the first
    assert connector.client.stats.requests == 1 + 2 + 1 + -(-len(got) // 100)


def sandbox_requests(shop) -> dict[str, int]:
    return requests.get(f"{shop.base_url}/_sandbox/state", timeout=10).json()["requests"]


@pytest.mark.parametrize(("what", "code"), [("expire_tokens", "4202"), ("revoke_tokens", "4203")])
def test_an_expired_or_unknown_token_is_refreshed_once_and_the_call_replayed(shop, what, code) -> None:
    """4202 (expired) and 4203 ("Token 不存在") mean: fetch a token once and replay, never a throttle to
    wait out."""
    connector = connect(shop)
    first = tids(connector.fetch_orders(NOW - timedelta(hours=2), NOW))
    held = connector.client.auth.secret_values()[-1]  # the token the connector holds
    getattr(shop.app.state, what)()
    refused = requests.post(
        f"{shop.base_url}/api/youzan.trade.get/4.0.0", params={"access_token": held}, json={}, timeout=10
    )
    assert str(refused.json()["gw_err_resp"]["err_code"]) == code
    before = sandbox_requests(shop)
    again = tids(connector.fetch_orders(NOW - timedelta(hours=2), NOW))
    after = sandbox_requests(shop)
    assert again == first
    assert connector.client.stats.token_refreshes == 1 and connector.client.stats.rate_limited == 0
    assert after["unauthorized"] - before["unauthorized"] == 1
    assert after["tokens_issued"] - before["tokens_issued"] == 1


def test_a_live_token_about_to_expire_is_replaced_with_refresh_true_once() -> None:
    """The connector asks with ``refresh: false``, which hands back the shop's live token; when that one
    expires within the renewal margin it asks once more with ``refresh: true`` (a new token, the old one
    refused from then on) instead of renewing before every request."""
    with run_sandbox("youzan", seed=5, start=NOW - timedelta(hours=3), clock=Clock.frozen(NOW)) as sb:
        sb.app.state.token_lifetime = 120.0  # issued earlier by someone else, two minutes left
        body = {
            "client_id": sandbox_youzan.SANDBOX_LOGIN,
            "client_secret": sb.access_token,
            "authorize_type": "silent",
            "grant_id": sandbox_youzan.SANDBOX_KDT_ID,
        }
        expiring = requests.post(f"{sb.base_url}/auth/token", json=body, timeout=10).json()["data"]
        sb.app.state.token_lifetime = 7 * 86400.0
        connector = connect(sb)
        for _ in range(3):
            assert tids(connector.fetch_orders(NOW - timedelta(hours=1), NOW))
        state = sandbox_requests(sb)
        held = connector.client.auth.secret_values()[-1]
        old = requests.post(
            f"{sb.base_url}/api/youzan.trade.get/4.0.0",
            params={"access_token": expiring["access_token"]},
            json={},
            timeout=10,
        )
    assert state["token_requests"] == 3 and state["tokens_issued"] == 2  # ours: refresh false, then true
    assert held != expiring["access_token"] and old.json()["gw_err_resp"]["err_code"] == 4203
    assert connector.client.stats.token_refreshes == 0


def test_bad_client_credentials_are_an_auth_error_at_once_without_the_secret(shop) -> None:
    wrong = "yz-wrong-secret-0123456789"
    before = sandbox_requests(shop)
    with pytest.raises(AuthError) as caught:
        list(connect(shop, secret=wrong).fetch_orders(NOW - timedelta(hours=1), NOW))
    assert caught.value.code == "1000" and "应用信息错误" in caught.value.message
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert shop.access_token not in str(caught.value)
    unknown = YouzanConnector.from_connection(
        shop.base_url, client_id="test", client_secret=shop.access_token, kdt_id=1, retry=FAST
    )
    with pytest.raises(AuthError) as caught:
        list(unknown.fetch_orders(NOW - timedelta(hours=1), NOW))
    assert caught.value.code == "1103" and "Client 不存在" in caught.value.message
    after = sandbox_requests(shop)
    assert after["token_requests"] - before["token_requests"] == 2  # one each: refused, never retried
    assert after["api_requests"] - before["api_requests"] == 2


def test_throttle_codes_are_waited_out_then_surface_as_rate_limited(shop) -> None:
    connector = connect(shop)
    list(connector.fetch_orders(NOW - timedelta(hours=1), NOW))  # token fetched before the storm
    shop.faults.update(rate_limit_storm=1.0)
    try:
        with pytest.raises(RateLimited) as caught:
            list(connector.fetch_orders(NOW - timedelta(hours=1), NOW))
    finally:
        shop.faults.clear()
    assert caught.value.code == str(sandbox_youzan.DEFAULT_THROTTLE_CODE)
    assert connector.client.stats.rate_limited == FAST.rate_limit_attempts


def test_a_throttle_burst_shorter_than_the_budget_is_absorbed(shop) -> None:
    shop.app.state.throttle_code = 7001
    shop.app.state.limiter.limit = 2
    try:
        patient = RetryPolicy(rate_limit_attempts=6, retry_after_default=0.5)
        connector = connect(shop, page_size=10, throttle_codes=["7001"], retry=patient)
        got = tids(connector.fetch_orders(NOW - timedelta(hours=6), NOW))
    finally:
        shop.app.state.limiter.limit = None
        shop.app.state.throttle_code = sandbox_youzan.DEFAULT_THROTTLE_CODE
    assert set(got) == expected_tids(shop, NOW - timedelta(hours=6), NOW)
    assert connector.client.stats.rate_limited > 0


def test_a_persistent_outage_fails_with_the_status(shop) -> None:
    connector = connect(shop)
    list(connector.fetch_orders(NOW - timedelta(hours=1), NOW))
    shop.faults.update(server_error_rate=1.0)
    try:
        with pytest.raises(TransientError) as caught:
            list(connector.fetch_orders(NOW - timedelta(hours=1), NOW))
    finally:
        shop.faults.clear()
    assert caught.value.status in (500, 502, 503)


def test_read_timeouts_are_retried(shop) -> None:
    connector = connect(shop, timeout=(2.0, 1.0))  # well above a loaded machine's answer times
    list(connector.fetch_orders(NOW - timedelta(hours=1), NOW))
    connector.client.stats.network_errors = 0
    shop.faults.update(latency_seconds=1.5)
    try:
        with pytest.raises(TransientError, match="read timeout"):
            list(connector.fetch_orders(NOW - timedelta(hours=1), NOW))
    finally:
        shop.faults.clear()
    assert connector.client.stats.network_errors == FAST.max_attempts
    assert tids(connector.fetch_orders(NOW - timedelta(hours=1), NOW))  # and recovers afterwards


def test_success_false_is_an_error_even_though_data_holds_an_empty_list(shop) -> None:
    connector = connect(shop)
    with pytest.raises(ApiError) as caught:
        connector.get("orders", body={"page_size": 101})
    assert caught.value.code == "5000" and "100" in caught.value.message
    assert caught.value.request_id and caught.value.request_id.startswith("yz7-")


def test_get_order_by_tid(shop) -> None:
    connector = connect(shop)
    tid = sorted(expected_tids(shop, NOW - timedelta(hours=3), NOW))[0]
    trade = connector.get_order(tid)
    assert trade["full_order_info"]["order_info"]["tid"] == tid
    with pytest.raises(ApiError) as caught:
        connector.get_order("E20000101000000000000000")
    assert caught.value.code == "106100110"


# -- a listing that changes while it is paged (the fault matrix's "updates between pages") -----------------

MOVING_NOW = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
MOVING_START = MOVING_NOW - timedelta(hours=3)


def moving_shop(seed: int):
    """A world where a few orders change in the hour after ``MOVING_NOW`` (the fault matrix's youzan world
    is seed 903)."""
    return run_sandbox("youzan", seed=seed, start=MOVING_START, interval=240, clock=Clock.frozen(MOVING_NOW))


def in_window(shop, start: datetime, end: datetime) -> dict[str, str]:
    """tid -> update_time of the orders the window holds at the platform's current time."""
    renderer, now = shop.app.state.renderer, shop.world.now()
    return {
        renderer.tid(s.index): renderer.render(s)["full_order_info"]["order_info"]["update_time"]
        for s in shop.world.updated_between(start, end, now)
    }


def test_an_order_leaving_the_window_mid_walk_pushes_no_other_out_of_reach() -> None:
    """Regression: sold.get lists newest first, so an order updated while the window is paged leaves it (its
    new time is past the window's end) and every older order moves one place towards page 1. Read forward,
    the walk skipped one of them for good; read from the last page, every order still in the window comes."""
    with moving_shop(903) as shop:
        before = in_window(shop, MOVING_START, MOVING_NOW)
        shop.faults.update(clock_step_seconds=600)
        got = set(tids(connect(shop, page_size=10).fetch_orders(MOVING_START, MOVING_NOW)))
        shop.faults.clear()
        after = in_window(shop, MOVING_START, MOVING_NOW)
    assert set(before) - set(after), "orders must leave the window while it is paged"
    assert set(after) <= got


def test_orders_moving_inside_the_window_mid_walk_all_come_back_at_their_newest() -> None:
    """Regression: a window reaching past the platform's "now" takes updates in while it is paged; an order
    updated moves to page 1 and pushes the last order of page 1 onto page 2, already read. The walk comes
    back short of the listing's total and is read again; and the newer copy of a moved order, read after its
    older one, is passed on (it used to be dropped as a duplicate tid)."""
    end = MOVING_NOW + timedelta(minutes=30)
    with moving_shop(937) as shop:  # a world where an order read on a late page then moves to page 1
        shop.faults.update(clock_step_seconds=600)
        newest: dict[str, str] = {}
        for page in connect(shop, page_size=10).fetch_orders(MOVING_START, end):
            for record in page:
                info = record["full_order_info"]["order_info"]
                newest[info["tid"]] = max(newest.get(info["tid"], ""), info["update_time"])
        shop.faults.clear()
        expected = in_window(shop, MOVING_START, end)
    assert {tid: newest.get(tid) for tid in expected} == expected


def test_throttle_codes_may_not_name_a_token_code(shop) -> None:
    with pytest.raises(ValueError, match="4203"):
        connect(shop, throttle_codes=["4101", "4203"])
