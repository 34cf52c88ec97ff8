"""The shared token store: one renewal per key however many renew at once, sealed tokens, refusal handling.

The platform-level proofs (20 processes of one WeChat or Youzan channel against a sandbox that revokes a
token when it issues another) live beside each platform's tests; this module checks the store itself on a
real Postgres.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from connectors.auth import Cred
from connectors.http import HttpClient
from connectors.tokens import MemoryTokenStore, TokenEndpoint, TokenEndpointAuth
from warehouse.models import platform_tokens
from warehouse.token_cache import WarehouseTokenStore

ENDPOINT = TokenEndpoint("/token", params={"appid": Cred("appid"), "secret": Cred("secret")})


def test_concurrent_renewals_of_one_key_fetch_once(engine):
    store = WarehouseTokenStore(engine)
    fetched = []

    def fetch() -> tuple[str, float]:
        fetched.append(1)
        time.sleep(0.2)  # a slow token endpoint: every other renewer arrives while this one is fetching
        return f"sealed-{len(fetched)}", time.time() + 3600

    results: list[tuple[str, float]] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.renew("k-concurrent", None, fetch, time.time)))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fetched) == 1
    assert {sealed for sealed, _ in results} == {"sealed-1"}


def test_a_refused_token_is_replaced_once_and_an_expired_one_renewed(engine):
    store = WarehouseTokenStore(engine)
    counter = iter(range(1, 100))

    def fetch() -> tuple[str, float]:
        return f"t{next(counter)}", time.time() + 3600

    first, _ = store.renew("k-refused", None, fetch, time.time)
    assert store.renew("k-refused", None, fetch, time.time)[0] == first  # usable: kept
    second, _ = store.renew("k-refused", first, fetch, time.time)  # refused by the platform: replaced
    assert second == "t2"
    # A second process that also saw t1 refused gets t2, not a third token (which would revoke t2).
    assert store.renew("k-refused", first, fetch, time.time)[0] == second
    later = store.renew("k-refused", None, fetch, lambda: time.time() + 7200)  # t2 expired by then
    assert later[0] == "t3"
    with engine.connect() as conn:
        renewals = conn.execute(
            select(platform_tokens.c.renewals).where(platform_tokens.c.key == "k-refused")
        ).scalar()
    assert renewals == 2


class _TokenEndpoint(ThreadingHTTPServer):
    """A token endpoint on 127.0.0.1 that issues a new token for every request (the store's job is to ask
    rarely); the platforms' own token rules are tested against their sandboxes."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = f"issued-token-{len(server.issued) + 1:04d}"
                server.issued.append(token)
                body = json.dumps({"access_token": token, "expires_in": 7200}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture()
def token_endpoint() -> Iterator[_TokenEndpoint]:
    server = _TokenEndpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(auth, server: _TokenEndpoint) -> HttpClient:
    host, port = server.server_address[:2]
    return HttpClient(f"http://{host}:{port}", platform="example", auth=auth)


def test_connectors_sharing_a_store_share_the_token_and_the_table_never_holds_it(engine, token_endpoint):
    store = WarehouseTokenStore(engine)
    server = token_endpoint
    credentials = {"appid": "wx-app-1", "secret": "app-secret-value-1"}
    first = TokenEndpointAuth(ENDPOINT).bind(credentials, token_store=store)
    second = TokenEndpointAuth(ENDPOINT).bind(credentials, token_store=store)
    first.prepare(_client(first, server))
    second.prepare(_client(second, server))
    assert server.issued == ["issued-token-0001"]
    with engine.connect() as conn:
        sealed = [row.sealed for row in conn.execute(select(platform_tokens.c.sealed, platform_tokens.c.key))]
        keys = list(conn.execute(select(platform_tokens.c.key)).scalars())
    assert sealed and all("issued-token" not in value for value in sealed)
    assert all("wx-app-1" not in key and "app-secret" not in key for key in keys)

    # The first connector's token is refused: it renews once; the second, refused the same token, takes
    # the renewed one from the store instead of fetching (and revoking) again.
    generation = first.generation
    assert first.invalidate(generation)
    first.prepare(_client(first, server))
    assert second.invalidate(second.generation)
    second.prepare(_client(second, server))
    assert server.issued == ["issued-token-0001", "issued-token-0002"]
    assert first.secret_values()[-1] == second.secret_values()[-1] == "issued-token-0002"


def test_other_credentials_never_read_a_stored_token(engine, token_endpoint):
    store = WarehouseTokenStore(engine)
    server = token_endpoint
    mine = TokenEndpointAuth(ENDPOINT).bind({"appid": "wx-a", "secret": "secret-a-1234"}, token_store=store)
    theirs = TokenEndpointAuth(ENDPOINT).bind({"appid": "wx-a", "secret": "secret-b-5678"}, token_store=store)
    mine.prepare(_client(mine, server))
    theirs.prepare(_client(theirs, server))  # another secret: another key, its own token
    assert len(server.issued) == 2
    assert mine.secret_values()[-1] != theirs.secret_values()[-1]


def test_the_default_store_keeps_each_connector_on_its_own(token_endpoint):
    server = token_endpoint
    credentials = {"appid": "wx-b", "secret": "secret-b"}
    one = TokenEndpointAuth(ENDPOINT).bind(credentials)
    two = TokenEndpointAuth(ENDPOINT).bind(credentials)
    one.prepare(_client(one, server))
    two.prepare(_client(two, server))
    assert len(server.issued) == 2
    shared = MemoryTokenStore()
    three = TokenEndpointAuth(ENDPOINT).bind(credentials, token_store=shared)
    four = TokenEndpointAuth(ENDPOINT).bind(credentials, token_store=shared)
    three.prepare(_client(three, server))
    four.prepare(_client(four, server))
    assert len(server.issued) == 3
