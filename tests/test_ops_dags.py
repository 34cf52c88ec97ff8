"""Issue 5 through the real DAGs (``dag.test()``): reconciliation runs and records its findings, the channel
health check alerts once when a channel falls behind and once when it recovers, and a run that fails for
good alerts through the webhook, whose URL (a credential) never appears in a log line."""

from __future__ import annotations

import functools
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
CODE = "ops_dag_shop"
WEBHOOK_TOKEN = "T0KEN-hooks-secret-4242"


class Webhook:
    """A real HTTP receiver standing in for a chat/paging webhook."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/{WEBHOOK_TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self) -> list[tuple[str, str]]:
        return [(alert["severity"], alert["key"]) for alert in self.received]


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "shopify",
        seed=33,
        start=NOW - timedelta(hours=3),
        interval=300,
        clock=Clock.frozen(NOW),
        leak_per_second=100,
    ) as sandbox:
        yield sandbox


@pytest.fixture()
def hub(tmp_path, monkeypatch, shop, engine, database_url, airflow_db):
    webhook = Webhook()
    config_file, config = write_hub_config(
        tmp_path,
        CODE,
        location="WH-OPSDAG",
        schedule_minutes=15,
        overlap_minutes=0,
        retries=0,
        alert_after_missed_syncs=2,
        stock_policy={"locations": ["WH-OPSDAG"]},
    )
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CODE.upper()}",
        json.dumps(sandbox_connection("shopify", shop.base_url, shop.access_token)),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHANNELHUB_ALERTS", json.dumps({"conn_type": "http", "host": webhook.url})
    )
    register_config(engine, config)
    seed_from_catalog(engine, config.channel(CODE), shop.world.catalog)
    yield webhook
    webhook.server.shutdown()


@functools.cache
def dag_bag(config_file: str):  # the DAG files read the config when parsed: one parse per config
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag


def run(dag_id: str, **options) -> str:
    return dag_bag(os.environ["HUB_CHANNELS_CONFIG"]).get_dag(dag_id).test(**options).state


def test_reconcile_health_and_alert_dags(hub, shop, engine, capfd, caplog):
    # Never synced: the health check alerts once, however often it runs.
    assert run("channel_health", logical_date=NOW) == "success"
    assert run("channel_health", logical_date=NOW + timedelta(minutes=15)) == "success"
    assert hub.keys() == [("warning", f"stale_sync:{CODE}")]
    assert all(alert["path"] == f"/hooks/{WEBHOOK_TOKEN}" for alert in hub.received)

    # A sync whose channel is down fails for good (retries 0): the failure is alerted.
    shop.faults.update(server_error_rate=1.0)
    try:
        assert run(f"sync_orders__{CODE}", logical_date=NOW) == "failed"
    finally:
        shop.faults.clear()
    assert hub.keys()[-1] == ("error", f"failed_run:sync_orders__{CODE}")
    # The webhook gets the error's kind and a log id, never its text (hosts, SQL, a platform's answer).
    message = hub.received[-1]["message"]
    assert "TransientError (log id " in message and "server error" not in message
    log_id = message.split("log id ")[1].split(";")[0]
    assert f"[log id {log_id}]: TransientError: shopify: server error" in caplog.text

    # The channel syncs again: the health check says so, once.
    assert run(f"sync_orders__{CODE}", logical_date=datetime.now(UTC).replace(microsecond=0)) == "success"
    assert run("channel_health", logical_date=NOW + timedelta(minutes=30)) == "success"
    assert hub.keys()[-1] == ("resolved", f"stale_sync:{CODE}")
    alerts_so_far = len(hub.received)

    # The light reconciliation runs over its hour, records its run and prints its summary.
    assert run(f"reconcile_light__{CODE}", logical_date=NOW) == "success"
    with engine.connect() as conn:
        depth, window_start, window_end, summary = conn.execute(
            text(
                "SELECT r.depth, r.window_start, r.window_end, r.summary FROM reconciliation_runs r "
                "JOIN channels c ON c.id = r.channel_id WHERE c.code = :c ORDER BY r.id DESC LIMIT 1"
            ),
            {"c": CODE},
        ).one()
    assert (depth, window_end - window_start) == ("light", timedelta(hours=1))
    assert summary.startswith("repaired ") and "left for a person 0" in summary
    assert run("exceptions_retest", logical_date=NOW) == "success"
    assert len(hub.received) == alerts_so_far  # nothing new to alert

    # Everything the runs wrote (task logs included): the summary is there, the webhook URL (a credential:
    # it carries a token) is not.
    written = "".join(capfd.readouterr()) + caplog.text  # log records reach one or the other
    assert f"reconcile {CODE} (light)" in written and "orders    checked" in written
    assert "ALERT WARNING" in written and "ALERT ERROR" in written
    assert WEBHOOK_TOKEN not in written


def test_the_alert_webhook_path_never_reaches_a_log_line_even_at_debug(monkeypatch, caplog):
    import logging

    from channelhub.alerts import Alert, send

    webhook = Webhook()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_CHANNELHUB_ALERTS", json.dumps({"conn_type": "http", "host": webhook.url})
        )
        caplog.set_level(logging.DEBUG, logger="urllib3")
        assert send(Alert(key="k", severity="warning", title="t", message="m"))
    finally:
        webhook.server.shutdown()
    assert [alert["path"] for alert in webhook.received] == [f"/hooks/{WEBHOOK_TOKEN}"]
    urllib_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any('"POST ***' in line for line in urllib_lines), urllib_lines  # urllib3 logged the request
    assert WEBHOOK_TOKEN not in caplog.text


def test_the_webhook_sweep_dag_applies_what_a_receiver_left_pending(hub, shop, engine):
    """A receiver died after storing an event (or runs ``--no-apply``): the ``webhook_inbox_sweep`` DAG lands
    the order through the sync's own prepare and ingest."""
    from warehouse import webhook_inbox

    state = next(iter(shop.world.updated_between(NOW - timedelta(hours=1), NOW)))
    order = shop.app.state.renderer.render(state)
    external_id = str(order["id"])
    with engine.begin() as conn:
        (row_id,) = webhook_inbox.store_events(
            conn,
            CODE,
            [webhook_inbox.InboxEvent(f"sweep-{external_id}", "orders/create", external_id, order)],
            raw_body=json.dumps(order).encode(),
            headers={"x-shopify-topic": "orders/create"},
            received_at=datetime.now(UTC) - timedelta(minutes=5),
        )
    assert run("webhook_inbox_sweep", logical_date=NOW) == "success"
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM webhook_inbox WHERE id = :i"), {"i": row_id}).scalar()
        landed = conn.execute(
            text("SELECT count(*) FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c "
                 "AND o.external_id = :e"),
            {"c": CODE, "e": external_id},
        ).scalar()  # fmt: skip
    assert (status, landed) == ("applied", 1)


