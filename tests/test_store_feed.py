"""The live POS feed (issue 21, capability 6): ``POST /stores/v1/documents`` over real HTTP, real Postgres.

Each store authenticates with its own key (its Airflow connection ``pos_<store>``, here an
``AIRFLOW_CONN_*`` variable), posts for its own location only, and each document applies once by the store
files' own rules; a sale lowers every channel's sellable stock and posts a stock asset event to Airflow's
REST API (a tiny HTTP server stands in for Airflow's API server here).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select

from channelhub.airflow_api import StockAssetEvents
from channelhub.assets import WAREHOUSE_STOCK
from channelhub.store_feed import DOCUMENTS_PATH, HEALTH_PATH, create_feed, store_conn_id
from channelhub.webhooks import serving
from connectors.auth import Secret
from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.models import pos_documents, stock_ledger, store_sales
from warehouse.return_refunds import list_returns
from warehouse.stock_policy import StockPolicy, channel_stock
from warehouse.store_imports import import_file
from warehouse.testing import Shop, make_line, make_order

AT = "2026-12-07T10:15:00+08:00"


# -- a stand-in for Airflow's API server ---------------------------------------------------------------------


@dataclass
class FakeAirflowApi:
    """``POST /auth/token``, ``GET /api/v2/assets``, ``POST /api/v2/assets/events``: what StockAssetEvents
    calls; the events posted are kept."""

    events: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events


@pytest.fixture()
def airflow_api() -> Iterator[FakeAirflowApi]:
    api = FakeAirflowApi()

    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.startswith("/api/v2/assets"):
                self._json(200, {"assets": [{"id": 7, "uri": WAREHOUSE_STOCK.uri}]})
            else:
                self._json(404, {})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path == "/auth/token":
                self._json(201, {"access_token": "jwt-for-tests"})
            elif self.path == "/api/v2/assets/events":
                assert self.headers["Authorization"] == "Bearer jwt-for-tests"
                api.events.append(body)
                self._json(200, {"id": len(api.events)})
            else:
                self._json(404, {})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield api
    server.shutdown()
    server.server_close()


# -- a shop with a store, its key, and the feed -------------------------------------------------------------


@dataclass
class Feed:
    shop: Shop
    url: str
    store: str
    key: str

    def post(self, document: dict[str, Any] | bytes, *, store: str | None = None, key: str | None = None):
        headers = {"X-Store-Code": store or self.store, "Authorization": f"Bearer {key or self.key}"}
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers["Content-Type"] = "application/json"
        return requests.post(self.url + DOCUMENTS_PATH, data=data, headers=headers, timeout=30)

    def sale(self, document_id: str, *lines: tuple[str, int], kind: str = "sale", **more: Any) -> dict:
        field_name = "counted_quantity" if kind == "count" else "quantity"
        return {
            "document_id": document_id,
            "type": kind,
            "location": self.store,
            "occurred_at": AT,
            "lines": [
                {"line_no": n, "sku": self.shop.sku(sku), field_name: qty, **more}
                for n, (sku, qty) in enumerate(lines, start=1)
            ],
        }

    def on_hand(self, name: str) -> int:
        with self.shop.engine.connect() as conn:
            return stock.stock_level(conn, self.shop.sku(name), self.store)[0]

    def sellable(self, name: str) -> int:
        with self.shop.engine.connect() as conn:
            listings = channel_stock(conn, self.shop.channel, StockPolicy())
        return next(item.sellable for item in listings if item.sku == self.shop.sku(name))

    def bad_documents(self, reason: str = "bad_pos_document") -> list[dict]:
        with self.shop.engine.connect() as conn:
            found = queue.list_open(conn, reason=reason)
        return [e for e in found if f"pos feed {self.store}:" in e["detail"]]


def add_store(engine: Engine, shop: Shop, monkeypatch: pytest.MonkeyPatch, code: str | None = None) -> tuple:
    store, key = code or f"{shop.prefix}-store", f"key-{uuid.uuid4().hex}"
    with engine.begin() as conn:
        catalog.upsert_location(conn, store, f"store {store}", "store")
    connection = {"conn_type": "generic", "password": key}
    monkeypatch.setenv(f"AIRFLOW_CONN_{store_conn_id(store).upper()}", json.dumps(connection))
    return store, key


@pytest.fixture()
def feed(
    engine: Engine,
    airflow_api: FakeAirflowApi,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Feed]:
    caplog.set_level(logging.DEBUG)
    shop = Shop.create(engine)
    store, key = add_store(engine, shop, monkeypatch)
    for name in ("A", "B"):
        shop.add_sku(name, 5)  # at the shop's warehouse: counts for the channel too
        with engine.begin() as conn:
            catalog.receive_stock(conn, shop.sku(name), store, 10, f"receive:test:{uuid.uuid4().hex}")
    events = StockAssetEvents(airflow_api.url, "admin", Secret("airflow-password"))
    with serving(create_feed(engine, stock_changed=events.stock_changed)) as url:
        yield Feed(shop, url, store, key)
    assert key not in caplog.text, "a store's key was logged"
    assert "airflow-password" not in caplog.text


def ledger_rows(engine: Engine, prefix: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(stock_ledger)
            .where(stock_ledger.c.idempotency_key.like(f"%{prefix}%"))
        ).scalar_one()


# -- sales, and the stock asset event ----------------------------------------------------------------------


def test_a_sale_lowers_on_hand_and_every_channels_sellable_and_posts_a_stock_event(
    feed: Feed, airflow_api: FakeAirflowApi
):
    assert (feed.on_hand("A"), feed.sellable("A")) == (10, 15)
    answer = feed.post(feed.sale("R-1", ("A", 3), ("B", 1), unit_price="19.90"))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "applied"
    assert [(line["line_no"], line["outcome"]) for line in result["lines"]] == [
        (1, "applied"),
        (2, "applied"),
    ]
    assert result["units"] == {"sold": 4}
    assert (feed.on_hand("A"), feed.sellable("A")) == (7, 12)
    assert (feed.on_hand("B"), feed.sellable("B")) == (9, 14)

    events = airflow_api.wait_for_events(1)
    assert len(events) == 1
    assert events[0]["asset_id"] == 7
    assert events[0]["extra"] == {
        "source": "pos_feed",
        "documents": [f"{feed.store}:R-1"],
        "units": {"sold": 4},
    }
    with feed.shop.engine.connect() as conn:
        kept = (
            conn.execute(select(pos_documents).where(pos_documents.c.document_id == "R-1")).mappings().one()
        )
    assert (kept["type"], kept["status"]) == ("sale", "applied")
    assert kept["body"]["lines"][0]["unit_price"] == "19.90"
    with feed.shop.engine.connect() as conn:  # the till's price reaches the sales reports
        sold = conn.execute(
            select(
                store_sales.c.quantity, store_sales.c.unit_price, store_sales.c.amount, store_sales.c.currency
            )
            .where(store_sales.c.idempotency_key.like(f"pos:{feed.store}:R-1:%"))
            .order_by(store_sales.c.idempotency_key)
        ).all()
    assert [tuple(row) for row in sold] == [
        (3, Decimal("19.90"), Decimal("59.70"), "CNY"),
        (1, Decimal("19.90"), Decimal("19.90"), "CNY"),
    ]


def test_the_same_document_again_answers_the_first_result_and_changes_nothing(
    feed: Feed, airflow_api: FakeAirflowApi
):
    document = feed.sale("R-2", ("A", 2))
    first = feed.post(document)
    assert first.status_code == 200
    airflow_api.wait_for_events(1)
    rows_before = ledger_rows(feed.shop.engine, f"pos:{feed.store}:R-2:")
    # Same content, other key order and spacing: the same document.
    again = feed.post(json.dumps(dict(reversed(list(document.items()))), indent=2).encode())
    assert again.status_code == 200, again.text
    replayed = again.json()
    assert replayed.pop("replayed") is True
    assert replayed.pop("first_received_at")
    assert replayed == first.json()
    assert feed.on_hand("A") == 8
    assert ledger_rows(feed.shop.engine, f"pos:{feed.store}:R-2:") == rows_before == 1
    time.sleep(0.5)
    assert len(airflow_api.events) == 1  # nothing changed: no second event


def test_one_document_posted_at_once_by_several_connections_applies_once(feed: Feed):
    document = feed.sale("R-20", ("A", 3), ("B", 1))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: feed.post(document), range(4)))
    assert [answer.status_code for answer in answers] == [200] * 4
    assert sum(1 for answer in answers if not answer.json().get("replayed")) == 1
    assert (feed.on_hand("A"), feed.on_hand("B")) == (7, 9)


def test_the_same_id_with_another_body_is_409_and_queued(feed: Feed):
    assert feed.post(feed.sale("R-3", ("A", 2))).status_code == 200
    answer = feed.post(feed.sale("R-3", ("A", 5)))
    assert answer.status_code == 409
    assert answer.json()["error"] == "pos_document_conflict"
    assert "another body" in answer.json()["reason"]
    assert feed.on_hand("A") == 8
    (queued,) = feed.bad_documents("pos_document_conflict")
    assert queued["id"] == answer.json()["exception_id"]
    with feed.shop.engine.connect() as conn:
        raw = queue.get(conn, queued["id"])
    assert raw is not None


# -- who may post what ---------------------------------------------------------------------------------------


def test_a_missing_or_wrong_key_is_401_and_stores_nothing(feed: Feed, caplog: pytest.LogCaptureFixture):
    document = feed.sale("R-4", ("A", 1))
    wrong = feed.post(document, key="not-the-key")
    assert wrong.status_code == 401
    assert "not-the-key" not in wrong.text and feed.key not in wrong.text
    no_key = requests.post(
        feed.url + DOCUMENTS_PATH, json=document, headers={"X-Store-Code": feed.store}, timeout=30
    )
    assert no_key.status_code == 401
    unknown_store = feed.post(document, store=f"{feed.shop.prefix}-nowhere")
    assert unknown_store.status_code == 401
    assert feed.on_hand("A") == 10
    with feed.shop.engine.connect() as conn:
        assert conn.execute(select(pos_documents).where(pos_documents.c.document_id == "R-4")).first() is None
    assert feed.bad_documents() == []
    assert "not-the-key" not in caplog.text
    assert "wrong key" in caplog.text


def test_a_store_posts_for_its_own_location_only(engine: Engine, feed: Feed, monkeypatch: pytest.MonkeyPatch):
    other, other_key = add_store(engine, feed.shop, monkeypatch, f"{feed.shop.prefix}-other")
    answer = feed.post(feed.sale("R-5", ("A", 1)), store=other, key=other_key)  # names feed.store's location
    assert answer.status_code == 403
    assert answer.json()["error"] == "wrong_location"
    assert feed.on_hand("A") == 10
    # Its own key does not open another store's door either.
    assert feed.post(feed.sale("R-5", ("A", 1)), key=other_key).status_code == 401


# -- bad documents are refused and kept ----------------------------------------------------------------------


def test_bad_json_is_400_and_a_schema_miss_is_422_both_kept(feed: Feed):
    not_json = feed.post(b'{"document_id": "R-6", "type": "sale",')
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "bad_pos_document"
    assert "not JSON" in not_json.json()["reason"]

    document = feed.sale("R-7", ("A", 1))
    document["lines"][0]["quantity"] = -2
    del document["occurred_at"]
    schema_miss = feed.post(document)
    assert schema_miss.status_code == 422
    assert schema_miss.json()["error"] == "bad_pos_document"
    errors = schema_miss.json()["errors"]
    assert any(e.startswith("(document): 'occurred_at' is a required property") for e in errors)
    assert any(e.startswith("lines/0/quantity:") for e in errors)

    no_offset = feed.post({**feed.sale("R-8", ("A", 1)), "occurred_at": "2026-12-07T10:15:00"})
    assert no_offset.status_code == 422
    assert "no UTC offset" in no_offset.json()["reason"]
    twice = feed.sale("R-9", ("A", 1), ("B", 1))
    twice["lines"][1]["line_no"] = 1
    assert feed.post(twice).status_code == 422

    kept = {e["id"]: e for e in feed.bad_documents()}
    assert set(kept) == {
        a.json()["exception_id"] for a in (not_json, schema_miss, no_offset, feed.post(twice))
    }
    assert all(e["raw_payload_id"] is not None for e in kept.values())  # each kept with its raw body
    assert feed.on_hand("A") == 10 and feed.on_hand("B") == 10


def test_a_document_over_the_size_cap_is_413(engine: Engine, feed: Feed):
    with serving(create_feed(engine, max_bytes=200)) as url:
        answer = requests.post(
            url + DOCUMENTS_PATH,
            data=json.dumps(feed.sale("R-10", *[("A", 1)] * 20)).encode(),
            headers={"X-Store-Code": feed.store, "Authorization": f"Bearer {feed.key}"},
            timeout=30,
        )
    assert answer.status_code == 413
    assert feed.on_hand("A") == 10


def test_a_location_the_warehouse_does_not_know_is_422_and_kept(
    engine: Engine, feed: Feed, monkeypatch: pytest.MonkeyPatch
):
    ghost = f"{feed.shop.prefix}-ghost"
    ghost_key = "ghost-key-123"
    monkeypatch.setenv(f"AIRFLOW_CONN_{store_conn_id(ghost).upper()}", json.dumps({"password": ghost_key}))
    answer = feed.post({**feed.sale("R-11", ("A", 1)), "location": ghost}, store=ghost, key=ghost_key)
    assert answer.status_code == 422
    assert "unknown location" in answer.json()["reason"]
    with engine.connect() as conn:
        assert queue.get(conn, answer.json()["exception_id"])["reason"] == "bad_pos_document"


# -- lines by the files' rules -------------------------------------------------------------------------------


def test_an_unknown_sku_line_is_queued_while_the_other_lines_apply(feed: Feed):
    document = feed.sale("R-12", ("A", 2), ("NOPE", 1), ("B", 11))
    answer = feed.post(document)
    assert answer.status_code == 200
    result = answer.json()
    assert result["status"] == "partial"
    outcomes = {line["line_no"]: (line["outcome"], line.get("reason", "")) for line in result["lines"]}
    assert outcomes[1] == ("applied", "")
    assert outcomes[2][0] == "rejected" and "unknown SKU" in outcomes[2][1]
    assert outcomes[3][0] == "rejected" and "only 10 are on hand" in outcomes[3][1]
    assert (feed.on_hand("A"), feed.on_hand("B")) == (8, 10)
    with feed.shop.engine.connect() as conn:
        queued = [
            e
            for e in queue.list_open(conn, reason="bad_import_row")
            if e["detail"].startswith(f"pos:{feed.store}:R-12:")
        ]
    assert sorted(e["detail"].split(": ", 1)[0] for e in queued) == [
        f"pos:{feed.store}:R-12:2",
        f"pos:{feed.store}:R-12:3",
    ]


def test_a_feed_line_and_a_file_row_are_the_same_line(feed: Feed, tmp_path: Path):
    assert feed.post(feed.sale("R-13", ("A", 2))).status_code == 200
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "receipt_id,line_no,location,sku,quantity,sold_at\n"
        f"R-13,1,{feed.store},{feed.shop.sku('A')},2,{AT}\n",
        encoding="utf-8",
    )
    report = import_file(feed.shop.engine, "sales", sales)
    assert (report.applied, report.already_applied) == (0, 1)
    assert feed.on_hand("A") == 8


def test_a_count_document_sets_on_hand(feed: Feed, airflow_api: FakeAirflowApi):
    answer = feed.post(feed.sale("C-1", ("A", 4), ("B", 10), kind="count"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "applied"
    assert answer.json()["units"] == {"adjusted": -6}
    assert (feed.on_hand("A"), feed.on_hand("B")) == (4, 10)
    assert airflow_api.wait_for_events(1)[0]["extra"]["units"] == {"adjusted": -6}
    # A count line with a quantity instead of counted_quantity does not match the schema.
    mixed = feed.sale("C-2", ("A", 4), kind="count")
    mixed["lines"][0]["quantity"] = 4
    assert feed.post(mixed).status_code == 422


def test_a_return_restocks_and_a_damaged_return_is_queued(feed: Feed):
    assert feed.post(feed.sale("R-14", ("A", 3))).status_code == 200
    answer = feed.post(feed.sale("RT-1", ("A", 2), kind="return", reason="sellable"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["units"] == {"returned": 2}
    assert (feed.on_hand("A"), feed.sellable("A")) == (9, 14)
    with feed.shop.engine.connect() as conn:
        kind = conn.execute(
            select(stock_ledger.c.kind).where(stock_ledger.c.idempotency_key == f"pos:{feed.store}:RT-1:1")
        ).scalar_one()
    assert kind == "restock"

    # A damaged return is booked by warehouse.returns at the store's damaged location: sellable nowhere.
    damaged = feed.post(feed.sale("RT-2", ("A", 1), kind="return", reason="damaged"))
    assert damaged.status_code == 200, damaged.text
    (line,) = damaged.json()["lines"]
    assert line["outcome"] == "applied"
    assert (feed.on_hand("A"), feed.sellable("A")) == (9, 14)
    with feed.shop.engine.connect() as conn:
        assert stock.stock_level(conn, feed.shop.sku("A"), f"{feed.store}-DAMAGED") == (1, 0)


def test_a_return_of_a_channel_order_is_checked_against_what_shipped(feed: Feed):
    line = make_line("1", feed.shop.sku("A"), 2, shipped=1)
    feed.shop.ingest(make_order(f"{feed.store}-O1", [line]))
    order = {"channel": feed.shop.channel, "order_id": f"{feed.store}-O1", "order_line_id": "1"}
    too_many = feed.post(feed.sale("RT-3", ("A", 2), kind="return", **order))
    (refused,) = too_many.json()["lines"]
    assert refused["outcome"] == "rejected" and "over_returned" in refused["reason"]
    back = feed.post(feed.sale("RT-4", ("A", 1), kind="return", **order))
    assert back.json()["lines"][0]["outcome"] == "applied", back.text
    assert feed.on_hand("A") == 11  # restocked at the store that received it
    with feed.shop.engine.connect() as conn:
        (held,) = list_returns(conn, channel=feed.shop.channel, order_id=f"{feed.store}-O1")
    assert (held["return_id"], held["refund_status"]) == ("RT-4", "awaiting_refund")


def test_an_unreachable_airflow_api_leaves_the_document_applied(
    engine: Engine, feed: Feed, caplog: pytest.LogCaptureFixture
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    events = StockAssetEvents(dead_url, "admin", Secret("airflow-password"))
    with serving(create_feed(engine, stock_changed=events.stock_changed)) as url:
        answer = requests.post(
            url + DOCUMENTS_PATH,
            json=feed.sale("R-15", ("A", 1)),
            headers={"X-Store-Code": feed.store, "Authorization": f"Bearer {feed.key}"},
            timeout=30,
        )
        assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while "stock asset event" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert feed.on_hand("A") == 9
    assert "the stock asset event for 1 document(s) failed" in caplog.text


def test_health(feed: Feed):
    assert requests.get(feed.url + HEALTH_PATH, timeout=10).json() == {"status": "ok"}


def test_channelhub_stores_serve_reads_keys_and_the_airflow_api_from_connections(
    engine: Engine, database_url: str, feed: Feed, airflow_api: FakeAirflowApi, tmp_path: Path
):
    """The command as deployed: its own process, the port from HUB_STORE_FEED_PORT, the store's key from
    its Airflow connection, the stock asset event through ``channelhub_airflow_api``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = {"conn_type": "http", "host": airflow_api.url, "login": "admin", "password": "airflow-password"}
    env = {
        **os.environ,  # the store's AIRFLOW_CONN_POS_* (the fixture's monkeypatch)
        "HUB_DATABASE_URL": database_url,
        "HUB_STORE_FEED_PORT": str(port),
        "AIRFLOW_CONN_CHANNELHUB_AIRFLOW_API": json.dumps(api),
    }
    code = "import sys; from channelhub.cli import main; sys.exit(main(['stores', 'serve']))"
    log_file = tmp_path / "serve.log"
    with log_file.open("w") as out:
        serve = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + HEALTH_PATH, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline, log_file.read_text()[-2000:]
            time.sleep(0.2)
        headers = {"X-Store-Code": feed.store, "Authorization": f"Bearer {feed.key}"}
        answer = requests.post(
            base + DOCUMENTS_PATH, json=feed.sale("R-30", ("B", 4)), headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert airflow_api.wait_for_events(1)[0]["extra"]["documents"] == [f"{feed.store}:R-30"]
        wrong = {**headers, "Authorization": "Bearer guessed"}
        assert requests.post(base + DOCUMENTS_PATH, json={}, headers=wrong, timeout=30).status_code == 401
    finally:
        serve.terminate()
        serve.wait(20)
    assert feed.on_hand("B") == 6
    printed = log_file.read_text()
    assert f"POS feed on http://127.0.0.1:{port}/stores/v1/documents" in printed
    assert feed.key not in printed and "airflow-password" not in printed


# -- the demo ------------------------------------------------------------------------------------------------


def test_the_demo_posts_a_sale_over_http_and_every_channel_sells_less(
    engine: Engine, airflow_api: FakeAirflowApi, capsys: pytest.CaptureFixture
):
    from hub_configs import hub_config

    from channelhub.demo_pos_feed import demo_pos_sale

    code = f"posdemo_{uuid.uuid4().hex[:8]}"  # a configured channel's code (config/channels.yaml's rules)
    warehouse, sku = f"{code}-wh", f"{code}-A"
    with engine.begin() as conn:
        catalog.upsert_location(conn, warehouse, "demo warehouse")
        catalog.upsert_channel(conn, code, "shopify", "demo shop", warehouse)
        catalog.upsert_sku(conn, sku, "demo product")
        catalog.upsert_listing(conn, code, sku, merchant_sku=sku)
        catalog.receive_stock(conn, sku, warehouse, 5, f"receive:test:{uuid.uuid4().hex}")
    config = hub_config(code, location=warehouse)
    events = StockAssetEvents(airflow_api.url, "admin", Secret("airflow-password"))
    store = f"{code}-store"
    shown = demo_pos_sale(
        engine, config, store=store, sku=sku, quantity=2, stock_changed=events.stock_changed
    )
    assert shown["status"] == 200 and shown["answer"]["status"] == "applied"
    assert shown["again"]["replayed"] is True
    assert shown["sellable_before"] == {code: 25}  # 5 at the warehouse + the demo store's 20
    assert shown["sellable_after"] == {code: 23}
    assert airflow_api.wait_for_events(1)[0]["extra"]["units"] == {"sold": 2}
    printed = capsys.readouterr().out
    assert "sellable     25 -> 23" in printed
    assert f"AIRFLOW_CONN_{store_conn_id(store).upper()}" not in os.environ
