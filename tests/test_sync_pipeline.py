"""The sync pipeline (connector -> schema check -> mapping -> warehouse) against the Shopify sandbox.

Bad payloads are queued with their reason while the rest lands; a channel outage fails the run loudly (so
Airflow retries it) without landing half-checked data; credentials never reach error text.
"""

from __future__ import annotations

import gc
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from hub_configs import hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.sync import SYNC_GC_YOUNG, prefetched, register_config, roomy_gc, sync_orders
from connectors.auth import Secret
from connectors.errors import AuthError, ConnectorError, TransientError
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from warehouse import exceptions as exception_queue
from warehouse.health import channel_health
from warehouse.stock import ledger_drift, oversold

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=4)


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "shopify", seed=7, start=NOW - timedelta(hours=10), interval=60, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


def make_channel(engine, shop, code: str):
    config = hub_config(code, location="WH-PIPE", overlap_minutes=0, page_size=100, batch_size=80)
    register_config(engine, config)
    channel = config.channel(code)
    seed_from_catalog(engine, channel, shop.world.catalog)
    return channel


def credentials(shop, token: str | None = None) -> ChannelCredentials:
    return ChannelCredentials("test", shop.base_url, secret=Secret(token or shop.access_token))


def open_exceptions(engine, code: str, reason: str) -> list[dict]:
    with engine.connect() as conn:
        return exception_queue.list_open(conn, channel=code, reason=reason)


def sync_with_bad_orders(engine, shop, channel, knob: str, is_bad: str) -> tuple[set[str], list]:
    """Sync the window while the sandbox serves a tenth of its orders broken (fault ``knob``, chosen by
    ``Faults.<is_bad>``); checks that exactly those were queued as schema_invalid and the rest landed, and
    returns their ids and the window's order states."""
    in_window = list(shop.world.updated_between(SINCE, NOW))
    shop.faults.update(**{knob: 0.1})
    try:
        bad = {
            str(shop.app.state.renderer.order_id(s.index))
            for s in in_window
            if getattr(shop.faults, is_bad)(s.index)
        }
        result = sync_orders(engine, channel, SINCE, NOW, credentials=credentials(shop))
    finally:
        shop.faults.clear()
    assert bad, "the fault profile must hit some orders in the window"
    assert result.fetched == len(in_window)
    assert result.counts.exceptions["schema_invalid"] == len(bad)
    assert result.counts.new == len(in_window) - len(bad)
    return bad, in_window


def test_orders_no_decoder_keeps_are_queued_with_their_text_and_the_rest_lands(engine, shop):
    """Half an emoji in a buyer's note (a lone surrogate), 1e400 and nesting past any decoder: the page used
    to fail on every retry (the payload could not be decoded, digested or stored), stopping the channel. Now
    each such order is a typed exception holding its values' exact JSON text, and the rest of its page
    lands."""
    channel = make_channel(engine, shop, "pipe_unreadable")
    unreadable, _ = sync_with_bad_orders(
        engine, shop, channel, "unreadable_order_rate", "order_is_unreadable"
    )
    queued = open_exceptions(engine, channel.code, "schema_invalid")
    assert {q["external_id"] for q in queued} == unreadable
    assert all("no decoder keeps" in q["detail"] and "note" in q["detail"] for q in queued)
    with engine.connect() as conn:
        kept = exception_queue.get(conn, queued[0]["id"])["payload"]
    assert kept["note"] == "half an emoji \\ud83d" and kept["total_weight"] == "1e400"  # exact text kept
    nest, levels = kept["note_attributes"][0]["value"], 0
    while isinstance(nest, list):  # decoded down to the decoder's depth, the rest kept as its text
        nest, levels = nest[0], levels + 1
    assert nest == "[" * (2000 - levels) + "]" * (2000 - levels)

    # Once the platform serves them right, the same window lands them and closes their exceptions.
    fixed = sync_orders(engine, channel, SINCE, NOW, credentials=credentials(shop))
    assert fixed.counts.new == len(unreadable)
    assert open_exceptions(engine, channel.code, "schema_invalid") == []


def test_malformed_orders_are_queued_and_the_rest_of_the_batch_lands(engine, shop):
    channel = make_channel(engine, shop, "pipe_malformed")
    malformed, in_window = sync_with_bad_orders(
        engine, shop, channel, "malformed_order_rate", "order_is_malformed"
    )

    queued = open_exceptions(engine, channel.code, "schema_invalid")
    assert {q["external_id"] for q in queued} == malformed
    assert all("line_items/0/quantity" in q["detail"] for q in queued)
    with engine.connect() as conn:
        kept = exception_queue.get(conn, queued[0]["id"])
        landed = conn.execute(
            text("SELECT count(*) FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c"),
            {"c": channel.code},
        ).scalar_one()
    assert kept["payload"]["line_items"][0]["quantity"].endswith(" pcs"), "raw payload kept as received"
    assert landed == len(in_window) - len(malformed)

    # Pulling the window again queues nothing twice and changes no order.
    shop.faults.update(malformed_order_rate=0.1)
    try:
        again = sync_orders(engine, channel, SINCE, NOW, credentials=credentials(shop))
    finally:
        shop.faults.clear()
    assert again.counts.new == again.counts.updated == 0
    assert len(open_exceptions(engine, channel.code, "schema_invalid")) == len(malformed)

    # Once the platform serves them correctly, the same window lands them.
    fixed = sync_orders(engine, channel, SINCE, NOW, credentials=credentials(shop))
    assert fixed.counts.new == len(malformed)
    with engine.connect() as conn:
        assert oversold(conn) == 0 and ledger_drift(conn) == []


