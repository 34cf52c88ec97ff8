"""The stock push run against the Shopify sandbox: only what changed is pushed; an outage records every
attempt, fails the run (so Airflow retries) and leaves the listings to push again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hub_configs import hub_config, mark_synced
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.outbound import PushIncomplete
from channelhub.stock_push import push_stock
from channelhub.sync import register_config
from connectors.auth import Secret
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from warehouse import catalog


@pytest.fixture(scope="module")
def shop():
    with run_sandbox("shopify", seed=71, clock=Clock.frozen(datetime(2026, 11, 23, tzinfo=UTC))) as sandbox:
        yield sandbox


def shop_channel(engine, shop, code: str, location: str, **settings):
    """Channel ``code`` of the module's Shopify sandbox, registered and seeded from its catalog, with its
    credentials."""
    config = hub_config(code, location=location, conn_id="x", **settings)
    register_config(engine, config)
    channel = config.channel(code)
    seed_from_catalog(engine, channel, shop.world.catalog)
    return channel, ChannelCredentials("x", shop.base_url, secret=Secret(shop.access_token))


def test_push_only_what_changed_and_survive_an_outage(engine, shop):
    channel, credentials = shop_channel(engine, shop, "push_shop", "WH-PUSH")
    mark_synced(engine, channel.code)

    first = push_stock(engine, channel, credentials=credentials)
    listings = len(shop.world.catalog.mapped_variants)
    assert first.changed == listings and first.outcomes == {"pushed": listings}
    assert push_stock(engine, channel, credentials=credentials).changed == 0  # nothing changed since

    sku = shop.world.catalog.mapped_variants[0].sku
    with engine.begin() as conn:
        catalog.receive_stock(conn, sku, "WH-PUSH", 5, f"push-test-more-{sku}")
    shop.faults.update(server_error_rate=1.0)
    try:
        with pytest.raises(PushIncomplete, match="1 of 1 stock pushes to push_shop failed"):
            push_stock(engine, channel, credentials=credentials)
    finally:
        shop.faults.clear()
    with engine.connect() as conn:
        statuses = (
            conn.execute(
                text(
                    "SELECT p.status FROM stock_push_log p JOIN channel_listings cl ON cl.id = p.listing_id "
                    "JOIN skus s ON s.id = cl.sku_id JOIN channels c ON c.id = cl.channel_id "
                    "WHERE c.code = 'push_shop' AND s.code = :sku ORDER BY p.id"
                ),
                {"sku": sku},
            )
            .scalars()
            .all()
        )
    assert statuses == ["pushed", "failed"]

    retried = push_stock(engine, channel, credentials=credentials)  # the next run pushes it after all
    assert retried.changed == 1 and retried.outcomes == {"pushed": 1}


def test_a_second_pusher_of_a_channel_waits_until_the_first_has_recorded(engine, shop):
    """Reads, writes and records of two pushers never interleave (a Retry from the page while the run
    pushes): while one holds the channel's push lock, the other neither reads nor pushes."""
    import threading

    from warehouse.stock_policy import stock_push_lock

    channel, credentials = shop_channel(engine, shop, "lock_shop", "WH-LOCK")
    mark_synced(engine, channel.code)
    sets_before = len(shop.world.overlay.stock_history)
    reports = []
    with stock_push_lock(engine, "lock_shop"):
        pusher = threading.Thread(
            target=lambda: reports.append(push_stock(engine, channel, credentials=credentials))
        )
        pusher.start()
        pusher.join(timeout=1.5)
        assert pusher.is_alive() and reports == []  # waiting for the lock
        assert len(shop.world.overlay.stock_history) == sets_before  # pushed nothing meanwhile
    pusher.join(timeout=60)
    assert not pusher.is_alive() and reports[0].outcomes == {"pushed": reports[0].changed}
    assert len(shop.world.overlay.stock_history) == sets_before + reports[0].changed
    with stock_push_lock(engine, "other_channel"), stock_push_lock(engine, "lock_shop"):
        pass  # another channel's lock is another lock, and a released one is free again


def test_until_the_channel_has_a_good_sync_its_stock_is_only_pushed_down(engine, shop):
    """Units a channel sold since its last good sync are not reserved here yet, so an absolute set could
    offer them again: until its order sync succeeds (never ran, or failing for ``stale_after``), a listing
    the channel shows above its sellable quantity is pushed down and the others are held. After a good sync,
    every listing is pushed."""
    from datetime import timedelta

    from channelhub.platforms import channel_connector
    from channelhub.stock_push import as_push
    from channelhub.sync import sync_is_current, sync_orders
    from warehouse.stock import adjust_stock
    from warehouse.stock_policy import channel_stock

    # Only this test's location counts: the other tests of the module stock the same SKUs elsewhere.
    channel, credentials = shop_channel(
        engine, shop, "stale_shop", "WH-STALE", stock_policy={"locations": ["WH-STALE"]}
    )

    def stock() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                listing.sku: listing.sellable
                for listing in channel_stock(conn, "stale_shop", channel.stock_policy)
            }

    with engine.connect() as conn:
        listings = channel_stock(conn, "stale_shop", channel.stock_policy)
    listed = dict(
        zip(
            (listing.sku for listing in listings),
            channel_connector(channel, credentials).listed_stocks([as_push(x) for x in listings]),
            strict=True,
        )
    )
    down, up = listings[0].sku, listings[1].sku
    with engine.begin() as conn:  # one listing below what the channel shows, one above
        adjust_stock(conn, down, "WH-STALE", listed[down] - 1 - listings[0].sellable, "stale-test-down")
        adjust_stock(conn, up, "WH-STALE", listed[up] + 5 - listings[1].sellable, "stale-test-up")
    sellable = stock()
    lower = {sku for sku, quantity in sellable.items() if quantity < listed[sku]}
    assert down in lower and up not in lower

    sets_before = len(shop.world.overlay.stock_history)
    stale = push_stock(engine, channel, credentials=credentials)
    assert stale.outcomes == {"pushed": len(lower), "held_sync_stale": len(sellable) - len(lower)}
    pushed = {
        shop.world.catalog.variants[s.variant_index].sku: s.available
        for s in shop.world.overlay.stock_history[sets_before:]
    }
    assert pushed == {sku: sellable[sku] for sku in lower}  # down only, to the sellable quantity

    sync_orders(  # a good sync (of a window with no orders: nothing is reserved by it)
        engine, channel, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        credentials=credentials,
    )  # fmt: skip
    with engine.connect() as conn:
        assert sync_is_current(conn, channel)
        later = datetime.now(UTC) + channel.stale_after + timedelta(minutes=1)
        assert not sync_is_current(conn, channel, now=later)  # a sync failing since then would be stale
    synced = push_stock(engine, channel, credentials=credentials)
    assert synced.outcomes == {"pushed": len(sellable) - len(lower)}
    raised = channel_connector(channel, credentials).listed_stocks([as_push(listings[1])])
    assert raised == [sellable[up]]  # raised now that the sync is good
