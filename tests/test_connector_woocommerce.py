"""WooCommerceConnector against the WooCommerce sandbox (real HTTP, injected faults, a frozen world clock).

The expected set of a window comes from the world: ``World.updated_between`` is inclusive, WooCommerce's
``modified_after``/``modified_before`` exclusive, and the connector's windows half-open ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from connectors.auth import BasicAuth, QueryParams, Secret, is_loopback
from connectors.errors import ApiError, AuthError, InsecureTransport, RateLimited, TransientError
from connectors.http import RetryPolicy
from connectors.oauth1 import OAuth1OneLegged, oauth1_base_string, oauth1_params
from platforms.woocommerce.connector import (
    MAX_PAGE_SIZE,
    WooCommerceConnector,
    auth_for,
    connector_for_channel,
    woocommerce_spec,
)
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.woocommerce import SANDBOX_LOGIN, wc_signature

NOW = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=6), NOW)
SECRET = "cs_test_feedfacefeedfacefeedfacefeedface"
ONE_SECOND = timedelta(seconds=1)
FAST = RetryPolicy(
    max_attempts=8,
    malformed_attempts=3,
    rate_limit_attempts=20,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_max=0.02,  # the host says Retry-After: 1; honouring it exactly is tested in the framework
)


def sandbox(**options: Any) -> Any:
    options.setdefault("seed", 4)
    return run_sandbox(
        "woocommerce",
        access_token=SECRET,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=4),
        clock=Clock.frozen(NOW),
        **options,
    )


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with sandbox() as running:
        yield running


def connector_for(sb: RunningSandbox, **options: Any) -> WooCommerceConnector:
    options.setdefault("retry", FAST)
    options.setdefault("page_size", 10)
    secret = options.pop("secret", SECRET)
    return WooCommerceConnector.from_connection(sb.base_url, SANDBOX_LOGIN, secret, **options)


def expected_ids(sb: RunningSandbox, start: datetime, end: datetime) -> set[int]:
    """The world's orders updated in [start, end) and the shop's checkout drafts created then."""
    renderer = sb.app.state.renderer
    orders = {renderer.order_id(s.index) for s in sb.world.updated_between(start, end - ONE_SECOND)}
    return orders | set(renderer.drafts_between(start, end - ONE_SECOND))


def served(sb: RunningSandbox) -> dict[str, int]:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()["requests"]


def ids_of(pages: list[list[dict[str, Any]]]) -> list[int]:
    return [order["id"] for page in pages for order in page]


def test_pulls_every_order_modified_in_the_window_across_pages_any_status(shop: RunningSandbox) -> None:
    connector = connector_for(shop)
    pages = list(connector.fetch_orders(*WINDOW))
    ids = ids_of(pages)
    assert len(pages) >= 5 and all(1 <= len(page) <= 10 for page in pages)
    assert len(ids) == len(set(ids)) and set(ids) == expected_ids(shop, *WINDOW)
    statuses = {order["status"] for page in pages for order in page}
    assert {"processing", "completed"} <= statuses and len(statuses) >= 3  # status=any
    # backwards: a probe of page 1, then the last page first and page 1 again at the end; plus one
    # GET /orders/{id}/refunds per order with refunds, whose objects come along
    refunded = [order for page in pages for order in page if order["refunds"]]
    assert refunded and all(
        [r["id"] for r in order["channelhub_refunds"]] == [r["id"] for r in order["refunds"]]
        for order in refunded
    )
    assert connector.client.stats.status_counts == {200: len(pages) + 1 + len(refunded)}
    assert max(ids) in {order["id"] for order in pages[0]}  # the newest orders sit on the last page


def test_half_open_windows_meet_without_a_gap_or_a_duplicate(shop: RunningSandbox) -> None:
    connector = connector_for(shop, page_size=MAX_PAGE_SIZE)
    orders = [order for page in connector.fetch_orders(*WINDOW) for order in page]
    boundary = datetime.fromisoformat(orders[len(orders) // 2]["date_modified_gmt"]).replace(tzinfo=UTC)
    at_boundary = {
        o["id"] for o in orders if o["date_modified_gmt"] == orders[len(orders) // 2]["date_modified_gmt"]
    }
    earlier = set(ids_of(list(connector.fetch_orders(WINDOW[0], boundary))))
    later = set(ids_of(list(connector.fetch_orders(boundary, WINDOW[1]))))
    assert at_boundary <= later and not at_boundary & earlier  # modified_after/before are exclusive
    assert earlier | later == {o["id"] for o in orders} and not earlier & later


def test_orders_modified_while_paging_are_never_skipped(shop: RunningSandbox) -> None:
    """Orders that change mid-pull leave the window (their new time is later) and shift the pages; reading
    last page first turns that shift into duplicates, never into a missed order."""
    connector = connector_for(shop, page_size=5)
    before = {s.index: s.updated_ts for s in shop.world.updated_between(WINDOW[0], WINDOW[1] - ONE_SECOND)}
    pages = connector.fetch_orders(*WINDOW)
    fetched = ids_of([next(pages)])
    shop.clock.advance(timedelta(hours=3))  # the shop moves on: paid, shipped, refunded...
    fetched += ids_of(list(pages))
    after_ts = shop.world.now_ts()
    renderer = shop.app.state.renderer
    changed = {i for i in before if shop.world.state(i, after_ts).updated_ts != before[i]}  # type: ignore[union-attr]
    unchanged = {renderer.order_id(i) for i in before if i not in changed}
    assert changed, "the clock jump must change some orders in the window"
    assert unchanged <= set(fetched)  # nothing that stayed in the window was skipped


def test_host_429_storm_and_server_errors_still_yield_the_complete_set() -> None:
    with sandbox(seed=5) as sb:
        sb.faults.update(rate_limit_storm=0.3, server_error_rate=0.2, truncated_body_rate=0.1)
        connector = connector_for(sb)
        ids = ids_of(list(connector.fetch_orders(*WINDOW)))
        assert set(ids) == expected_ids(sb, *WINDOW)
        stats = connector.client.stats
        assert stats.rate_limited > 0 and stats.server_errors > 0 and stats.malformed > 0
        assert served(sb)["throttled"] == stats.rate_limited


def test_a_storm_longer_than_the_budget_surfaces_as_rate_limited(shop: RunningSandbox) -> None:
    shop.faults.update(rate_limit_storm=1.0)
    with pytest.raises(RateLimited) as caught:
        list(connector_for(shop).fetch_orders(*WINDOW))
    assert caught.value.status == 429 and caught.value.retry_after == 1.0
    assert served(shop)["api_requests"] == FAST.rate_limit_attempts


def test_a_read_timeout_is_retried_and_the_pull_completes(shop: RunningSandbox) -> None:
    shop.faults.update(latency_seconds=3.0)

    def recover(seconds: float) -> None:  # the host recovers while the client backs off
        shop.faults.update(latency_seconds=0.0)

    # A read timeout well above a loaded machine's answer times: only the hung answer times out.
    connector = connector_for(shop, timeout=(2.0, 1.0), sleep=recover)
    ids = ids_of(list(connector.fetch_orders(*WINDOW)))
    assert set(ids) == expected_ids(shop, *WINDOW)
    assert connector.client.stats.network_errors == 1 and connector.client.stats.retries == 1


def test_a_shop_that_stays_down_is_a_transient_error_after_the_budget(shop: RunningSandbox) -> None:
    shop.faults.update(server_error_rate=1.0)
    with pytest.raises(TransientError) as caught:
        list(connector_for(shop).fetch_orders(*WINDOW))
    assert caught.value.status in (500, 502, 503)
    assert served(shop)["api_requests"] == FAST.max_attempts


@pytest.mark.parametrize(
    ("login", "secret"), [("ck_wrong_0000", SECRET), (SANDBOX_LOGIN, "cs_wrong_secret_1234")]
)
def test_refused_credentials_are_an_auth_error_without_the_secret(
    shop: RunningSandbox, login: str, secret: str
) -> None:
    connector = WooCommerceConnector.from_connection(shop.base_url, login, secret, retry=FAST)
    with pytest.raises(AuthError) as caught:
        list(connector.fetch_orders(*WINDOW))
    assert caught.value.status == 401 and caught.value.code == "woocommerce_rest_authentication_error"
    for text in (str(caught.value), repr(caught.value), caught.value.body, repr(connector)):
        assert secret not in text and login not in text
    assert served(shop)["unauthorized"] == 1  # an auth error is not retried


def test_get_order_and_a_missing_one(shop: RunningSandbox) -> None:
    connector = connector_for(shop)
    first = next(iter(connector.fetch_orders(*WINDOW)))[0]
    assert connector.get_order(first["id"]) == first
    with pytest.raises(ApiError) as caught:
        connector.get_order(3)
    assert caught.value.status == 404 and caught.value.code == "woocommerce_rest_shop_order_invalid_id"


def test_page_size_is_capped_at_100_for_a_channel_and_refused_above_it_directly(shop: RunningSandbox) -> None:
    config = hub_config("woo", "woocommerce")
    channel = config.channel("woo")
    assert channel.page_size == 250  # the config default, made for Shopify
    credentials = ChannelCredentials("woo", shop.base_url, login=SANDBOX_LOGIN, secret=Secret(SECRET))
    connector = connector_for_channel(credentials, channel)
    assert connector.page_size == MAX_PAGE_SIZE
    assert set(ids_of(list(connector.fetch_orders(*WINDOW)))) == expected_ids(shop, *WINDOW)
    with pytest.raises(ValueError, match="page_size"):
        woocommerce_spec(MAX_PAGE_SIZE + 1)
    with pytest.raises(ValueError, match="consumer key"):
        connector_for_channel(ChannelCredentials("woo", shop.base_url, secret=Secret(SECRET)), channel)


# ------------------------------------------------------------------------------------------ auth by scheme


def test_over_plain_http_every_request_is_signed_with_oauth1(shop: RunningSandbox) -> None:
    connector = connector_for(shop)
    assert isinstance(connector.spec.auth, OAuth1OneLegged)
    first = next(iter(connector.fetch_orders(*WINDOW)))[0]
    assert connector.get_order(first["id"]) == first
    seen: list[str] = []  # the URLs as sent, through a session hook
    connector.client.session.hooks["response"].append(lambda response, **_: seen.append(response.url))
    connector.get_order(first["id"])
    assert seen and all("oauth_signature=" in url and "oauth_nonce=" in url for url in seen)
    assert not any("consumer_secret" in url or SECRET in url for url in seen)


def test_over_https_basic_auth_with_the_connections_ca_bundle() -> None:
    with sandbox(seed=6, tls=True) as sb:
        assert sb.base_url.startswith("https://") and sb.ca_bundle
        credentials = ChannelCredentials(
            "woo", sb.base_url, login=SANDBOX_LOGIN, secret=Secret(SECRET), extra={"ca_bundle": sb.ca_bundle}
        )
        connector = connector_for_channel(credentials, hub_config("woo", "woocommerce").channel("woo"))
        assert isinstance(connector.spec.auth, BasicAuth)
        ids = ids_of(list(connector.fetch_orders(*WINDOW)))
        assert set(ids) == expected_ids(sb, *WINDOW)
        for kind in ("query", "oauth1"):  # the other two kinds WooCommerce reads over TLS
            other = connector_for(sb, auth=kind, ca_bundle=sb.ca_bundle, page_size=MAX_PAGE_SIZE)
            assert set(ids_of(list(other.fetch_orders(*WINDOW)))) == set(ids)
        untrusted = connector_for(sb, retry=RetryPolicy(max_attempts=1))  # no ca_bundle: not verified
        with pytest.raises(TransientError, match=r"CERTIFICATE_VERIFY_FAILED"):
            list(untrusted.fetch_orders(*WINDOW))


def test_basic_over_http_to_this_machine_is_sent_and_woocommerce_refuses_it(shop: RunningSandbox) -> None:
    """Loopback may carry Basic (a local TLS-terminating proxy); the sandbox, plain WordPress over http,
    does not read it: the route refuses the anonymous caller."""
    for kind in ("basic", "query"):
        connector = connector_for(shop, auth=kind)
        with pytest.raises(AuthError) as caught:
            list(connector.fetch_orders(*WINDOW))
        assert (caught.value.status, caught.value.code) == (401, "woocommerce_rest_cannot_view")
        assert SECRET not in str(caught.value)


@pytest.mark.parametrize("kind", ["basic", "query"])
@pytest.mark.parametrize("url", ["http://shop.example.com", "http://10.0.0.8:8080", "http://[2001:db8::1]"])
def test_basic_or_query_keys_over_http_to_another_host_are_refused_before_any_request(
    kind: str, url: str
) -> None:
    credentials = ChannelCredentials(
        "woo", url, login=SANDBOX_LOGIN, secret=Secret(SECRET), extra={"auth": kind}
    )
    with pytest.raises(InsecureTransport) as caught:
        connector_for_channel(credentials, hub_config("woo", "woocommerce").channel("woo"))
    assert isinstance(caught.value, AuthError) and "clear text over plain http" in str(caught.value)
    assert SECRET not in str(caught.value) and SANDBOX_LOGIN not in str(caught.value)


def test_which_auth_each_url_gets() -> None:
    assert isinstance(auth_for("https://shop.example.com"), BasicAuth)
    assert isinstance(auth_for("http://shop.example.com"), OAuth1OneLegged)
    assert isinstance(auth_for("https://shop.example.com", "oauth1"), OAuth1OneLegged)
    assert isinstance(auth_for("https://shop.example.com", "query"), QueryParams)
    for local in ("http://127.0.0.1:8702", "http://127.8.0.1", "http://localhost:8080", "http://[::1]:81"):
        assert is_loopback(local) and isinstance(auth_for(local, "basic"), BasicAuth)
    assert not is_loopback("http://localhost.example.com") and not is_loopback("http://0.0.0.0")
    with pytest.raises(ValueError, match="auth must be one of"):
        auth_for("https://shop.example.com", "bearer")


def test_the_signature_is_woocommerces_own() -> None:
    """The base string of the REST API docs' example, and a signature equal to the one the sandbox computes
    by WooCommerce's own steps (each pair encoded, re-encoded joined by '=', pairs joined by %26) for
    parameters that need encoding and a URL that carries a query of its own."""
    base = oauth1_base_string(
        "get",
        "HTTP://WWW.Example.com:80/wp-json/wc/v3/orders",
        {"oauth_consumer_key": "abc123", "oauth_signature_method": "HMAC-SHA1"},
    )
    docs = (
        "GET&http%3A%2F%2Fwww.example.com%2Fwp-json%2Fwc%2Fv3%2Forders"
        "&oauth_consumer_key%3Dabc123%26oauth_signature_method%3DHMAC-SHA1"
    )
    assert base == docs
    url = "http://127.0.0.1:8702/wp-json/wc/v3/orders?search=caf%C3%A9+au+lait"
    params = {"modified_after": "2026-05-04T09:00:00", "per_page": 100, "status": "any", "q": "a&b=c~d*e"}
    for method in ("HMAC-SHA1", "HMAC-SHA256"):
        oauth = oauth1_params(
            "GET", url, params, "ck_1", "cs_2", timestamp=1_700_000_000, nonce="abc", signature_method=method
        )
        signed = {"search": "café au lait", **{k: str(v) for k, v in params.items()}, **oauth}
        home = "http://127.0.0.1:8702/wp-json/wc/v3/orders"
        assert (
            wc_signature("GET", home, {k: v for k, v in signed.items() if k != "oauth_signature"}, "cs_2")
            == (oauth["oauth_signature"])
        )
