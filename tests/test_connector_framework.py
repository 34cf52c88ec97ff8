"""The declarative connector framework against small real HTTP servers started in the test.

Each server is ``http.server`` in a thread with a per-test handler, so every behaviour (paging, retries,
429 + Retry-After, timeouts, truncated bodies, token refresh, throttling) goes over real sockets.
The specs declared here are shaped like WooCommerce, Youzan, WeChat Channels and Taobao to show the
framework fits them.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.auth import BasicAuth, Cred, HeaderToken, Secret
from connectors.errors import (
    ApiError,
    AuthError,
    ConnectorError,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    TransientError,
    redact,
)
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import (
    ErrorPolicy,
    ErrorShape,
    HttpClient,
    LeakyBucketThrottle,
    RateLimitSignal,
    RequestRateThrottle,
    RetryPolicy,
)
from connectors.paginators import CursorPaginator, LinkHeaderPaginator, PageNumberPaginator
from connectors.tokens import TokenEndpoint, TokenEndpointAuth
from connectors.windows import (
    CHINA_WALL_TIME,
    EPOCH_SECONDS,
    ISO8601_UTC,
    TimeFormat,
    WindowSpec,
    bisect_window,
    iter_windows,
)

FAST = RetryPolicy(
    max_attempts=4,
    malformed_attempts=3,
    rate_limit_attempts=5,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_default=0.01,
)
T0 = datetime(2024, 5, 1, tzinfo=UTC)


# --- a tiny real HTTP API -------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw_url: str

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False  # announce more bytes than sent, then close (a cut-off response)
    raw: bytes | None = None


class FakeApi:
    """A real HTTP server on 127.0.0.1; ``handler(seen) -> Reply`` decides each answer."""

    def __init__(self) -> None:
        self.handler: Callable[[Seen], Reply] = lambda seen: Reply({})
        self.seen: list[Seen] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in separate writes; don't stall on them

            def log_message(self, *args: object) -> None:
                return None

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                    self.path,
                )
                api.seen.append(seen)
                reply = api.handler(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.raw is None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) + (50 if reply.truncate else 0)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass
                if reply.truncate:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


class SleepLog:
    """Real sleeping (the servers run in real time) that also records what the client asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(seconds)


def client_for(api: FakeApi, **options: Any) -> HttpClient:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", (2.0, 2.0))
    return HttpClient(api.url, platform="test", **options)


# --- windows and time formats ---------------------------------------------------------------------------


def test_iter_windows_splits_into_contiguous_spans_no_longer_than_the_limit() -> None:
    start, end = T0, T0 + timedelta(days=2, hours=5)
    windows = list(iter_windows(start, end, timedelta(days=1)))
    assert windows == [
        (T0, T0 + timedelta(days=1)),
        (T0 + timedelta(days=1), T0 + timedelta(days=2)),
        (T0 + timedelta(days=2), end),
    ]
    assert list(iter_windows(start, end, None)) == [(start, end)]
    assert list(iter_windows(start, start, timedelta(hours=1))) == []


def test_iter_windows_rejects_naive_and_reversed_ranges() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        list(iter_windows(datetime(2024, 5, 1), datetime(2024, 5, 2), None))
    with pytest.raises(ValueError, match="after its end"):
        list(iter_windows(T0 + timedelta(hours=1), T0, None))


