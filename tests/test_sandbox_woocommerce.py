"""Contract tests of the WooCommerce sandbox (real HTTP): it enforces the limits and error shapes."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from jsonschema import Draft202012Validator
from woo_auth import WooOAuth

from connectors.oauth1 import oauth1_params
from platforms.woocommerce.connector import MAX_PAGE_SIZE
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.woocommerce import SANDBOX_LOGIN

NOW = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)  # 12:00 in America/Chicago (CDT, UTC-5)
SECRET = "cs_test_0123456789abcdef0123456789abcdef"
SCHEMA = Draft202012Validator(
    json.loads(resources.files("platforms").joinpath("woocommerce/order.schema.json").read_text())
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


OAUTH = WooOAuth(SANDBOX_LOGIN, SECRET)


def get(shop: RunningSandbox, path: str, auth: Any = OAUTH, **params: Any) -> requests.Response:
    return requests.get(f"{shop.base_url}/wp-json/wc/v3{path}", params=params, auth=auth, timeout=10)


def gmt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def tls_shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "woocommerce",
        seed=11,
        access_token=SECRET,
        start=NOW - timedelta(hours=6),
        clock=Clock.frozen(NOW),
        tls=True,
    ) as running:
        yield running


def over_tls(shop: RunningSandbox, auth: Any = None, **params: Any) -> requests.Response:
    url = f"{shop.base_url}/wp-json/wc/v3/orders"
    return requests.get(url, params=params, auth=auth, verify=shop.ca_bundle, timeout=10)


def body_of(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["data"] == {"status": response.status_code}
    return response.status_code, body["code"], body["message"]


CANNOT_LIST = (401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
AUTH_ERROR = "woocommerce_rest_authentication_error"


def test_basic_auth_and_query_keys_count_only_over_tls_and_oauth_over_plain_http(
    shop: RunningSandbox, tls_shop: RunningSandbox
) -> None:
    """WooCommerce tries Basic (and the consumer_key/consumer_secret query) only when is_ssl(): over plain
    HTTP they are not read at all, so the route refuses the anonymous caller."""
    assert shop.base_url.startswith("http://") and tls_shop.base_url.startswith("https://")
    assert get(shop, "/orders").status_code == 200  # OAuth 1.0a
    assert body_of(get(shop, "/orders", auth=(SANDBOX_LOGIN, SECRET))) == CANNOT_LIST
    in_query = get(shop, "/orders", auth=None, consumer_key=SANDBOX_LOGIN, consumer_secret=SECRET)
    assert body_of(in_query) == CANNOT_LIST
    assert over_tls(tls_shop, (SANDBOX_LOGIN, SECRET)).status_code == 200
    assert over_tls(tls_shop, consumer_key=SANDBOX_LOGIN, consumer_secret=SECRET).status_code == 200
    assert over_tls(tls_shop, WooOAuth(SANDBOX_LOGIN, SECRET)).status_code == 200  # OAuth works there too
    with pytest.raises(requests.exceptions.SSLError):  # a certificate nobody vouches for
        requests.get(f"{tls_shop.base_url}/wp-json/wc/v3/orders", auth=(SANDBOX_LOGIN, SECRET), timeout=10)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, CANNOT_LIST),
        (WooOAuth("ck_wrong", SECRET), (401, AUTH_ERROR, "Consumer key is invalid.")),
        (
            WooOAuth(SANDBOX_LOGIN, "cs_wrong"),
            (401, AUTH_ERROR, "Invalid signature - provided signature does not match."),
        ),
    ],
    ids=["anonymous", "oauth_unknown_key", "oauth_wrong_secret"],
)
def test_auth_failures_over_http_are_401_with_wordpress_error_bodies(
    shop: RunningSandbox, auth: Any, expected: tuple[int, str, str]
) -> None:
    assert body_of(get(shop, "/orders", auth=auth)) == expected


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        # An unknown key is no error to Basic auth: nothing authenticated, the route refuses.
        (("ck_wrong", SECRET), CANNOT_LIST),
        ((SANDBOX_LOGIN, "cs_wrong"), (401, AUTH_ERROR, "Consumer secret is invalid.")),
    ],
    ids=["basic_unknown_key", "basic_wrong_secret"],
)
def test_basic_auth_failures_over_tls(
    tls_shop: RunningSandbox, auth: Any, expected: tuple[int, str, str]
) -> None:
    assert body_of(over_tls(tls_shop, auth)) == expected


def signed(shop: RunningSandbox, path: str, **overrides: Any) -> requests.Response:
    """A GET signed with chosen OAuth values (``params`` are the request's own; the rest replace what
    ``oauth1_params`` computed, after signing)."""
    url = f"{shop.base_url}/wp-json/wc/v3{path}"
    params = overrides.pop("params", {})
    oauth = oauth1_params(
        "GET",
        url,
        params,
        SANDBOX_LOGIN,
        SECRET,
        timestamp=overrides.pop("timestamp", int(time.time())),
        nonce=overrides.pop("nonce", secrets.token_hex(16)),
        signature_method=overrides.pop("signature_method", "HMAC-SHA256"),
    )
    sent = {**params, **oauth, **overrides}
    return requests.get(url, params={k: v for k, v in sent.items() if v is not None}, timeout=10)


def test_oauth_checks_signature_method_timestamp_and_nonce_like_woocommerce(shop: RunningSandbox) -> None:
    nonce = secrets.token_hex(16)
    assert signed(shop, "/orders", nonce=nonce, signature_method="HMAC-SHA1").status_code == 200
    replayed = signed(shop, "/orders", nonce=nonce, signature_method="HMAC-SHA1")
    assert body_of(replayed) == (401, AUTH_ERROR, "Invalid nonce - nonce has already been used.")
    stale = signed(shop, "/orders", timestamp=int(time.time()) - 16 * 60)
    assert body_of(stale) == (401, AUTH_ERROR, "Invalid timestamp.")
    plaintext = signed(shop, "/orders", oauth_signature_method="PLAINTEXT")
    assert body_of(plaintext) == (401, AUTH_ERROR, "Invalid signature - signature method is invalid.")
    # What is signed is the query as sent: a parameter changed after signing breaks the signature.
    tampered = signed(shop, "/orders", params={"per_page": "5"}, per_page="6")
    assert body_of(tampered)[2] == "Invalid signature - provided signature does not match."
    assert signed(shop, "/orders", params={"per_page": "5", "status": "any"}).status_code == 200
    missing = signed(shop, "/orders", oauth_nonce=None, oauth_timestamp=None)
    expected = "Missing OAuth parameters oauth_timestamp, oauth_nonce"
    assert body_of(missing) == (401, "woocommerce_rest_authentication_missing_parameter", expected)


def test_oauth_in_the_authorization_header_is_read_too(shop: RunningSandbox) -> None:
    url = f"{shop.base_url}/wp-json/wc/v3/orders"
    oauth = oauth1_params("GET", url, {}, SANDBOX_LOGIN, SECRET, timestamp=int(time.time()), nonce="n0nce1")
    header = "OAuth " + ", ".join(f'{name}="{quote(value, safe="")}"' for name, value in oauth.items())
    assert requests.get(url, headers={"Authorization": header}, timeout=10).status_code == 200


def test_an_anonymous_caller_gets_each_routes_own_refusal_and_unknown_routes_404(
    shop: RunningSandbox,
) -> None:
    base = f"{shop.base_url}/wp-json/wc/v3"
    order_id = get(shop, "/orders").json()[0]["id"]
    one = requests.get(f"{base}/orders/{order_id}", timeout=10)
    assert body_of(one) == (401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
    note = requests.post(f"{base}/orders/{order_id}/notes", json={"note": "x"}, timeout=10)
    assert body_of(note) == (
        401,
        "woocommerce_rest_cannot_create",
        "Sorry, you are not allowed to create resources.",
    )
    edit = requests.put(f"{base}/orders/{order_id}", json={"status": "completed"}, timeout=10)
    assert body_of(edit) == (
        401,
        "woocommerce_rest_cannot_edit",
        "Sorry, you are not allowed to edit this resource.",
    )
    assert body_of(requests.get(f"{base}/no/such/route", timeout=10))[:2] == (404, "rest_no_route")


def test_the_cli_serves_https_with_a_ca_to_trust() -> None:
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "woocommerce", "--tls", "--access-token", SECRET],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(" at ", 1)[1].split()[0]
        ca_bundle = process.stdout.readline().split(" in ", 1)[1].split()[0]
        assert base_url.startswith("https://127.0.0.1:")
        answer = requests.get(
            f"{base_url}/wp-json/wc/v3/orders", auth=(SANDBOX_LOGIN, SECRET), verify=ca_bundle, timeout=10
        )
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


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
        "pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "checkout-draft"
    }  # fmt: skip
    assert get(shop, f"/orders/{order['id']}").json() == order


def test_status_any_lists_checkout_drafts_which_a_status_list_can_leave_out(shop: RunningSandbox) -> None:
    window = {"modified_after": "2026-03-14T06:00:00", "dates_are_gmt": "true", "per_page": 100}
    first = get(shop, "/orders", **window)
    pages = int(first.headers["X-WP-TotalPages"])
    listed = [o for page in range(1, pages + 1) for o in get(shop, "/orders", page=page, **window).json()]
    drafts = [o for o in listed if o["status"] == "checkout-draft"]
    since = datetime(2026, 3, 14, 6, 0, 1, tzinfo=UTC)  # modified_after is exclusive
    assert {o["id"] for o in drafts} == set(shop.app.state.renderer.drafts_between(since, NOW))
    assert drafts and all(SCHEMA.is_valid(d) for d in drafts)
    draft = drafts[0]
    assert draft["date_paid_gmt"] is None and draft["refunds"] == [] and draft["created_via"] == "store-api"
    assert draft["date_modified_gmt"] == draft["date_created_gmt"]  # an abandoned cart never changes
    assert get(shop, f"/orders/{draft['id']}").json() == draft
    only = get(shop, "/orders", status="checkout-draft", **window).json()
    assert {o["id"] for o in only} == {o["id"] for o in drafts}
    core = get(shop, "/orders", status="processing,completed", **window)
    assert {o["status"] for o in core.json()} == {"processing", "completed"}
    assert int(core.headers["X-WP-Total"]) == sum(o["status"] in ("processing", "completed") for o in listed)


def test_refund_objects_name_their_lines_and_match_the_orders_summary(shop: RunningSandbox) -> None:
    orders = get(shop, "/orders", per_page=100, order="asc").json()  # the oldest: returns are done
    with_refunds = [o for o in orders if o["refunds"]]
    assert with_refunds
    restocked_somewhere = False
    for order in with_refunds:
        response = get(shop, f"/orders/{order['id']}/refunds")
        refunds = response.json()
        assert response.headers["X-WP-Total"] == str(len(refunds))
        assert [(r["id"], "-" + r["amount"]) for r in refunds] == [
            (r["id"], r["total"]) for r in order["refunds"]
        ]
        lines = {line["id"]: line for line in order["line_items"]}
        for refund in refunds:
            assert refund["refunded_by"] == 1 and isinstance(refund["refunded_payment"], bool)
            for item in refund["line_items"]:
                [link] = [m["value"] for m in item["meta_data"] if m["key"] == "_refunded_item_id"]
                line = lines[int(link)]
                assert item["quantity"] < 0 and item["product_id"] == line["product_id"]
                assert item["total"].startswith("-") and isinstance(item["price"], int | float)
        restocked_somewhere |= any(
            meta["key"] == "_restock_refunded_items" for line in lines.values() for meta in line["meta_data"]
        )
        assert get(shop, f"/orders/{order['id']}/refunds/{refunds[0]['id']}").json() == refunds[0]
    assert restocked_somewhere
    paged = get(shop, f"/orders/{with_refunds[0]['id']}/refunds", per_page=1, page=1)
    assert paged.headers["X-WP-TotalPages"] == str(len(with_refunds[0]["refunds"]))
    assert get(shop, "/orders/3/refunds").json() == []


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
