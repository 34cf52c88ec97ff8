"""Youzan's own sync quirk: twenty hub processes of one channel sharing one token. (A window landing
completely, resolved and idempotent is a contract every platform keeps: tests/test_platform_contracts.py.)"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier

import requests
from hub_configs import hub_config, mark_synced
from sqlalchemy import create_engine, text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.stock_push import push_stock
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from sandbox import youzan as sandbox_youzan
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from warehouse.catalog import receive_stock

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


# -- twenty processes of one channel, one token ---------------------------------------------------------

PROCESSES = 20
SHARED = "yz_shared"
PRELOAD = ["channelhub.demo", "channelhub.stock_push", "channelhub.sync", "sandbox.server", "requests"]


def shared_config():
    return hub_config(SHARED, "youzan", location="WH-YZS", overlap_minutes=0)


def shared_credentials(base_url: str, secret: str) -> ChannelCredentials:
    return ChannelCredentials(
        SHARED,
        base_url,
        login=sandbox_youzan.SANDBOX_LOGIN,
        secret=Secret(secret),
        extra={"kdt_id": str(sandbox_youzan.SANDBOX_KDT_ID), "requests_per_second": 1000},
    )


def sync_or_push(job: str, database_url: str, base_url: str, secret: str, start: Barrier) -> None:
    """One OS process of the hub: a sync window or a stock push of the shared channel, through
    ``channel_connector(..., engine=)`` (inside ``sync_orders`` / ``push_stock``), started with the others."""
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    channel = shared_config().channel(SHARED)
    credentials = shared_credentials(base_url, secret)
    start.wait(timeout=60)
    try:
        if job == "sync":
            sync_orders(engine, channel, NOW - timedelta(hours=1), NOW, credentials=credentials)
        else:
            push_stock(engine, channel, credentials=credentials)
    finally:
        engine.dispose()


def test_twenty_processes_of_one_channel_fetch_one_token_per_expiry(fresh_database_url):
    """20 processes (10 syncs, 10 stock pushes) of one channel start together against one sandbox and one
    warehouse: one token is fetched, not twenty (Youzan hands back the live token for ``refresh: false``,
    and the warehouse store makes one process ask for all). The token then expires (4202), and later is
    forgotten (4203, as after a newer one replaced it): each time the processes renew it once."""
    engine = create_engine(fresh_database_url)
    # Forked from one server that imported the hub once: twenty fresh interpreters importing it each took
    # longer than the rounds themselves on two cores. (This module itself is imported in each child: the
    # server does not see the tests folder.)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with run_sandbox(
        "youzan", seed=23, start=NOW - timedelta(hours=2), interval=300, clock=Clock.frozen(NOW)
    ) as shop:
        config = shared_config()
        register_config(engine, config)
        seed_from_catalog(engine, config.channel(SHARED), shop.world.catalog)
        mark_synced(engine, SHARED)  # pushes of the first round need not wait for its syncs

        def run_all() -> dict[str, int]:
            """Every process started at once; the sandbox's token counters of the round."""
            before = requests.get(f"{shop.base_url}/_sandbox/state", timeout=10).json()["requests"]
            start = context.Barrier(PROCESSES)
            jobs = ["sync" if n % 2 else "push" for n in range(PROCESSES)]
            processes = [
                context.Process(
                    target=sync_or_push,
                    args=(job, fresh_database_url, shop.base_url, shop.access_token, start),
                )
                for job in jobs
            ]
            for process in processes:
                process.start()
            for process in processes:
                process.join(timeout=120)
            assert [p.exitcode for p in processes] == [0] * PROCESSES
            after = requests.get(f"{shop.base_url}/_sandbox/state", timeout=10).json()["requests"]
            return {name: after.get(name, 0) - before.get(name, 0) for name in after}

        def more_stock(round_: int) -> None:  # every listing changes: every push process has work
            with engine.begin() as conn:
                for variant in shop.world.catalog.variants:
                    receive_stock(conn, variant.sku, "WH-YZS", 1, f"receive:round{round_}:{variant.sku}")

        first = run_all()
        assert first["token_requests"] == 1 and first["tokens_issued"] == 1
        assert first["unauthorized"] == 0 and first["stock_sets"] >= len(shop.world.catalog.variants)

        shop.app.state.expire_tokens()
        more_stock(2)
        expired = run_all()
        assert expired["token_requests"] == 1 and expired["tokens_issued"] == 1
        assert 1 <= expired["unauthorized"] <= PROCESSES  # each process refused once at most, then replays

        shop.app.state.revoke_tokens()
        more_stock(3)
        revoked = run_all()
        assert revoked["token_requests"] == 1 and revoked["tokens_issued"] == 1
        assert 1 <= revoked["unauthorized"] <= PROCESSES

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(renewals) FROM platform_tokens")).one() == (1, 2)
    engine.dispose()
