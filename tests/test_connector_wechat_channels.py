"""WeChatChannelsConnector against the Channels shop sandbox (real HTTP, real tokens, injected faults).

The world's clock is frozen, so the orders of a window are fixed; the expected set comes from the world
(``World.updated_between``, inclusive like ``update_time_range``).
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
from connectors.errors import AuthError, QuotaExhausted, TransientError
from connectors.http import RetryPolicy
from platforms.wechat_channels.connector import (
    WeChatChannelsConnector,
    connector_for_channel,
    seconds_to_next_minute,
)
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.wechat_channels import SANDBOX_LOGIN

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SECRET = "wx-app-secret-5c0ffee5c0ffee5c0ffee"
WINDOW = (NOW - timedelta(hours=6), NOW)
FAST = RetryPolicy(
    max_attempts=8,
    malformed_attempts=4,
    rate_limit_attempts=20,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_default=0.01,  # 45011 carries no wait hint; production waits retry_after_default
    retry_after_max=0.01,  # 45011 says "the next minute": the tests do not wait it out
)


def sandbox(**options: Any) -> Any:
    options.setdefault("start", NOW - timedelta(days=2))
    options.setdefault("interval", timedelta(minutes=10))
    options.setdefault("clock", Clock.frozen(NOW))
    return run_sandbox("wechat_channels", seed=5, access_token=SECRET, **options)


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with sandbox() as running:
        yield running


def connector_for(sb: RunningSandbox, **options: Any) -> WeChatChannelsConnector:
    options.setdefault("retry", FAST)
    options.setdefault("page_size", 7)
    secret = options.pop("secret", SECRET)
    return WeChatChannelsConnector.from_connection(sb.base_url, SANDBOX_LOGIN, secret, **options)


def expected_ids(sb: RunningSandbox, start: datetime, end: datetime) -> set[str]:
    renderer = sb.app.state.renderer
    return {renderer.order_id(state.index) for state in sb.world.updated_between(start, end)}


def aftersale_count(sb: RunningSandbox, start: datetime, end: datetime) -> int:
    renderer = sb.app.state.renderer
    return sum(len(renderer.aftersales(state)) for state in sb.world.updated_between(start, end))


def served(sb: RunningSandbox) -> dict[str, Any]:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()


def ids_of(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [order["order_id"] for page in pages for order in page]


def test_lists_ids_then_fetches_each_order_page_by_page(shop):
    connector = connector_for(shop)
    pages = list(connector.fetch_orders(*WINDOW))
    expected = expected_ids(shop, *WINDOW)
    got = ids_of(pages)
    assert len(expected) > 20 and len(got) == len(set(got)) and set(got) == expected
    assert all(1 <= len(page) <= 7 for page in pages) and len(pages) == -(-len(expected) // 7)
    assert all("order_detail" in order and isinstance(order["order_id"], str) for p in pages for order in p)
    assert all(len(order_id) == 19 for order_id in got)
    # one list call per page, one order/get per order, one getaftersaleorder per after-sale order listed (only
    # orders with refunds have any), one token for the whole pull
    aftersales = aftersale_count(shop, *WINDOW)
    assert aftersales > 0
    assert connector.client.stats.requests == len(pages) + len(expected) + aftersales + 1
    attached = [o for page in pages for o in page if "channelhub_aftersale_orders" in o]
    assert sum(len(o["channelhub_aftersale_orders"]) for o in attached) == aftersales
    assert all(
        [a["after_sale_order_id"] for a in o["channelhub_aftersale_orders"]]
        == [e["aftersale_order_id"] for e in o["aftersale_detail"]["aftersale_order_list"]]
        for o in attached
    )
    wechat = served(shop)["wechat"]
    assert wechat["tokens_issued"] == wechat["stable_tokens_issued"] == 1
    assert served(shop)["requests"]["stable_token_requests"] == 1


def test_pages_are_fetched_lazily(shop):
    connector = connector_for(shop)
    pages = connector.fetch_orders(*WINDOW)
    first = next(pages)
    assert len(first) == 7
    aftersales = sum(len(order.get("channelhub_aftersale_orders", ())) for order in first)
    # token, one listing, its seven orders and their after-sale orders
    assert connector.client.stats.requests == 1 + 1 + 7 + aftersales
    pages.close()


def test_windows_longer_than_7_days_are_split_and_nothing_is_missed():
    with sandbox(start=NOW - timedelta(days=19), interval=timedelta(hours=4)) as sb:
        connector = connector_for(sb, page_size=100)
        start = NOW - timedelta(days=18)
        got = ids_of(list(connector.fetch_orders(start, NOW)))
        expected = expected_ids(sb, start, NOW)
        assert len(expected) > 90 and set(got) == expected  # the sandbox refuses any span over 7 days
        listings = connector.client.stats.requests - len(got) - aftersale_count(sb, start, NOW) - 1
        assert listings == 3  # 18 days -> 7 + 7 + 4


def test_an_expired_token_is_refreshed_once_and_the_call_replayed(shop, caplog):
    caplog.set_level(logging.DEBUG)
    connector = connector_for(shop)
    pages = connector.fetch_orders(*WINDOW)
    got = ids_of([next(pages)])
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"expire_tokens": True}, timeout=5)
    got += ids_of(list(pages))
    assert set(got) == expected_ids(shop, *WINDOW) and len(got) == len(set(got))
    assert connector.client.stats.token_refreshes == 1
    assert served(shop)["wechat"]["tokens_issued"] == 2
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "expired" in logged and SECRET not in logged and "access_token=80_" not in logged


def test_a_token_lifetime_shorter_than_the_pull_is_renewed_as_needed(shop):
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"token_lifetime_seconds": 30}, timeout=5)
    connector = connector_for(shop)
    pages = connector.fetch_orders(*WINDOW)
    got = ids_of([next(pages)])
    shop.clock.advance(timedelta(seconds=31))  # the sandbox's token died; the order set does not change
    got += ids_of(list(pages))
    shop.clock.set(NOW)
    assert set(got) == expected_ids(shop, *WINDOW)


def test_connectors_without_a_shared_store_get_the_same_stable_token(shop):
    """stable_token's normal mode hands out the token in force: a second connector (another task, another
    system on the same appid) does not revoke the first one's, unlike cgi-bin/token."""
    first, second = connector_for(shop), connector_for(shop)
    first.get_order(sorted(expected_ids(shop, *WINDOW))[0])
    second.get_order(sorted(expected_ids(shop, *WINDOW))[1])
    first.get_order(sorted(expected_ids(shop, *WINDOW))[2])  # still valid: nobody revoked it
    assert served(shop)["requests"]["stable_token_requests"] == 2
    assert served(shop)["wechat"]["stable_tokens_issued"] == 1 and first.client.stats.token_refreshes == 0


