"""The sandboxes' signed webhook deliveries (``sandbox.webhooks``, each ``sandbox/<platform>/webhooks.py``),
checked by a receiver in the test with its own implementation of every platform's signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from woo_auth import WooOAuth

from platforms.registry import PLATFORM_NAMES
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox, sandbox_connection

PUSHING = [name for name in PLATFORM_NAMES if find_spec(f"sandbox.{name}.webhooks") is not None]
NOW = datetime.now(UTC).replace(microsecond=0)
SECRET = "sandbox-webhook-secret"
WOO_SECRET = "whsec-woo"
FAST = 0.0001  # webhook_retry_scale: Shopify's 4 hours in 1.4 s
ACKS = {"wechat_channels": b"success", "youzan": b'{"code":0,"msg":"success"}'}
ACKS["douyin"] = ACKS["youzan"]


@dataclass
class Received:
    method: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Receiver:
    """A plain http.server that records every request and answers the platform's acknowledgement, or 500
    while ``failing``; a GET is WeChat's URL check, answered with ``echostr`` when its signature is right."""

    ack: bytes
    token: str = ""
    failing: bool = False
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def wait_for(self, count: int, timeout: float = 8.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posts = [r for r in self.requests if r.method == "POST"]
            if len(posts) >= count:
                return posts
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.requests)} requests arrived, wanted {count}")


