"""The webhook receiver and its durable inbox, against real Postgres and the Shopify sandbox over HTTP.

A verified delivery is stored before its 200 and its order lands once, through the sync's own prepare and
ingest; a forged, unsigned or oversized delivery stores nothing; a redelivery does nothing; a receiver killed
between inbox and apply loses nothing (the sweep lands it); a failed fetch is retried later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config
from channelhub.webhook_apply import apply_pending, sweep_inbox
from channelhub.webhooks import create_receiver
from connectors.auth import Secret
from connectors.webhooks import MAX_BODY_BYTES
from sandbox.clock import Clock
from sandbox.server import run_sandbox

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CODE = "hook_shop"
WEBHOOK_SECRET = "whsec-test-4e1f"  # the app's client secret the deliveries are signed with


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "shopify", seed=11, start=NOW - timedelta(hours=6), interval=60, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


@pytest.fixture(scope="module")
def hub(engine, shop, tmp_path_factory):
    config_file, config = write_hub_config(
        tmp_path_factory.mktemp("hooks"), CODE, location="WH-HOOK", overlap_minutes=0
    )
    register_config(engine, config)
    seed_from_catalog(engine, config.channel(CODE), shop.world.catalog)
    return config_file, config


class Keys:
    """The channel's credentials as its Airflow connection would give them; the token can be broken."""

    def __init__(self, shop: Any) -> None:
        self.shop, self.token = shop, shop.access_token

    def __call__(self, channel: Any) -> ChannelCredentials:
        extra = {"webhook_secret": WEBHOOK_SECRET}
        return ChannelCredentials(CODE, self.shop.base_url, secret=Secret(self.token), extra=extra)


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """Shopify's signature, computed here independently of the hub's code."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def delivery(body: bytes, topic: str, *, event_id: str | None = None, signature: str | None = "") -> dict:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Shop-Domain": "hook-shop.myshopify.com",
    }
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature or sign(body)
    return headers


def orders_in_window(shop: Any, count: int, skip: int) -> list[tuple[str, bytes]]:
    """``count`` sandbox orders (id, body as its order API renders it), a different slice per test."""
    states = list(shop.world.updated_between(NOW - timedelta(hours=5), NOW))[skip : skip + count]
    renderer = shop.app.state.renderer
    return [(str(renderer.order_id(s.index)), json.dumps(renderer.render(s)).encode()) for s in states]


def landed(engine, external_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM orders o JOIN channels c ON c.id = o.channel_id "
                "WHERE c.code = :c AND o.external_id = :e"
            ),
            {"c": CODE, "e": external_id},
        ).scalar_one()


def inbox(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.id, event_id, topic, order_external_id, status, attempts, last_error, headers "
                "FROM webhook_inbox i JOIN channels c ON c.id = i.channel_id WHERE c.code = :c ORDER BY i.id"
            ),
            {"c": CODE},
        )
        return [dict(r._mapping) for r in rows]


def table_counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT count(*) FROM webhook_inbox")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM orders")).scalar_one(),
        )


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture()
def receiver(engine, shop, hub):
    calls: list[dict] = []
    keys = Keys(shop)
    app = create_receiver(engine, hub[1], credentials=keys, stock_changed=calls.append, sweep_every=3600)
    with TestClient(app) as client:  # the lifespan starts the apply worker
        yield client, calls, keys


def test_signed_order_lands_once_and_stock_asset_is_updated_once(engine, receiver, shop):
    client, calls, _ = receiver
    (order_id, body), (second_id, second) = orders_in_window(shop, 2, skip=0)
    answer = client.post(f"/webhooks/{CODE}", content=body, headers=delivery(body, "orders/create"))
    assert answer.status_code == 200
    again = client.post(f"/webhooks/{CODE}", content=second, headers=delivery(second, "orders/updated"))
    assert again.status_code == 200
    wait_for(lambda: landed(engine, order_id) and landed(engine, second_id))
    rows = [r for r in inbox(engine) if r["order_external_id"] in (order_id, second_id)]
    assert [r["status"] for r in rows] == ["applied", "applied"]
    with engine.connect() as conn:  # the buyer's data lives on only masked, in raw_payloads
        kept = conn.execute(
            text("SELECT raw_body, order_payload FROM webhook_inbox WHERE id = ANY(:ids)"),
            {"ids": [r["id"] for r in rows]},
        ).all()
    assert kept == [(b"", None), (b"", None)]
    assert "x-shopify-topic" in rows[0]["headers"] and "X-Shopify-Topic" not in rows[0]["headers"]
    wait_for(lambda: calls)
    assert len(calls) == 1 and calls[0]["channels"] == [CODE] and calls[0]["new"] == 2  # coalesced


def test_forged_missing_and_oversized_deliveries_store_nothing(engine, receiver, shop):
    client, calls, _ = receiver
    ((_, body),) = orders_in_window(shop, 1, skip=5)
    before = table_counts(engine)
    forged = client.post(
        f"/webhooks/{CODE}",
        content=body,
        headers=delivery(body, "orders/create", signature=sign(body, "guess")),
    )
    unsigned = client.post(
        f"/webhooks/{CODE}", content=body, headers=delivery(body, "orders/create", signature=None)
    )
    tampered = client.post(f"/webhooks/{CODE}", content=body + b" ", headers=delivery(body, "orders/create"))
    huge = b"{" + b" " * MAX_BODY_BYTES + b"}"
    too_large = client.post(f"/webhooks/{CODE}", content=huge, headers=delivery(huge, "orders/create"))
    assert [forged.status_code, unsigned.status_code, tampered.status_code] == [401, 401, 401]
    assert too_large.status_code == 413
    assert (
        client.post("/webhooks/nobody", content=body, headers=delivery(body, "orders/create")).status_code
        == 404
    )
    time.sleep(0.3)
    assert table_counts(engine) == before and calls == []


def test_duplicate_delivery_is_one_inbox_row_and_one_effect(engine, receiver, shop):
    client, calls, _ = receiver
    ((order_id, body),) = orders_in_window(shop, 1, skip=10)
    headers = delivery(body, "orders/create", event_id="dup-event-1")
    assert client.post(f"/webhooks/{CODE}", content=body, headers=headers).status_code == 200
    wait_for(lambda: landed(engine, order_id))
    wait_for(lambda: calls)
    assert client.post(f"/webhooks/{CODE}", content=body, headers=headers).status_code == 200
    time.sleep(0.5)
    assert [r["event_id"] for r in inbox(engine)].count("dup-event-1") == 1
    assert landed(engine, order_id) == 1 and len(calls) == 1


def test_refund_event_fetches_the_order_and_a_failed_fetch_is_retried_later(engine, receiver, shop, hub):
    client, _, keys = receiver
    ((order_id, _),) = orders_in_window(shop, 1, skip=15)
    body = json.dumps({"id": 990001, "order_id": int(order_id)}).encode()
    keys.token = "shpat_wrong"  # the platform refuses the fetch
    assert (
        client.post(f"/webhooks/{CODE}", content=body, headers=delivery(body, "refunds/create")).status_code
        == 200
    )
    row = wait_for(
        lambda: next((r for r in inbox(engine) if r["order_external_id"] == order_id and r["attempts"]), None)
    )
    assert row["status"] == "pending" and row["last_error"] and "shpat_wrong" not in row["last_error"]
    assert landed(engine, order_id) == 0

    keys.token = shop.access_token
    with engine.begin() as conn:  # the backoff is over
        conn.execute(text("UPDATE webhook_inbox SET next_attempt_at = now() WHERE id = :i"), {"i": row["id"]})
    report = sweep_inbox(engine, hub[1], older_than=timedelta(0), credentials=keys)
    assert report.applied == 1 and landed(engine, order_id) == 1
    assert next(r for r in inbox(engine) if r["id"] == row["id"])["status"] == "applied"


def test_event_without_order_is_no_order(engine, receiver):
    client, _, _ = receiver
    body = b'{"id": 1, "name": "hook-shop"}'
    assert (
        client.post(f"/webhooks/{CODE}", content=body, headers=delivery(body, "shop/update")).status_code
        == 200
    )
    wait_for(lambda: any(r["topic"] == "shop/update" and r["status"] == "no_order" for r in inbox(engine)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_process(args: list[str], env: dict[str, str], **kwargs: Any) -> Any:
    """``channelhub ARGS`` in a process of its own."""
    code = f"import sys; from channelhub.cli import main; sys.exit(main({args!r}))"
    return subprocess.Popen([sys.executable, "-c", code], env=env, **kwargs)


def test_receiver_killed_after_the_inbox_write_loses_nothing(engine, database_url, shop, hub):
    config_file, _ = hub
    ((order_id, body),) = orders_in_window(shop, 1, skip=20)
    connection = {
        "conn_type": "http",
        "host": shop.base_url,
        "password": shop.access_token,
        "extra": {"webhook_secret": WEBHOOK_SECRET},
    }
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_CHANNELS_CONFIG": str(config_file),
        f"AIRFLOW_CONN_{CODE.upper()}": json.dumps(connection),
    }
    port = free_port()
    serve = hub_process(
        ["webhooks", "serve", "--no-apply", "--port", str(port)], env, stdout=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks/{CODE}"
        wait_for(lambda: _answers(url), timeout=30)
        answer = requests.post(url, data=body, headers=delivery(body, "orders/create"), timeout=10)
        assert answer.status_code == 200
        assert [r["status"] for r in inbox(engine) if r["order_external_id"] == order_id] == ["pending"]
    finally:
        serve.send_signal(signal.SIGKILL)
        serve.wait(10)
    assert landed(engine, order_id) == 0

    sweep = hub_process(["webhooks", "sweep"], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 0, err[-2000:]
    assert "applied=1" in out
    assert landed(engine, order_id) == 1
    assert shop.access_token not in out + err and WEBHOOK_SECRET not in out + err


def _answers(url: str) -> bool:
    try:
        return requests.get(url.rsplit("/", 1)[0] + "/nobody", timeout=1).status_code == 404
    except requests.ConnectionError:
        return False


def test_apply_pending_takes_nothing_another_applier_holds(engine, hub, shop):
    """Two appliers never take one row: a row locked by one is skipped by the other."""
    from warehouse import webhook_inbox

    with engine.begin() as conn:
        ids = webhook_inbox.store_events(
            conn,
            CODE,
            [webhook_inbox.InboxEvent("lock-1", "shop/update", None, None)],
            raw_body=b"{}",
            headers={"Authorization": "Bearer x", "X-Shopify-Topic": "shop/update"},
            received_at=datetime.now(UTC),
        )
    with engine.begin() as holder:
        assert [r.id for r in webhook_inbox.claim_pending(holder, ids=ids)] == ids
        other = apply_pending(engine, hub[1], ids=ids, credentials=Keys(shop))
        assert other.claimed == 0
    row = next(r for r in inbox(engine) if r["event_id"] == "lock-1")
    assert "authorization" not in row["headers"] and row["status"] == "pending"


def test_mounted_in_another_app_without_its_lifespan_the_receiver_stores_and_applies(
    engine, database_url, shop, hub, monkeypatch
):
    """The Airflow plugin's way: mounted under a prefix in an app that runs no lifespan of the receiver's,
    built on the first request from the environment (warehouse URL, channels config, Airflow connection)."""
    from fastapi import FastAPI

    from channelhub.webhooks import lazy_receiver

    config_file, _ = hub
    connection = {"conn_type": "http", "host": shop.base_url, "password": shop.access_token,
                  "extra": {"webhook_secret": WEBHOOK_SECRET}}  # fmt: skip
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CODE.upper()}", json.dumps(connection))
    host = FastAPI()
    mounted = lazy_receiver()
    host.mount("/channelhub-webhooks", mounted)
    ((order_id, body),) = orders_in_window(shop, 1, skip=25)
    client = TestClient(host)
    answer = client.post(
        f"/channelhub-webhooks/webhooks/{CODE}", content=body, headers=delivery(body, "orders/create")
    )
    assert answer.status_code == 200
    wait_for(lambda: landed(engine, order_id))
    mounted.built[0].state.worker.stop()  # no lifespan stops it here (the API server's process ends it)


def test_channel_without_its_connection_answers_503_and_stores_nothing(engine, shop, hub):
    from channelhub.credentials import CredentialsError

    def missing(channel: Any) -> ChannelCredentials:
        raise CredentialsError(f"Airflow connection {channel.conn_id!r} is not defined")

    ((_, body),) = orders_in_window(shop, 1, skip=30)
    before = table_counts(engine)
    client = TestClient(create_receiver(engine, hub[1], credentials=missing, apply=False))
    answer = client.post(f"/webhooks/{CODE}", content=body, headers=delivery(body, "orders/create"))
    assert answer.status_code == 503 and table_counts(engine) == before