def test_a_refused_token_that_stable_token_hands_back_is_force_refreshed_once(shop):
    connector = connector_for(shop)
    ids = sorted(expected_ids(shop, *WINDOW))
    connector.get_order(ids[0])
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"distrust_tokens": True}, timeout=5)

    assert connector.get_order(ids[1])["order_id"] == ids[1]  # 40001, normal mode: the same token, forced

    auth = connector.client.auth
    assert (auth.fetch_count, auth.forced_count, connector.client.stats.token_refreshes) == (2, 1, 1)
    wechat = served(shop)["wechat"]
    assert wechat["force_refreshes"] == 1 and wechat["stable_tokens_issued"] == 2
    assert served(shop)["requests"]["stable_token_requests"] == 3  # first, normal (same token), forced
    connector.get_order(ids[2])
    assert served(shop)["wechat"]["force_refreshes"] == 1


def test_an_expired_token_is_renewed_in_normal_mode_without_forcing(shop):
    connector = connector_for(shop)
    ids = sorted(expected_ids(shop, *WINDOW))
    connector.get_order(ids[0])
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"expire_tokens": True}, timeout=5)
    connector.get_order(ids[1])
    assert connector.client.auth.forced_count == 0 and served(shop)["wechat"]["force_refreshes"] == 0


