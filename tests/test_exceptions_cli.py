"""Issue 5: working the exception queue from the command line (``channelhub exceptions ...`` and
``channelhub listings map``), against a real warehouse and a Shopify sandbox over HTTP.

Unknown SKUs are listed, fail a retry while unmapped, and resolve in bulk once the listing is mapped; resolve
and ignore need a note; every action names who did it; a shipment row that arrived before its order waits
as ``bad_import_row`` and the periodic re-test clears it once the order has synced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.cli import main
from channelhub.demo import seed_from_catalog
from channelhub.exception_ops import retest_open
from channelhub.sync import register_config, sync_orders
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from sandbox.shopify import API_PREFIX
from warehouse import exceptions as queue
from warehouse.store_imports import import_text

NOW = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
START = NOW - timedelta(hours=8)
LOCATION = "WH-OPS"


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "shopify", seed=91, start=START, interval=120, clock=Clock.frozen(NOW), leak_per_second=100.0
    ) as sandbox:
        yield sandbox


@pytest.fixture()
def hub(tmp_path, monkeypatch, shop, engine, database_url, request):
    """A channel of its own per test (so each test sees only its own exceptions), configured like ops do."""
    code = f"ops_{request.node.name[5:20]}".rstrip("_")
    config_file, config = write_hub_config(
        tmp_path, code, location=LOCATION, overlap_minutes=0, page_size=100
    )
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{code.upper()}",
        json.dumps(sandbox_connection("shopify", shop.base_url, shop.access_token)),
    )
    register_config(engine, config)
    seed_from_catalog(engine, config.channel(code), shop.world.catalog)
    return config


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def open_ids(engine, **filters) -> list[int]:
    with engine.connect() as conn:
        return [row["id"] for row in queue.search(conn, queue.ExceptionFilter(**filters))]


def test_unknown_skus_resolve_in_bulk_once_the_listing_is_mapped(hub, shop, engine, capsys):
    channel = hub.channels[0]
    sync_orders(engine, channel, START, NOW)
    unmapped = shop.world.catalog.unmapped_variants[0]
    channel_sku = unmapped.platform_ids("shopify")["sku"]
    waiting = open_ids(engine, channel=channel.code, reason="unknown_sku", sku=channel_sku)
    assert waiting, "the sandbox history must sell the unmapped variant"

    code, out, _ = cli(capsys, "exceptions", "list", "--channel", channel.code, "--reason", "unknown_sku")
    assert code == 0
    assert all(f"#{i}" in out for i in waiting) and "unknown_sku" in out

    # Before the mapping a retry changes nothing and says so (exit 1: still open).
    code, out, _ = cli(capsys, "exceptions", "retry", *map(str, waiting[:1]), "--by", "alice")
    assert code == 1 and "still_open" in out
    assert open_ids(engine, channel=channel.code, reason="unknown_sku", sku=channel_sku) == waiting

    code, out, _ = cli(
        capsys, "listings", "map", "--channel", channel.code, "--merchant-sku", channel_sku,
        "--sku", unmapped.sku, "--retry", "--by", "alice",
    )  # fmt: skip
    assert code == 0, out
    assert f"retried {len(waiting)} unknown_sku exception(s): {len(waiting)} resolved" in out
    assert open_ids(engine, channel=channel.code, reason="unknown_sku", sku=channel_sku) == []
    with engine.connect() as conn:
        reserved = conn.execute(
            text(
                "SELECT sum(l.reserved_quantity + l.deducted_quantity) FROM order_lines l "
                "JOIN orders o ON o.id = l.order_id JOIN channels c ON c.id = o.channel_id "
                "WHERE c.code = :c AND l.merchant_sku = :s"
            ),
            {"c": channel.code, "s": channel_sku},
        ).scalar_one()
    assert reserved > 0, "the mapped lines now hold stock"

    code, out, _ = cli(capsys, "exceptions", "show", str(waiting[0]))
    assert code == 0 and "resolved" in out
    assert "alice: retry" in out and "still_open" in out and "resolved" in out.split("alice: retry")[-1]


def test_resolve_and_ignore_need_a_note_and_record_who(hub, engine, capsys):
    channel = hub.channels[0]
    with engine.begin() as conn:
        first = queue.record_exception(
            conn,
            channel=channel.code,
            reason="bad_address",
            external_id="A-1",
            detail="no city",
            raw={"x": 1},
        )
        second = queue.record_exception(
            conn, channel=channel.code, reason="bad_address", external_id="A-2", detail="no street"
        )

    code, _, err = cli(capsys, "exceptions", "resolve", str(first))
    assert code == 2 and "needs --note" in err
    code, _, err = cli(capsys, "exceptions", "retry")
    assert code == 2 and "name exception ids, or a filter" in err
    for age in ("99999999999d", "36501d"):  # past what a timedelta, or Postgres, holds: a usage error
        with pytest.raises(SystemExit) as exited:
            cli(capsys, "exceptions", "list", "--older-than", age)
        assert exited.value.code == 2 and "at most 36500 days" in capsys.readouterr().err

    # Age filter: nothing is older than an hour until the first one is.
    code, out, _ = cli(capsys, "exceptions", "list", "--channel", channel.code, "--older-than", "1h")
    assert out.strip().endswith("0 exception(s)")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE exceptions SET created_at = now() - interval '2 hours' WHERE id = :i"), {"i": first}
        )
    code, out, _ = cli(
        capsys, "exceptions", "list", "--channel", channel.code, "--older-than", "1h", "--json"
    )
    assert [row["id"] for row in json.loads(out)] == [first]

    code, out, _ = cli(
        capsys, "exceptions", "ignore", "--channel", channel.code, "--older-than", "90m",
        "--note", "test order", "--by", "bob",
    )  # fmt: skip
    assert code == 0 and "ignored 1" in out
    code, out, _ = cli(
        capsys, "exceptions", "resolve", str(second), "--note", "address fixed", "--by", "carol"
    )
    assert code == 0 and "resolved 1" in out

    code, out, _ = cli(capsys, "exceptions", "list", "--channel", channel.code, "--status", "ignored")
    assert f"#{first}" in out and f"#{second}" not in out
    code, out, _ = cli(capsys, "exceptions", "show", str(first))
    assert "bob: ignore note='test order'" in out and '"x": 1' in out
    code, out, _ = cli(capsys, "exceptions", "show", str(second), "--json")
    assert [(a["action"], a["actor"], a["note"]) for a in json.loads(out)["actions"]] == [
        ("resolve", "carol", "address fixed")
    ]
    code, _, err = cli(capsys, "exceptions", "show", "999999999")
    assert code == 2 and "no exception #999999999" in err


def test_a_shipment_row_that_came_before_its_order_clears_on_the_periodic_retest(hub, shop, engine):
    channel = hub.channels[0]
    sync_orders(engine, channel, START, NOW - timedelta(hours=2))
    late = next(
        s
        for s in shop.world.updated_between(NOW - timedelta(hours=1), NOW)
        if s.order.created_ts > (NOW - timedelta(hours=1)).timestamp()
    )
    order_id = str(shop.app.state.renderer.order_id(late.index))
    order = requests.get(
        f"{shop.base_url}{API_PREFIX}/orders/{order_id}.json",
        headers={"X-Shopify-Access-Token": shop.access_token},
        timeout=10,
    ).json()["order"]
    line = order["line_items"][0]
    row = (
        "shipment_id,channel,order_id,line_id,quantity,carrier,tracking_number,shipped_at\n"
        f"EARLY-1,{channel.code},{order_id},{line['id']},{line['quantity']},UPS,1ZEARLY,{NOW.isoformat()}\n"
    )
    report = import_text(engine, "shipments", row, file="early.csv", source="early.csv")
    assert len(report.rejected) == 1 and "order" in report.rejected[0].reason
    (waiting,) = open_ids(engine, channel=channel.code, reason="bad_import_row")

    before_sync = {
        o.exception_id: o.status for o in retest_open(engine, hub, actor="airflow:exceptions_retest")
    }
    assert before_sync[waiting] == "still_open"
    sync_orders(engine, channel, NOW - timedelta(hours=2), NOW)
    outcomes = {o.exception_id: o for o in retest_open(engine, hub, actor="airflow:exceptions_retest")}
    assert outcomes[waiting].status == "resolved", outcomes[waiting].detail
    with engine.connect() as conn:
        shipped = conn.execute(
            text("SELECT count(*) FROM shipments WHERE shipment_key = 'EARLY-1' AND source = 'early.csv'")
        ).scalar_one()
        trail = [(a["action"], a["actor"]) for a in queue.actions_of(conn, waiting)]
    assert shipped == 1
    assert trail[-2:] == [("auto_resolve", "hub:ingest"), ("retry", "airflow:exceptions_retest")]