def test_the_returns_check_dag_queues_a_return_the_channel_has_not_refunded(hub, engine):
    """A store took back a shipped unit weeks ago and the channel never refunded it: the daily
    ``returns_check`` DAG queues it for a person (``return_not_refunded``)."""
    from canonical.store_files import ReturnRow
    from warehouse import catalog
    from warehouse import exceptions as queue
    from warehouse.ingest import Landed, ingest_orders
    from warehouse.return_refunds import NOT_REFUNDED
    from warehouse.returns import receive_return
    from warehouse.testing import make_line, make_order

    with engine.begin() as conn:
        catalog.upsert_location(conn, "ST-OPSDAG", "store", "store")
        catalog.upsert_sku(conn, "OPSDAG-RET", "returned")
        catalog.upsert_listing(conn, CODE, "OPSDAG-RET", merchant_sku="OPSDAG-RET")
        catalog.receive_stock(conn, "OPSDAG-RET", "WH-OPSDAG", 5, "receive:test:opsdag-ret")
    order = make_order("OPS-RET-1", [make_line("1", "OPSDAG-RET", 1, shipped=1)])
    ingest_orders(engine, CODE, [Landed(order, {"id": "OPS-RET-1"})])
    returned = ReturnRow(
        line=0, raw={}, return_id="OPS-RT-1", line_no="1", location="ST-OPSDAG", sku="OPSDAG-RET",
        quantity=1, reason="unwanted", returned_at=NOW - timedelta(days=20), channel=CODE,
        order_id="OPS-RET-1", order_line_id="1", exchange_sku=None, exchange_quantity=None,
    )  # fmt: skip
    with engine.begin() as conn:
        assert receive_return(conn, returned, source="test")
    assert run("returns_check", logical_date=NOW) == "success"
    with engine.connect() as conn:
        (queued,) = queue.list_open(conn, channel=CODE, reason=NOT_REFUNDED)
    assert queued["external_id"] == "OPS-RET-1" and "OPS-RT-1" in queued["detail"]