def test_iter_windows_with_granularity_widens_outer_bounds_and_keeps_every_span_within_the_limit() -> None:
    start = T0 + timedelta(microseconds=400_000)
    end = T0 + timedelta(days=15, microseconds=1)
    windows = list(iter_windows(start, end, timedelta(days=7), granularity=timedelta(seconds=1)))
    assert windows[0][0] == T0  # floored: never narrower than asked
    assert windows[-1][1] == T0 + timedelta(days=15, seconds=1)  # ceiled
    assert all(b - a <= timedelta(days=7) for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
    rendered = [WindowSpec("s", "e", EPOCH_SECONDS).render(a, b) for a, b in windows]
    assert all(r["e"] - r["s"] <= 7 * 86400 for r in rendered)


def test_bisect_window_stops_at_the_granularity() -> None:
    halves = bisect_window(T0, T0 + timedelta(seconds=10), timedelta(seconds=1))
    assert halves == (
        (T0, T0 + timedelta(seconds=5)),
        (T0 + timedelta(seconds=5), T0 + timedelta(seconds=10)),
    )
    assert bisect_window(T0, T0 + timedelta(seconds=1), timedelta(seconds=1)) is None


def test_time_formats_write_each_platform_form_and_only_widen() -> None:
    moment = datetime(2024, 5, 1, 3, 4, 5, 600_000, tzinfo=UTC)
    assert ISO8601_UTC.format(moment, "floor") == "2024-05-01T03:04:05+00:00"
    assert ISO8601_UTC.format(moment, "ceil") == "2024-05-01T03:04:06+00:00"
    assert EPOCH_SECONDS.format(moment, "floor") == 1714532645
    assert CHINA_WALL_TIME.format(moment, "floor") == "2024-05-01 11:04:05"  # GMT+8 wall time
    woo = TimeFormat("pattern", "%Y-%m-%dT%H:%M:%S")
    assert woo.format(moment) == "2024-05-01T03:04:05"
    nested = WindowSpec(
        "start_time", "end_time", EPOCH_SECONDS, location="body", container="update_time_range"
    )
    assert nested.render(T0, T0 + timedelta(hours=1)) == {
        "update_time_range": {"start_time": 1714521600, "end_time": 1714525200}
    }


# --- secrets never leak ---------------------------------------------------------------------------------


def test_secret_hides_its_value_everywhere_but_reveal() -> None:
    secret = Secret("shpat_0123456789abcdef")
    assert "0123456789" not in repr(secret) + str(secret) + f"{secret}" + f"{secret!r}" + str([secret])
    assert secret.reveal() == "shpat_0123456789abcdef"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_redact_masks_secret_values_and_sensitive_parameters() -> None:
    text = 'GET /x?access_token=abc123xyz&page=2 body={"secret": "s3cr3t-value"} tok=shpat_999999'
    cleaned = redact(text, ["shpat_999999"])
    assert "abc123xyz" not in cleaned and "s3cr3t-value" not in cleaned and "shpat_999999" not in cleaned
    assert "page=2" in cleaned
    assert redact("design=plain") == "design=plain"  # only whole parameter names


@pytest.mark.parametrize(
    "text",
    [
        "{'access_token': 'abc123xyz', 'page': 2}",  # a Python repr
        "Authorization: Bearer abc123xyz",
        "X-Shopify-Access-Token: abc123xyz",
        "x-shopify-access-token:abc123xyz",
        "GET /orders?oauth_signature=abc123xyz&page=2",
        "?signature=abc123xyz&timestamp=1",
        "sign=abc123xyz",
        "hmac=abc123xyz",
        "msg_signature=abc123xyz",
        '{"app_secret": "abc123xyz"}',
        "X-Shopify-Hmac-Sha256: abc123xyz",
    ],
)
def test_redact_masks_credentials_in_every_form_they_are_written(text: str) -> None:
    cleaned = redact(text)
    assert "abc123xyz" not in cleaned and "***" in cleaned
    assert redact("the signature was checked: ok, page=2").endswith("page=2")


def test_a_registered_secret_is_masked_in_any_text() -> None:
    from connectors.errors import register_secret

    register_secret("/hooks/T0-registered-path-secret")
    assert redact('POST /hooks/T0-registered-path-secret HTTP/1.1" 200') == 'POST *** HTTP/1.1" 200'


def test_an_auth_error_never_carries_the_token_in_str_repr_pickle_or_logs(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    token = "shpat_live_token_7f3a9c2e1b"
    # A careless platform echoes the credential back; the client must still not repeat it.
    api.handler = lambda seen: Reply(
        {"errors": f"[API] Invalid API key or access token ({seen.headers.get('X-Token')})"},
        status=401,
        headers={"X-Request-Id": "req-401"},
    )
    caplog.set_level(logging.DEBUG)
    client = client_for(api, auth=HeaderToken("X-Token").bind({"access_token": token}))
    with pytest.raises(AuthError) as caught:
        client.request("GET", "/orders.json")
    error = caught.value
    assert error.status == 401 and error.request_id == "req-401"
    assert "Invalid API key" in str(error)
    texts = [str(error), repr(error), error.body, repr(client), repr(client.auth)]
    texts.append(str(pickle.loads(pickle.dumps(error))))
    texts += [record.getMessage() for record in caplog.records]
    assert api.seen[0].headers["X-Token"] == token  # it was sent ...
    assert all(token not in text for text in texts)  # ... and never written anywhere
    assert len(api.seen) == 1  # a 401 is not retried


# --- paginators -----------------------------------------------------------------------------------------


def test_link_header_pages_follow_the_next_url_exactly_and_lazily(api: FakeApi) -> None:
    records = [{"id": i} for i in range(1, 8)]

    def handler(seen: Seen) -> Reply:
        offset = int(seen.arg("page_info") or 0)
        page = records[offset : offset + 3]
        headers = {}
        if offset + 3 < len(records):
            headers["Link"] = f'<{api.url}/v1/items.json?limit=3&page_info={offset + 3}>; rel="next"'
        return Reply({"items": page}, headers=headers)

    api.handler = handler
    spec = PlatformSpec(
        name="linky",
        auth=HeaderToken("X-Token"),
        base_path="/v1",
        endpoints={
            "items": Endpoint(
                "/items.json",
                params={"status": "any", "limit": 3},
                records_path="items",
                paginator=LinkHeaderPaginator(),
                window=WindowSpec("updated_at_min", "updated_at_max"),
            )
        },
    )

    class Linky(Connector):
        pass

    Linky.spec = spec
    connector = Linky.connect(api.url, {"access_token": "tok-123456"}, retry=FAST)
    pages = connector.fetch_pages("items", T0, T0 + timedelta(days=1))
    first = next(pages)
    assert first == records[:3]
    assert len(api.seen) == 1  # the second page is not requested before the first is consumed
    assert [r for page in pages for r in page] == records[3:]
    assert (
        api.seen[0].arg("status") == "any"
        and api.seen[0].arg("updated_at_min") == "2024-05-01T00:00:00+00:00"
    )
    for follow_up in api.seen[1:]:
        assert set(follow_up.query) == {"limit", "page_info"}  # filters are never resent with a cursor
        assert follow_up.headers["X-Token"] == "tok-123456"


def test_a_link_to_another_origin_is_refused(api: FakeApi) -> None:
    api.handler = lambda seen: Reply(
        {"items": [{"id": 1}]}, headers={"Link": '<http://evil.test/x>; rel="next"'}
    )
    client = client_for(api)
    first = client.request("GET", "/items")
    with pytest.raises(ApiError, match="another origin"):
        client.request("GET", first.links["next"]["url"])


def woo_like_spec(page_size: int) -> PlatformSpec:
    """WooCommerce v3: basic auth, page/per_page, totals in X-WP-* headers, GMT times without offset."""
    return PlatformSpec(
        name="woo-like",
        auth=BasicAuth("consumer_key", "consumer_secret"),
        base_path="/wp-json/wc/v3",
        errors=ErrorPolicy(shapes=(ErrorShape(message_path="message"),)),
        endpoints={
            "orders": Endpoint(
                "/orders",
                params={"orderby": "date", "order": "asc", "dates_are_gmt": "true"},
                paginator=PageNumberPaginator(
                    "page", "per_page", page_size, total_pages_header="X-WP-TotalPages"
                ),
                window=WindowSpec(
                    "modified_after", "modified_before", TimeFormat("pattern", "%Y-%m-%dT%H:%M:%S")
                ),
            )
        },
    )


def woo_connector(api: FakeApi) -> Connector:
    """A WooCommerce-like connector (page numbers, X-WP-TotalPages, basic auth) over ``api``, 2 per page."""

    class Woo(Connector):
        spec = woo_like_spec(page_size=2)

    return Woo.connect(api.url, {"consumer_key": "ck_abcdef", "consumer_secret": "cs_ghijkl"}, retry=FAST)


def test_page_numbers_with_a_total_pages_header_and_basic_auth(api: FakeApi) -> None:
    records = [{"id": i} for i in range(1, 6)]

    def handler(seen: Seen) -> Reply:
        assert seen.headers["Authorization"].startswith("Basic ")
        page, size = int(seen.arg("page") or 1), int(seen.arg("per_page") or 10)
        pages = -(-len(records) // size)
        return Reply(records[(page - 1) * size : page * size], headers={"X-WP-TotalPages": str(pages)})

    api.handler = handler

    connector = woo_connector(api)
    pages = list(connector.fetch_orders(T0, T0 + timedelta(days=1)))
    assert pages == [records[0:2], records[2:4], records[4:5]]
    assert [s.arg("page") for s in api.seen] == ["1", "2", "3"]
    assert api.seen[0].arg("modified_after") == "2024-05-01T00:00:00"
    assert api.seen[0].path == "/wp-json/wc/v3/orders"


def modified_times(count: int, start: datetime, span: timedelta) -> list[int]:
    step = span / count
    return [int((start + step * i).timestamp()) for i in range(count)]


def youzan_like_spec(page_size: int, max_page: int) -> PlatformSpec:
    """Youzan: token from /auth/token (epoch-ms expiry), POST JSON calls, page_no cap, GMT+8 wall times."""
    return PlatformSpec(
        name="youzan-like",
        auth=TokenEndpointAuth(
            TokenEndpoint(
                "/auth/token",
                method="POST",
                json={
                    "client_id": Cred("client_id"),
                    "client_secret": Cred("client_secret"),
                    "authorize_type": "silent",
                    "grant_id": Cred("kdt_id"),
                },
                token_path="data.access_token",
                expires_in_path=None,
                expires_at_path="data.expires",
                expires_at_unit=0.001,
            )
        ),
        errors=ErrorPolicy(
            shapes=(
                ErrorShape(code_path="gw_err_resp.err_code", message_path="gw_err_resp.err_msg"),
                ErrorShape(code_path="code", message_path="message", ok_codes=frozenset({"200"})),
            ),
            token_expired_codes=frozenset({"4201"}),
            request_id_header=None,
            request_id_path="trace_id",
        ),
        endpoints={
            "orders": Endpoint(
                "/api/youzan.trades.sold.get/4.0.4",
                method="POST",
                json={},
                idempotent=True,
                records_path="data.full_order_info_list",
                paginator=PageNumberPaginator(
                    "page_no",
                    "page_size",
                    page_size,
                    total_results_path="data.total_results",
                    max_page=max_page,
                    location="body",
                ),
                window=WindowSpec(
                    "start_update",
                    "end_update",
                    CHINA_WALL_TIME,
                    max_span=timedelta(days=90),
                    location="body",
                ),
            )
        },
    )


def test_page_cap_narrows_the_window_until_every_order_is_reachable(api: FakeApi) -> None:
    stamps = modified_times(23, T0, timedelta(hours=8))
    fmt = "%Y-%m-%d %H:%M:%S"
    tokens_issued: list[str] = []

    def handler(seen: Seen) -> Reply:
        if seen.path == "/auth/token":
            tokens_issued.append(f"yz-token-{len(tokens_issued)}")
            expires_ms = int((time.time() + 7 * 86400) * 1000)
            return Reply(
                {
                    "success": True,
                    "code": 200,
                    "data": {"access_token": tokens_issued[-1], "expires": expires_ms},
                }
            )
        body = seen.body
        lo = datetime.strptime(body["start_update"], fmt).replace(tzinfo=CHINA_WALL_TIME.tz).timestamp()
        hi = datetime.strptime(body["end_update"], fmt).replace(tzinfo=CHINA_WALL_TIME.tz).timestamp()
        matching = [{"full_order_info": {"tid": f"E{i}"}} for i, ts in enumerate(stamps) if lo <= ts < hi]
        page, size = body["page_no"], body["page_size"]
        if page > 2:
            return Reply({"success": False, "code": 5000, "message": "page_no too large"})
        return Reply(
            {
                "success": True,
                "code": 200,
                "trace_id": "yz7-1",
                "data": {
                    "total_results": len(matching),
                    "full_order_info_list": matching[(page - 1) * size : page * size],
                },
            }
        )

    api.handler = handler

    class Youzan(Connector):
        spec = youzan_like_spec(page_size=3, max_page=2)  # at most 6 orders reachable per window

    credentials = {"client_id": "cid-1", "client_secret": "csecret-1", "kdt_id": "987654"}
    connector = Youzan.connect(api.url, credentials, retry=FAST)
    got = [
        r["full_order_info"]["tid"]
        for page in connector.fetch_orders(T0, T0 + timedelta(hours=8))
        for r in page
    ]
    assert sorted(set(got), key=lambda t: int(t[1:])) == [f"E{i}" for i in range(23)]
    order_calls = [s for s in api.seen if s.path != "/auth/token"]
    assert all(s.query["access_token"] == [tokens_issued[0]] for s in order_calls)
    assert all(s.body["page_no"] <= 2 for s in order_calls)  # never asked for a page past the cap
    assert len(tokens_issued) == 1
    assert api.seen[0].body == {
        "client_id": "cid-1",
        "client_secret": "csecret-1",
        "authorize_type": "silent",
        "grant_id": "987654",
    }


def test_backwards_paging_survives_orders_leaving_the_window_while_paging(api: FakeApi) -> None:
    """Taobao sorts newest first and suggests paging from the last page: an order modified during the walk
    leaves the window and shifts older orders towards page 1; reading from the end cannot skip one."""
    orders = [{"tid": i} for i in range(10, 0, -1)]  # newest first
    leaver = orders[1]
    state = {"calls": 0}

    def handler(seen: Seen) -> Reply:
        state["calls"] += 1
        if state["calls"] == 3:  # after the probe and the first (last) page, an order leaves the window
            orders.remove(leaver)
        page, size = int(seen.arg("page_no") or 1), int(seen.arg("page_size") or 40)
        body = {"total_results": len(orders), "trades": {"trade": orders[(page - 1) * size : page * size]}}
        return Reply({"trades_sold_increment_get_response": body})

    api.handler = handler
    taobao_like = PlatformSpec(
        name="taobao-like",
        auth=HeaderToken("X-Session"),
        errors=ErrorPolicy(
            shapes=(ErrorShape(code_path="error_response.code", message_path="error_response.sub_msg"),),
            rate_limit=RateLimitSignal(body_codes=frozenset({"7"})),
        ),
        endpoints={
            "orders": Endpoint(
                "/router/rest",
                params={"method": "taobao.trades.sold.increment.get"},
                records_path="trades_sold_increment_get_response.trades.trade",
                paginator=PageNumberPaginator(
                    "page_no",
                    "page_size",
                    3,
                    total_results_path="trades_sold_increment_get_response.total_results",
                    backwards=True,
                ),
                window=WindowSpec(
                    "start_modified", "end_modified", CHINA_WALL_TIME, max_span=timedelta(days=1)
                ),
            )
        },
    )

    class Taobao(Connector):
        spec = taobao_like

    connector = Taobao.connect(api.url, {"access_token": "session-xyz"}, retry=FAST)
    got = {r["tid"] for page in connector.fetch_orders(T0, T0 + timedelta(hours=1)) for r in page}
    assert [s.arg("page_no") for s in api.seen] == ["1", "4", "3", "2", "1"]  # probe, then last to first
    assert {o["tid"] for o in orders} <= got  # every order still in the window was read


def taobao_like_spec(page_size: int, *, record_key: str | None = None) -> PlatformSpec:
    """Newest first, paged from the last page, a total of results in the body."""
    return PlatformSpec(
        name="taobao-like",
        auth=HeaderToken("X-Session"),
        endpoints={
            "orders": Endpoint(
                "/router/rest",
                records_path="trades_sold_increment_get_response.trades.trade",
                record_key=record_key,
                paginator=PageNumberPaginator(
                    "page_no",
                    "page_size",
                    page_size,
                    total_results_path="trades_sold_increment_get_response.total_results",
                    backwards=True,
                ),
                window=WindowSpec("start_modified", "end_modified", CHINA_WALL_TIME),
            )
        },
    )


def taobao_answer(orders: list[dict[str, Any]], seen: Seen) -> Reply:
    page, size = int(seen.arg("page_no") or 1), int(seen.arg("page_size") or 40)
    body = {"total_results": len(orders), "trades": {"trade": orders[(page - 1) * size : page * size]}}
    return Reply({"trades_sold_increment_get_response": body})


def test_a_walk_short_of_the_listings_own_total_is_walked_again(api: FakeApi) -> None:
    """Regression (fault matrix, "updates inside the window"): read from the last page, a listing sorted
    newest first loses an order when another one moves to page 1 mid-walk (the window reaches past the
    platform's "now", so the update lands inside it): the order at the end of page 1 is pushed onto page 2,
    already read. The walk then holds fewer distinct records than the listing's total: it is walked again."""
    orders = [{"tid": f"T{i}", "version": 0} for i in range(6, 0, -1)]  # pages [T6 T5] [T4 T3] [T2 T1]
    calls = {"n": 0}

    def handler(seen: Seen) -> Reply:
        calls["n"] += 1
        if calls["n"] == 3:  # after the probe and page 3: T1 is updated and moves to the top
            moved = orders.pop()
            orders.insert(0, {"tid": moved["tid"], "version": 1})
        return taobao_answer(orders, seen)

    api.handler = handler

    class Taobao(Connector):
        spec = taobao_like_spec(2, record_key="tid")

    connector = Taobao.connect(api.url, {"access_token": "session-xyz"}, retry=FAST)
    pages = list(connector.fetch_orders(T0, T0 + timedelta(hours=1)))
    got = {(r["tid"], r["version"]) for page in pages for r in page}
    assert {o["tid"] for o in orders} == {tid for tid, _ in got}  # T3 came back in the second walk
    assert ("T1", 1) in got
    assert [s.arg("page_no") for s in api.seen] == ["1", "3", "2", "1", "1", "3", "2", "1"]


def test_a_listing_whose_total_stays_out_of_reach_fails_clearly_after_bounded_walks(api: FakeApi) -> None:
    def handler(seen: Seen) -> Reply:  # two orders in two pages of 2, but a total of 3
        trade = [{"tid": f"T{seen.arg('page_no')}"}]
        return Reply({"trades_sold_increment_get_response": {"total_results": 3, "trades": {"trade": trade}}})

    api.handler = handler

    class Taobao(Connector):
        spec = taobao_like_spec(2, record_key="tid")

    connector = Taobao.connect(api.url, {"access_token": "session-xyz"}, retry=FAST)
    with pytest.raises(TransientError, match="holds 3 records by its own total, but only 2 came back"):
        list(connector.fetch_orders(T0, T0 + timedelta(hours=1)))
    assert len(api.seen) == FAST.max_attempts * 3  # each walk: the probe, page 2, page 1


def test_a_page_served_again_in_place_of_the_next_is_asked_for_again(api: FakeApi) -> None:
    """Regression (fault matrix, "duplicated pages"): a lagging cache answers page 2 with page 1's records.
    Taken as page 2, it hid page 2's orders; now page 2 is asked for again."""
    records = [{"id": i} for i in range(1, 6)]
    lagging = {"left": 1}

    def handler(seen: Seen) -> Reply:
        page, size = int(seen.arg("page") or 1), int(seen.arg("per_page") or 10)
        if page == 2 and lagging["left"]:
            lagging["left"] -= 1
            page = 1
        pages = -(-len(records) // size)
        return Reply(records[(page - 1) * size : page * size], headers={"X-WP-TotalPages": str(pages)})

    api.handler = handler

    connector = woo_connector(api)
    assert [r for page in connector.fetch_orders(T0, T0 + timedelta(days=1)) for r in page] == records
    assert [s.arg("page") for s in api.seen] == ["1", "2", "2", "3"]
    assert connector.client.stats.retries == 1


def wechat_pages(ids: list[str], replay: dict[str, int]) -> Callable[[Seen], Reply]:
    """WeChat-like ids and next_key; ``replay[key]`` times, ``key`` gets the answer to the key before it."""
    previous: dict[str, str] = {}

    def handler(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            return Reply({"access_token": "wx-access-abcdef", "expires_in": 7200})
        key = str(seen.body.get("next_key") or "")
        if replay.get(key):
            replay[key] -= 1
            key = previous[key]
        start, size = int(key or 0), seen.body["page_size"]
        previous[str(start + size)] = key
        return Reply(
            {
                "errcode": 0,
                "errmsg": "ok",
                "order_id_list": ids[start : start + size],
                "next_key": str(start + size),
                "has_more": start + size < len(ids),
            }
        )

    return handler


def test_a_cursor_answered_with_the_previous_cursors_page_is_asked_again_not_refused(api: FakeApi) -> None:
    """Regression (fault matrix, "duplicated pages"): next_key K answered as the key before it (its ids and
    K again) made the paginator refuse a cursor it had already given, failing every run it met."""
    ids = [f"37046123545597{i:05d}" for i in range(5)]
    api.handler = wechat_pages(ids, {"2": 1, "4": 2})
    connector = WeChat.connect(api.url, {"appid": "wx-app-1", "secret": "app-secret-777"}, retry=FAST)
    assert [i for page in connector.fetch_orders(T0, T0 + timedelta(days=1)) for i in page] == ids
    listed = [s.body.get("next_key", "") for s in api.seen if s.path != "/cgi-bin/token"]
    assert listed == ["", "2", "2", "4", "4", "4"]


def test_a_page_served_again_and_again_fails_as_transient_after_bounded_asks(api: FakeApi) -> None:
    ids = [f"37046123545597{i:05d}" for i in range(5)]
    api.handler = wechat_pages(ids, {"2": 100})
    connector = WeChat.connect(api.url, {"appid": "wx-app-1", "secret": "app-secret-777"}, retry=FAST)
    with pytest.raises(TransientError, match="page served again"):
        list(connector.fetch_orders(T0, T0 + timedelta(days=1)))
    listed = [s.body.get("next_key", "") for s in api.seen if s.path != "/cgi-bin/token"]
    assert listed == ["", *["2"] * FAST.max_attempts]


def wechat_like_spec() -> PlatformSpec:
    """WeChat Channels: token from cgi-bin/token, POST JSON with ?access_token=, errcode in HTTP-200 bodies,
    next_key + has_more paging in the body, update_time_range of at most 7 days."""
    return PlatformSpec(
        name="wechat-like",
        auth=TokenEndpointAuth(
            TokenEndpoint(
                "/cgi-bin/token",
                params={"grant_type": "client_credential", "appid": Cred("appid"), "secret": Cred("secret")},
            )
        ),
        errors=ErrorPolicy(
            shapes=(ErrorShape(code_path="errcode", message_path="errmsg"),),
            rate_limit=RateLimitSignal(body_codes=frozenset({"45011"}), quota_codes=frozenset({"45009"})),
            token_expired_codes=frozenset({"40001", "42001"}),
            transient_codes=frozenset({"-1"}),
        ),
        endpoints={
            "orders": Endpoint(
                "/channels/ec/order/list/get",
                method="POST",
                json={},
                idempotent=True,
                records_path="order_id_list",
                missing_records_mean_empty=True,
                paginator=CursorPaginator(
                    "next_key", "next_key", "has_more", "page_size", 2, location="body"
                ),
                window=WindowSpec(
                    "start_time",
                    "end_time",
                    EPOCH_SECONDS,
                    max_span=timedelta(days=7),
                    location="body",
                    container="update_time_range",
                ),
            ),
            "order": Endpoint(
                "/channels/ec/order/get", method="POST", json={}, idempotent=True, records_path="order"
            ),
        },
    )


class WeChat(Connector):
    spec = wechat_like_spec()


class WeChatWithDetails(WeChat):
    """The hook WeChat really needs: the listing gives ids, each order is fetched by id."""

    def records_from_page(self, endpoint_name: str, records: list[Any]) -> list[Any]:
        if endpoint_name != "orders":
            return records
        return [self.get("order", body={"order_id": order_id}) for order_id in records]


def test_a_hook_turns_listed_ids_into_full_orders_page_by_page(api: FakeApi) -> None:
    ids = ["3704612354559743232", "3704849110714209536", "3704849110714209999"]

    def handler(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            return Reply({"access_token": "wx-tok-hook", "expires_in": 7200})
        if seen.path.endswith("/order/get"):
            return Reply(
                {"errcode": 0, "errmsg": "ok", "order": {"order_id": seen.body["order_id"], "status": 20}}
            )
        start = int(seen.body.get("next_key") or 0)
        chunk = ids[start : start + 2]
        return Reply(
            {"errcode": 0, "order_id_list": chunk, "next_key": str(start + 2), "has_more": start + 2 < 3}
        )

    api.handler = handler
    connector = WeChatWithDetails.connect(api.url, {"appid": "a", "secret": "app-secret-777"}, retry=FAST)
    pages = connector.fetch_orders(T0, T0 + timedelta(days=1))
    first = next(pages)
    assert first == [{"order_id": ids[0], "status": 20}, {"order_id": ids[1], "status": 20}]
    assert [s.path for s in api.seen].count("/channels/ec/order/get") == 2  # only the first page's orders
    assert [o["order_id"] for page in pages for o in page] == ids[2:]
    assert all(isinstance(s.body["order_id"], str) for s in api.seen if s.path.endswith("/order/get"))


def test_cursor_in_body_token_refresh_on_expiry_code_and_throttle_codes(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"37046123545597{i:05d}" for i in range(5)]
    issued: list[str] = []
    throttled_once = {"done": False}

    def handler(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            issued.append(f"wx-access-{len(issued)}-abcdef")
            return Reply({"access_token": issued[-1], "expires_in": 7200})
        token = seen.arg("access_token")
        if token == issued[0]:  # the first token "expires" on its first use
            return Reply({"errcode": 42001, "errmsg": f"access_token expired rid: {token}"})
        if not throttled_once["done"]:
            throttled_once["done"] = True
            return Reply({"errcode": 45011, "errmsg": "api minute-quota reach limit"})
        start = int(seen.body.get("next_key") or 0)
        size = seen.body["page_size"]
        assert (
            seen.body["update_time_range"]["end_time"] - seen.body["update_time_range"]["start_time"]
            <= 7 * 86400
        )
        chunk = ids[start : start + size]
        more = start + size < len(ids)
        return Reply(
            {
                "errcode": 0,
                "errmsg": "ok",
                "order_id_list": chunk,
                "next_key": str(start + size),
                "has_more": more,
            }
        )

    api.handler = handler
    caplog.set_level(logging.DEBUG)
    connector = WeChat.connect(api.url, {"appid": "wx-app-1", "secret": "app-secret-777"}, retry=FAST)
    pages = list(connector.fetch_orders(T0, T0 + timedelta(days=3)))
    assert [i for page in pages for i in page] == ids
    assert len(issued) == 2  # refreshed exactly once
    assert connector.client.stats.token_refreshes == 1
    assert connector.client.stats.rate_limited == 1
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "urllib3" in {r.name.split(".")[0] for r in caplog.records}  # the wire log was captured ...
    for secret in [*issued, "app-secret-777"]:
        assert secret not in logged  # ... with every token and the app secret masked


def test_a_token_refused_again_after_one_refresh_is_an_auth_error(api: FakeApi) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            return Reply({"access_token": f"wx-tok-{len(api.seen)}-zzzz", "expires_in": 7200})
        return Reply({"errcode": 40001, "errmsg": "invalid credential"})

    api.handler = handler
    connector = WeChat.connect(api.url, {"appid": "wx-app-1", "secret": "app-secret-777"}, retry=FAST)
    with pytest.raises(AuthError, match="after a refresh") as caught:
        list(connector.fetch_orders(T0, T0 + timedelta(hours=1)))
    assert caught.value.code == "40001"
    assert [s.path for s in api.seen].count("/cgi-bin/token") == 2
    assert "wx-tok-" not in str(caught.value)


def test_windows_longer_than_the_platform_limit_are_split(api: FakeApi) -> None:
    spans: list[tuple[int, int]] = []

    def handler(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            return Reply({"access_token": "wx-tok-split", "expires_in": 7200})
        rng = seen.body["update_time_range"]
        spans.append((rng["start_time"], rng["end_time"]))
        return Reply({"errcode": 0, "errmsg": "ok", "order_id_list": [], "has_more": False})

    api.handler = handler
    connector = WeChat.connect(api.url, {"appid": "a", "secret": "app-secret-777"}, retry=FAST)
    assert list(connector.fetch_orders(T0, T0 + timedelta(days=16))) == []  # empty pages are not yielded
    assert len(spans) == 3
    assert spans[0][0] == int(T0.timestamp()) and spans[-1][1] == int((T0 + timedelta(days=16)).timestamp())
    assert all(end - start <= 7 * 86400 for start, end in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(2))


def test_daily_quota_code_fails_at_once(api: FakeApi) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path == "/cgi-bin/token":
            return Reply({"access_token": "wx-tok-quota", "expires_in": 7200})
        return Reply({"errcode": 45009, "errmsg": "reach max api daily quota limit"})

    api.handler = handler
    connector = WeChat.connect(api.url, {"appid": "a", "secret": "app-secret-777"}, retry=FAST)
    with pytest.raises(QuotaExhausted, match="daily quota"):
        list(connector.fetch_orders(T0, T0 + timedelta(hours=1)))
    assert len(api.seen) == 2  # token + one call: waiting cannot help


# --- retries, rate limits, timeouts, malformed bodies ---------------------------------------------------


def test_server_errors_are_retried_with_backoff_then_succeed(api: FakeApi) -> None:
    api.handler = lambda seen: (
        Reply({"ok": True}) if len(api.seen) > 2 else Reply(b"oops", status=503, raw=b"oops")
    )
    sleeps = SleepLog()
    client = client_for(api, sleep=sleeps)
    assert client.request("GET", "/x").body == {"ok": True}
    assert len(api.seen) == 3 and client.stats.server_errors == 2 and client.stats.retries == 2
    assert len(sleeps.calls) == 2 and all(
        0 < s <= FAST.backoff_max + FAST.backoff_jitter for s in sleeps.calls
    )


def test_server_errors_give_up_after_the_attempt_budget(api: FakeApi) -> None:
    api.handler = lambda seen: Reply(
        {"errors": "Internal Server Error"}, status=500, headers={"X-Request-Id": "r-5"}
    )
    with pytest.raises(TransientError) as caught:
        client_for(api).request("GET", "/x")
    assert len(api.seen) == FAST.max_attempts
    assert caught.value.status == 500 and caught.value.request_id == "r-5"


def test_429_sleeps_for_the_fractional_retry_after_then_retries(api: FakeApi) -> None:
    api.handler = lambda seen: (
        Reply({"errors": "Exceeded 2 calls per second"}, status=429, headers={"Retry-After": "0.25"})
        if len(api.seen) == 1
        else Reply({"ok": 1})
    )
    sleeps = SleepLog()
    started = time.monotonic()
    client = client_for(api, sleep=sleeps)
    assert client.request("GET", "/x").body == {"ok": 1}
    assert sleeps.calls == [0.25]
    assert time.monotonic() - started >= 0.25
    assert client.stats.rate_limited == 1


def test_a_429_storm_longer_than_the_budget_surfaces_as_rate_limited(api: FakeApi) -> None:
    api.handler = lambda seen: Reply({"errors": "slow down"}, status=429, headers={"Retry-After": "0.01"})
    with pytest.raises(RateLimited) as caught:
        client_for(api).request("GET", "/x")
    assert caught.value.retry_after == 0.01
    assert len(api.seen) == FAST.rate_limit_attempts


def test_read_timeouts_are_retried(api: FakeApi) -> None:
    api.handler = lambda seen: Reply({"late": True}, delay=2.0) if len(api.seen) == 1 else Reply({"ok": 1})
    client = client_for(api, timeout=(1.0, 1.0))  # well above a loaded machine's answer times
    assert client.request("GET", "/x").body == {"ok": 1}
    assert client.stats.network_errors == 1 and len(api.seen) == 2


def test_a_push_is_not_replayed_after_a_read_timeout_but_a_read_is(api: FakeApi) -> None:
    """A read timeout leaves it open whether the platform acted (the fault matrix's hangs act, then answer
    late): a non-idempotent push is not replayed blind, a read (even a POST one) is."""
    api.handler = lambda seen: Reply({"late": True}, delay=2.0)
    client = client_for(api, timeout=(1.0, 1.0))
    with pytest.raises(TransientError, match="read timeout"):
        client.request("POST", "/fulfillments.json", json={"fulfillment": {}})
    assert len(api.seen) == 1
    api.seen.clear()
    api.handler = lambda seen: Reply({"late": True}, delay=2.0) if len(api.seen) == 1 else Reply({"ok": 1})
    assert client.request("POST", "/order/list/get", json={}, idempotent=True).body == {"ok": 1}
    assert len(api.seen) == 2


def test_connection_refused_is_transient_and_bounded() -> None:
    with FakeApi() as gone:
        url = gone.url
    client = HttpClient(url, retry=FAST, timeout=(0.5, 0.5))
    with pytest.raises(TransientError, match="connection error"):
        client.request("GET", "/x")
    assert client.stats.network_errors == FAST.max_attempts


@pytest.mark.parametrize(
    "bad",
    [
        Reply(raw=b'{"orders": [{"id": 1}, {"id"', truncate=True),  # cut off mid-body
        Reply(raw=b"<html>502 Bad Gateway</html>", headers={"Content-Type": "text/html"}),  # not JSON
    ],
    ids=["truncated", "html"],
)
def test_malformed_bodies_are_retried_then_surface_clearly(api: FakeApi, bad: Reply) -> None:
    api.handler = lambda seen: bad
    client = client_for(api)
    with pytest.raises(MalformedResponse) as caught:
        client.request("GET", "/orders.json")
    assert len(api.seen) == FAST.malformed_attempts
    assert "/orders.json" in str(caught.value)


def test_one_malformed_body_then_a_good_one_succeeds(api: FakeApi) -> None:
    api.handler = lambda seen: (
        Reply(raw=b'{"a": [1, 2', truncate=True) if len(api.seen) == 1 else Reply({"a": [1]})
    )
    client = client_for(api)
    assert client.request("GET", "/x").body == {"a": [1]}
    assert client.stats.malformed == 1


def test_client_errors_are_typed_with_status_body_and_request_id(api: FakeApi) -> None:
    api.handler = lambda seen: Reply(
        {"errors": {"updated_at_min": ["is invalid"]}}, status=422, headers={"X-Request-Id": "req-422"}
    )
    with pytest.raises(ApiError) as caught:
        client_for(api).request("GET", "/x")
    error = caught.value
    assert not isinstance(error, AuthError | TransientError)
    assert error.status == 422 and error.request_id == "req-422" and "is invalid" in error.message
    assert len(api.seen) == 1


def test_a_push_is_not_replayed_after_a_server_error_but_is_after_a_429(api: FakeApi) -> None:
    api.handler = lambda seen: Reply({"errors": "boom"}, status=502)
    client = client_for(api)
    with pytest.raises(TransientError):
        client.request("POST", "/fulfillments.json", json={"fulfillment": {}})
    assert len(api.seen) == 1  # it may have been applied: the caller reconciles instead of replaying

    api.seen.clear()
    api.handler = lambda seen: (
        Reply({"errors": "slow"}, status=429, headers={"Retry-After": "0.01"})
        if len(api.seen) == 1
        else Reply({})
    )
    client.request("POST", "/fulfillments.json", json={"fulfillment": {}})
    assert len(api.seen) == 2  # a throttled request was not applied: safe to replay


def test_redirects_are_not_followed_with_credentials(api: FakeApi) -> None:
    api.handler = lambda seen: Reply({}, status=301, headers={"Location": "http://elsewhere.test/admin"})
    client = client_for(api, auth=HeaderToken("X-Token").bind({"access_token": "tok-redirect-1"}))
    with pytest.raises(ApiError, match="redirect"):
        client.request("GET", "/x")
    assert len(api.seen) == 1


def test_error_pickles_with_its_fields() -> None:
    error = RateLimited("rate limited", retry_after=1.5, platform="p", status=429, request_id="r1")
    clone = pickle.loads(pickle.dumps(error))
    assert isinstance(clone, RateLimited) and clone.retry_after == 1.5 and clone.status == 429
    assert isinstance(clone, ConnectorError) and str(clone) == str(error)


# --- client-side rate limiting --------------------------------------------------------------------------


class LeakyBucketServer:
    """Server side of a Shopify-style bucket: 429 when full, ``used/size`` header on every answer."""

    def __init__(self, size: int, leak_per_second: float) -> None:
        self.size, self.leak = size, leak_per_second
        self.level, self.at = 0.0, time.monotonic()
        self.lock = threading.Lock()
        self.rejected = 0

    def __call__(self, seen: Seen) -> Reply:
        with self.lock:
            now = time.monotonic()
            self.level = max(0.0, self.level - (now - self.at) * self.leak)
            self.at = now
            if self.level + 1 > self.size:
                self.rejected += 1
                return Reply({"errors": "Exceeded"}, status=429, headers={"Retry-After": "0.05"})
            self.level += 1
            return Reply({"ok": 1}, headers={"X-Call-Limit": f"{int(self.level + 0.999)}/{self.size}"})


def test_leaky_bucket_throttle_keeps_a_burst_under_the_servers_bucket(api: FakeApi) -> None:
    bucket = LeakyBucketServer(size=6, leak_per_second=20.0)
    api.handler = bucket
    throttle = LeakyBucketThrottle("X-Call-Limit", leak_per_second=20.0)
    client = client_for(api, throttle=throttle)
    for _ in range(15):
        client.request("GET", "/x")
    assert bucket.rejected == 0 and client.stats.rate_limited == 0
    assert throttle.size == 6 and throttle.peak_used <= 5  # one slot of headroom kept
    assert client.stats.throttle_waits > 0  # it did have to slow down


def test_without_the_throttle_the_same_burst_is_rejected(api: FakeApi) -> None:
    bucket = LeakyBucketServer(size=6, leak_per_second=20.0)
    api.handler = bucket
    client = client_for(api)
    for _ in range(10):
        try:
            client.request("GET", "/x")
        except RateLimited:
            break
    assert bucket.rejected > 0  # the control: the server really enforces the bucket


def test_leaky_bucket_math_with_a_fake_clock() -> None:
    now = [100.0]
    throttle = LeakyBucketThrottle("H", leak_per_second=2.0, headroom=2, clock=lambda: now[0])
    assert throttle.before_request() == 0.0  # nothing known yet
    throttle.observe({"H": "37/40"})
    # level 37, ceiling 38: one more call fits only after draining to 37 -> 0s; the next needs 0.5s
    assert throttle.before_request() == 0.0
    assert throttle.before_request() == pytest.approx(0.5)
    now[0] += 10.0  # 20 slots drained
    throttle.observe({"H": "10/40"})
    assert throttle.before_request() == 0.0
    throttle.observe({"H": "garbage"})  # unreadable headers are ignored, not fatal
    assert throttle.size == 40


def test_request_rate_throttle_spaces_calls_evenly() -> None:
    now = [0.0]
    throttle = RequestRateThrottle(per_second=4.0, clock=lambda: now[0])
    waits = [throttle.before_request() for _ in range(3)]
    assert waits == [0.0, 0.25, 0.5]
    now[0] = 10.0
    assert throttle.before_request() == 0.0