def test_a_channel_outage_fails_the_run_and_lands_nothing_half_checked(engine, shop):
    channel = make_channel(engine, shop, "pipe_outage")
    shop.faults.update(server_error_rate=1.0)
    try:
        with pytest.raises(ConnectorError) as caught:
            sync_orders(engine, channel, SINCE, NOW, credentials=credentials(shop))
    finally:
        shop.faults.clear()
    assert caught.value.status in (500, 502, 503)
    with engine.connect() as conn:
        landed = conn.execute(
            text("SELECT count(*) FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c"),
            {"c": channel.code},
        ).scalar_one()
    assert landed == 0


def test_a_bad_token_is_an_auth_error_without_the_token(engine, shop):
    channel = make_channel(engine, shop, "pipe_auth")
    wrong = "shpat_wrong_0123456789abcdef0123456789"
    with pytest.raises(AuthError) as caught:
        sync_orders(engine, channel, SINCE, NOW, credentials=credentials(shop, wrong))
    assert caught.value.status == 401
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert shop.access_token not in str(caught.value)


def test_a_backfill_past_60_days_without_read_all_orders_warns_in_the_log_the_run_and_the_page(
    engine, caplog
):
    from plugins.channelhub_plugin import _health_table

    now = datetime.now(UTC).replace(microsecond=0)  # the hub tells "60 days ago" by its own clock
    horizon = now - timedelta(days=60)
    old = (now - timedelta(days=65), now - timedelta(days=55))
    with run_sandbox(
        "shopify",
        seed=9,
        start=now - timedelta(days=70),
        interval=timedelta(hours=6),
        clock=Clock.frozen(now),
    ) as sb:
        scopes = f"{sb.base_url}/_sandbox/access_scopes"
        requests.post(scopes, json={"access_scopes": ["read_orders", "write_inventory"]}, timeout=5)
        channel = make_channel(engine, sb, "pipe_visibility")
        caplog.set_level(logging.WARNING, logger="channelhub.sync")

        backfill = sync_orders(engine, channel, *old, credentials=credentials(sb))

        [warning] = backfill.warnings
        assert warning.code == "order_visibility_limit" and "read_all_orders" in warning.message
        [logged] = [r for r in caplog.records if r.name == "channelhub.sync" and r.levelno == logging.WARNING]
        assert "order_visibility_limit" in logged.getMessage() and channel.code in logged.getMessage()
        assert backfill.as_dict()["warnings"] == [warning.as_dict()]
        visible = [s for s in sb.world.updated_between(*old) if s.order.created_at >= horizon]
        assert backfill.fetched == len(visible) < len(list(sb.world.updated_between(*old)))
        with engine.connect() as conn:
            [row] = [r for r in channel_health(conn) if r["channel"] == channel.code]
        assert row["warnings"] == [warning.as_dict()]
        page = _health_table([row])
        assert "order_visibility_limit" in page and "read_all_orders" in page

        # A later run of the channel without the warning clears it from the page.
        assert (
            sync_orders(engine, channel, now - timedelta(hours=2), now, credentials=credentials(sb)).warnings
            == []
        )
        with engine.connect() as conn:
            [row] = [r for r in channel_health(conn) if r["channel"] == channel.code]
        assert row["warnings"] == [] and "order_visibility_limit" not in _health_table([row])

        # Granted read_all_orders, the same backfill sees every order and says nothing.
        requests.post(scopes, json={"access_scopes": ["read_orders", "read_all_orders"]}, timeout=5)
        again = sync_orders(engine, channel, *old, credentials=credentials(sb))
        assert again.warnings == [] and again.fetched == len(list(sb.world.updated_between(*old)))


def test_prefetched_pages_keep_their_order_and_the_fetch_error_comes_after_them():
    def pages():
        yield from ([1], [2], [3])
        raise TransientError("server error", platform="shopify")

    received = []
    with pytest.raises(TransientError):
        for page in prefetched(pages(), 2):
            received.append(page)
    assert received == [[1], [2], [3]]


def test_a_consumer_that_stops_stops_the_fetching_thread():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    pages = prefetched(endless(), 2)
    assert [next(pages) for _ in range(3)] == [0, 1, 2]
    pages.close()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 1  # never more than the queue's depth ahead


def test_syncs_in_threads_share_the_roomy_gc_and_the_last_one_out_restores_it():
    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, ...]] = {}

    def first():
        with roomy_gc():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with roomy_gc():
            second_in.set()
            first_out.wait(5)
            seen["after the first left"] = gc.get_threshold()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen["after the first left"][0] == max(SYNC_GC_YOUNG, before[0])
    assert gc.get_threshold() == before