@contextmanager
def receiver(ack: bytes, token: str = "") -> Iterator[Receiver]:
    state = Receiver(ack, token)

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> Received:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            got = Received(
                self.command,
                dict(parse_qsl(parts.query)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            state.requests.append(got)
            return got

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            query = self._record().query
            good = wechat_signature(state.token, query["timestamp"], query["nonce"]) == query["signature"]
            self._answer(200, query["echostr"].encode() if good else b"no")

        def do_POST(self) -> None:
            self._record()
            self._answer(500, b"boom") if state.failing else self._answer(200, state.ack)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# -- independent implementations of each platform's signature ---------------------------------------------


def wechat_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def wechat_keys(sandbox: RunningSandbox) -> dict[str, str]:
    extra = sandbox_connection("wechat_channels", sandbox.base_url, sandbox.access_token)["extra"]
    return {"token": extra["webhook_token"], "encoding_aes_key": extra["webhook_aes_key"]}


def verify(platform: str, sandbox: RunningSandbox, got: Received) -> tuple[str, list[tuple[str, str | None]]]:
    """(the delivery's identity, its (topic, order id)s) when the signature holds; AssertionError if not."""
    h, body = got.headers, got.body
    login = sandbox_connection(platform, sandbox.base_url, sandbox.access_token).get("login", "")
    if platform == "shopify":
        key = "shpss_" + hashlib.sha256(sandbox.access_token.encode()).hexdigest()[:32]
        expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        assert h["x-shopify-hmac-sha256"] == expected, "bad Shopify signature"
        payload = json.loads(body)
        order = payload.get("order_id", payload.get("id"))
        return h["x-shopify-webhook-id"], [(h["x-shopify-topic"], str(order))]
    if platform == "woocommerce":
        expected = base64.b64encode(hmac.new(WOO_SECRET.encode(), body, hashlib.sha256).digest()).decode()
        assert h["x-wc-webhook-signature"] == expected, "bad WooCommerce signature"
        return h["x-wc-webhook-delivery-id"], [(h["x-wc-webhook-topic"], str(json.loads(body)["id"]))]
    if platform == "wechat_channels":
        keys, q = wechat_keys(sandbox), got.query
        encrypted = json.loads(body)["Encrypt"]
        signature = wechat_signature(keys["token"], q["timestamp"], q["nonce"], encrypted)
        assert q["msg_signature"] == signature and q["encrypt_type"] == "aes", "bad WeChat signature"
        key = base64.b64decode(keys["encoding_aes_key"] + "=")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
        plain = plain[: -plain[-1]]
        size = struct.unpack(">I", plain[16:20])[0]
        message, appid = plain[20 : 20 + size], plain[20 + size :].decode()
        assert appid == login
        event = json.loads(message)
        return message.decode(), [(event["Event"], event["order_info"]["order_id"])]
    if platform == "youzan":
        payload = json.loads(body)
        expected = hashlib.md5((login + payload["msg"] + sandbox.access_token).encode()).hexdigest()
        assert payload["sign"] == expected == h["event-sign"], "bad Youzan sign"
        assert h["event-type"] == payload["type"] and h["client-id"] == login
        msg = json.loads(unquote(payload["msg"]))
        assert msg["tid"] == payload["id"]
        return f"{payload['type']}:{payload['id']}:{payload['version']}", [(payload["type"], payload["id"])]
    if platform == "douyin":
        expected = hashlib.md5(login.encode() + body + sandbox.access_token.encode()).hexdigest()
        assert h["event-sign"] == expected and h["sign-method"] == "md5", "bad Douyin sign"
        assert h["app-id"] == login
        items = json.loads(body)
        events = [(item["tag"], str(json.loads(item["data"])["p_id"])) for item in items]
        return ",".join(item["msg_id"] for item in items), events
    raise AssertionError(f"no verifier for {platform}")


def verifies(platform: str, sandbox: RunningSandbox, got: Received) -> bool:
    try:
        verify(platform, sandbox, got)
    except AssertionError:
        return False
    return True


# -- running a sandbox with a subscriber --------------------------------------------------------------------


@contextmanager
def pushing(platform: str, **faults: Any) -> Iterator[tuple[RunningSandbox, Receiver]]:
    start = NOW - timedelta(hours=3)
    with run_sandbox(
        platform, seed=5, access_token=SECRET, start=start, interval=60, clock=Clock.frozen(NOW)
    ) as sandbox:
        assert requests.post(f"{sandbox.base_url}/_sandbox/faults", json=faults, timeout=5).ok
        token = wechat_keys(sandbox)["token"] if platform == "wechat_channels" else ""
        with receiver(ACKS.get(platform, b"ok"), token) as hook:
            subscribe(platform, sandbox, hook.url)
            yield sandbox, hook


def subscribe(platform: str, sandbox: RunningSandbox, url: str) -> None:
    """Through the console route (every topic); WooCommerce's own route needs no other test."""
    body: dict[str, Any] = {"address": url}
    if platform == "woocommerce":
        body["secret"] = WOO_SECRET
    if platform == "wechat_channels":
        body |= wechat_keys(sandbox)
    answer = requests.post(f"{sandbox.base_url}/_sandbox/webhooks", json=body, timeout=10)
    assert answer.status_code == 201, answer.text


def log(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.base_url}/_sandbox/webhooks/deliveries", timeout=5).json()


def wait_until(check: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the tests --------------------------------------------------------------------------------------------


def test_every_platform_that_pushes_over_http_has_a_format() -> None:
    assert set(PUSHING) == {"shopify", "woocommerce", "wechat_channels", "youzan", "douyin"}


@pytest.mark.parametrize("platform", PUSHING)
def test_new_and_changed_orders_arrive_signed(platform: str) -> None:
    with pushing(platform) as (sandbox, hook):
        sandbox.clock.advance(timedelta(minutes=5))
        posts = hook.wait_for(1 if sandbox.app.state.webhooks.format.batches else 3)
        time.sleep(0.3)
        topics = set()
        for got in hook.requests:
            if got.method == "POST":
                _, events = verify(platform, sandbox, got)
                topics |= {topic for topic, order_id in events if order_id}
        assert topics, posts
        entries = log(sandbox)
        assert entries and all(e["outcome"] == "acked" and e["attempt"] == 1 for e in entries)


def test_wechat_check_follows_the_doc_vector_and_a_wrong_answer_is_refused() -> None:
    assert wechat_signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    with run_sandbox("wechat_channels", seed=2, access_token=SECRET, clock=Clock.frozen(NOW)) as sandbox:
        keys = wechat_keys(sandbox)
        with receiver(b"success", token="not-the-token") as hook:
            answer = requests.post(
                f"{sandbox.base_url}/_sandbox/webhooks", json={"address": hook.url, **keys}, timeout=10
            )
            assert answer.status_code == 400 and hook.requests[0].method == "GET"
        bad = {"address": "http://127.0.0.1:9/", "token": "t", "encoding_aes_key": "short"}
        assert requests.post(f"{sandbox.base_url}/_sandbox/webhooks", json=bad, timeout=10).status_code == 400


@pytest.mark.parametrize("platform", PUSHING)
def test_a_failed_delivery_is_retried_on_the_platform_schedule(platform: str) -> None:
    with pushing(platform, webhook_retry_scale=FAST) as (sandbox, hook):
        fmt = sandbox.app.state.webhooks.format
        tries = 1 + len(fmt.retry_delays)
        hook.failing = True
        sandbox.clock.advance(timedelta(minutes=2))
        wait_until(lambda: any(e["attempt"] == tries for e in log(sandbox)))
        time.sleep(0.3)
        by_id: dict[str, list[dict[str, Any]]] = {}
        for entry in log(sandbox):
            by_id.setdefault(entry["id"], []).append(entry)
        first = next(iter(by_id.values()))
        assert [e["attempt"] for e in first] == list(range(1, tries + 1))
        assert all(e["status"] == 500 for e in first)
        for earlier, later, delay in zip(first, first[1:], fmt.retry_delays, strict=False):
            assert later["at"] - earlier["at"] >= delay * FAST * 0.9
        # every try of one delivery carries the same identity (delivery id, event, msg_id)
        ids = Counter(verify(platform, sandbox, got)[0] for got in hook.requests if got.method == "POST")
        assert tries in ids.values()


def test_woocommerce_disables_a_webhook_as_core_does() -> None:
    """No retry; a failure when the failure count is already past 5 disables: the 7th in a row."""
    with pushing("woocommerce") as (sandbox, hook):
        hook.failing = True
        sandbox.clock.advance(timedelta(minutes=20))
        wait_until(lambda: sandbox.app.state.webhooks.subscriptions()[0].status == "disabled")
        time.sleep(0.5)
        entries = log(sandbox)
        assert len(entries) == 7 and all(e["attempt"] == 1 for e in entries)
        assert len([r for r in hook.requests if r.method == "POST"]) == 7


def test_woocommerce_registers_over_rest_and_pings_like_core() -> None:
    with run_sandbox("woocommerce", seed=3, access_token=SECRET, clock=Clock.frozen(NOW)) as sandbox:
        login = sandbox_connection("woocommerce", sandbox.base_url, SECRET)["login"]
        auth, api = WooOAuth(login, SECRET), f"{sandbox.base_url}/wp-json/wc/v3/webhooks"
        with receiver(b"ok") as hook:
            body = {"name": "hub", "topic": "order.created", "delivery_url": hook.url, "secret": WOO_SECRET}
            created = requests.post(api, json=body | {"status": "active"}, auth=auth, timeout=10)
            assert created.status_code == 201, created.text
            hook_id = created.json()["id"]
            assert created.json()["status"] == "active" and created.json()["topic"] == "order.created"
            ping = hook.wait_for(1)[0]
            assert ping.body == f"webhook_id={hook_id}".encode()
            assert "x-wc-webhook-signature" not in ping.headers
            assert [w["id"] for w in requests.get(api, auth=auth, timeout=10).json()] == [hook_id]
            assert requests.delete(f"{api}/{hook_id}", auth=auth, timeout=10).status_code == 501
            gone = requests.delete(f"{api}/{hook_id}", params={"force": "true"}, auth=auth, timeout=10)
            assert gone.status_code == 200
            assert requests.get(api, auth=auth, timeout=10).json() == []


def test_shopify_registers_by_graphql() -> None:
    with run_sandbox("shopify", seed=3, access_token=SECRET, clock=Clock.frozen(NOW)) as sandbox:
        url = f"{sandbox.base_url}/admin/api/2026-10/graphql.json"
        headers = {"X-Shopify-Access-Token": SECRET}

        def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            body = {"query": query, "variables": variables or {}}
            return requests.post(url, json=body, headers=headers, timeout=10).json()

        create = (
            "mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) { "
            "webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) { "
            "webhookSubscription { id topic uri } userErrors { field message } } }"
        )
        made = call(create, {"topic": "ORDERS_CREATE", "sub": {"uri": "http://h/x", "format": "JSON"}})
        node = made["data"]["webhookSubscriptionCreate"]["webhookSubscription"]
        assert node["id"].startswith("gid://shopify/WebhookSubscription/")
        assert node["topic"] == "ORDERS_CREATE"
        assert "errors" in call(create, {"topic": "NOPE", "sub": {"uri": "http://h/x"}})
        listed = call("query { webhookSubscriptions(first: 100) { nodes { id topic uri } } }")
        assert listed["data"]["webhookSubscriptions"]["nodes"] == [node]
        delete = (
            "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId "
            "userErrors { field message } } }"
        )
        deleted = call(delete, {"id": node["id"]})["data"]["webhookSubscriptionDelete"]
        assert deleted == {"deletedWebhookSubscriptionId": node["id"], "userErrors": []}
        assert sandbox.app.state.webhooks.subscriptions() == []


@pytest.mark.parametrize("platform", PUSHING)
def test_fault_knobs_do_what_they_say(platform: str) -> None:
    with pushing(platform, webhook_lost_rate=1.0) as (sandbox, hook):
        faults_url = f"{sandbox.base_url}/_sandbox/faults"
        sandbox.clock.advance(timedelta(minutes=3))
        wait_until(lambda: len(log(sandbox)) >= 1)
        assert all(e["outcome"] == "lost" for e in log(sandbox))
        assert not [r for r in hook.requests if r.method == "POST"]

        def run(step: int, **knobs: Any) -> list[Received]:
            requests.post(faults_url, json={"webhook_lost_rate": 0.0, **knobs}, timeout=5)
            hook.requests.clear()
            sandbox.clock.advance(timedelta(minutes=3 + step))
            time.sleep(1.0)
            return [r for r in hook.requests if r.method == "POST"]

        duplicated = run(1, webhook_duplicate_rate=1.0)
        ids = [verify(platform, sandbox, got)[0] for got in duplicated]
        assert ids and all(ids.count(one) == 2 for one in ids)

        forged = run(2, webhook_duplicate_rate=0.0, webhook_forged_rate=1.0)
        good = [got for got in forged if verifies(platform, sandbox, got)]
        assert good and len(forged) == 2 * len(good)

        reordered = run(3, webhook_forged_rate=0.0, webhook_reorder_rate=1.0)
        time.sleep(1.2)  # a held-back delivery no other overtakes goes out after HOLD_TICKS anyway
        reordered = [r for r in hook.requests if r.method == "POST"]
        assert reordered
        if not sandbox.app.state.webhooks.format.batches:  # Douyin: a tick is one delivery
            order_ids = [verify(platform, sandbox, got)[1][0][1] for got in reordered]
            assert order_ids != sorted(order_ids) or len(set(order_ids)) < len(order_ids)


def test_shopify_tells_the_app_it_was_uninstalled_and_keeps_rest_registration() -> None:
    with pushing("shopify") as (sandbox, hook):
        requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"credentials_revoked": True}, timeout=5)
        wait_until(lambda: any(e["topic"] == "app/uninstalled" for e in log(sandbox)))
        got = next(r for r in hook.wait_for(1) if r.headers["x-shopify-topic"] == "app/uninstalled")
        assert verifies("shopify", sandbox, got) and json.loads(got.body)["domain"].endswith(".myshopify.com")
        requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"credentials_revoked": False}, timeout=5)
        api, headers = f"{sandbox.base_url}/admin/api/2026-10", {"X-Shopify-Access-Token": SECRET}
        made = requests.post(
            f"{api}/webhooks.json",
            json={"webhook": {"topic": "orders/create", "address": hook.url, "format": "json"}},
            headers=headers,
            timeout=10,
        )
        assert made.status_code == 201 and made.json()["webhook"]["topic"] == "orders/create"
        number = made.json()["webhook"]["id"]
        listed = requests.get(f"{api}/webhooks.json", headers=headers, timeout=10).json()["webhooks"]
        assert number in [w["id"] for w in listed]
        assert requests.delete(f"{api}/webhooks/{number}.json", headers=headers, timeout=10).ok