def test_45011_waits_until_the_platforms_next_minute():
    """The minute quota refills at the platform's next minute: its clock (the answer's rid) says 09:00:47,
    so the client waits 13 s and up to a second of jitter, whatever the hub's own clock says."""
    with sandbox(clock=Clock.frozen(NOW + timedelta(seconds=47))) as sb:
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # the client's injectable sleep: note the wait, end the storm
            waits.append(seconds)
            sb.faults.clear()

        connector = connector_for(sb, retry=RetryPolicy(), sleep=sleep)
        order_id = sorted(expected_ids(sb, NOW - timedelta(hours=6), NOW))[0]
        connector.get_order(order_id)  # the token first, while the platform is calm
        sb.faults.update(rate_limit_storm=1.0)
        assert connector.get_order(order_id)["order_id"] == order_id
        [waited] = waits
        assert 13.0 <= waited <= 14.0 and connector.client.stats.rate_limited == 1


def test_without_a_rid_the_wait_runs_to_the_hubs_next_minute():
    calm = {"errcode": 45011, "errmsg": "api minute-quota reach limit  mustslower  retry next minute"}
    assert seconds_to_next_minute(calm, clock=lambda: 1_800_000_020.5, jitter=lambda low, high: 0.0) == 39.5
    stamped = {"errcode": 45011, "errmsg": "api minute-quota reach limit rid: 649d7280-2a7d3107-6dce4e47"}
    assert seconds_to_next_minute(stamped, jitter=lambda low, high: high) == 60 - 0x649D7280 % 60 + 1.0


def test_daily_quota_45009_fails_at_once(shop):
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"daily_quota": 3}, timeout=5)
    connector = connector_for(shop)
    with pytest.raises(QuotaExhausted, match="daily quota") as caught:
        list(connector.fetch_orders(*WINDOW))
    assert caught.value.code == "45009"
    assert served(shop)["requests"]["quota_refused"] == 1  # no retry: waiting will not refill it


def test_a_wrong_app_secret_is_an_auth_error_without_the_secret(shop):
    wrong = "wx-wrong-secret-0123456789abcdef"
    connector = connector_for(shop, secret=wrong)
    with pytest.raises(AuthError) as caught:
        list(connector.fetch_orders(*WINDOW))
    assert caught.value.code == "40125"
    assert wrong not in str(caught.value) and wrong not in repr(caught.value) and wrong not in repr(connector)


def test_busy_and_gateway_errors_are_retried(shop):
    shop.faults.update(server_error_rate=0.3, truncated_body_rate=0.1)
    try:
        connector = connector_for(shop)
        got = ids_of(list(connector.fetch_orders(*WINDOW)))
    finally:
        shop.faults.clear()
    assert set(got) == expected_ids(shop, *WINDOW)
    stats = connector.client.stats
    assert stats.server_errors > 0 and stats.retries >= stats.server_errors
    assert stats.status_counts[502] + stats.status_counts[503] > 0  # gateway pages, not only errcode -1


def test_timeouts_are_retried_then_surface_as_transient(shop):
    shop.faults.update(latency_seconds=0.4)
    try:
        connector = connector_for(
            shop,
            timeout=(2.0, 0.15),
            retry=RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.02, backoff_jitter=0.0),
        )
        with pytest.raises(TransientError, match="read timeout"):
            list(connector.fetch_orders(*WINDOW))
        assert connector.client.stats.network_errors == 3
    finally:
        shop.faults.clear()
    assert ids_of(list(connector.fetch_orders(*WINDOW)))  # the same connector recovers once it is healthy


def test_connector_for_channel_uses_login_secret_and_caps_the_page_size(shop):
    config = hub_config("wx_shop", "wechat_channels", page_size=250)
    credentials = ChannelCredentials("wx_shop", shop.base_url, login=SANDBOX_LOGIN, secret=Secret(SECRET))
    connector = connector_for_channel(credentials, config.channel("wx_shop"))
    assert connector.page_size == 100
    assert set(ids_of(list(connector.fetch_orders(*WINDOW)))) == expected_ids(shop, *WINDOW)
