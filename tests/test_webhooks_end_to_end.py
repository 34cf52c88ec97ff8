"""Every platform that pushes over HTTP, end to end over real HTTP: its sandbox delivers signed webhooks (on
the platform's own wire, with its fault knobs) to the hub's receiver, which lands the orders through the
scheduled sync's code into a real Postgres warehouse.

One contract, parametrized over the registry's pushing platforms (``DECLARATIONS[...].webhooks``):
- a new or changed order is landed once by its webhook, exactly as the scheduled sync would have landed it
  (the sync of the same window afterwards finds nothing new or changed), and one stock asset event follows;
- a duplicated delivery has one effect; a forged one is refused with 401 and the real one still lands;
- a lost webhook is landed by the next scheduled sync (the safety net);
- a receiver SIGKILLed after its inbox write loses nothing: the sweep lands the order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.demo_webhooks import sandbox_credentials, subscribe_sandbox
from channelhub.platforms import channel_connector, get_platform
from channelhub.sync import register_config, sync_orders
from channelhub.webhook_apply import sweep_inbox
from channelhub.webhooks import create_receiver, serving
from platforms.registry import DECLARATIONS
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from warehouse.ingest import Landed

PUSHING = sorted(name for name, declared in DECLARATIONS.items() if declared.webhooks is not None)
# The platform's clock starts a little behind the hub's when the platform's module begins (not at import: the
# suite may reach it many minutes later) and each scenario moves it on by STEP (4 new orders at one per 30 s):
# WeChat signs its deliveries' time, and the hub refuses one more than 10 minutes off its own.
BEHIND = timedelta(minutes=6)
STEP = timedelta(minutes=2)
SECOND = timedelta(seconds=1)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


class Hooked:
    """One platform's sandbox, its channel in the warehouse, and the receiver it delivers to."""

    def __init__(self, platform: str, sandbox: Any, config: Any, config_file: Any, engine: Any) -> None:
        self.platform, self.sandbox, self.config, self.config_file = platform, sandbox, config, config_file
        self.channel = config.channels[0]
        self.engine = engine
        self.connection = sandbox_connection(platform, sandbox.base_url, sandbox.access_token)
        self.calls: list[dict] = []
        self.contract = get_platform(platform).webhook_contract
        self.clock: Clock = sandbox.clock

    def credentials(self, channel: Any = None) -> ChannelCredentials:
        return sandbox_credentials(self.channel, self.sandbox.base_url, self.sandbox.access_token)

    def subscribe(self, url: str) -> None:
        """What an integrator does once: by API where the platform has one, else in its console."""
        subscribe_sandbox(self.channel, self.credentials(), url, self.engine)

    def faults(self, **knobs: float) -> None:
        requests.post(f"{self.sandbox.base_url}/_sandbox/faults", json=knobs, timeout=10).raise_for_status()

    def deliveries(self) -> list[dict]:
        return requests.get(f"{self.sandbox.base_url}/_sandbox/webhooks/deliveries", timeout=10).json()

    def expected(self, start: datetime, end: datetime) -> dict[str, str]:
        """What the scheduled sync of ``[start, end)`` would land: external id -> version (updated time)."""
        platform = get_platform(self.platform)
        connector = channel_connector(self.channel, self.credentials(), engine=self.engine)
        found = {}
        for page in connector.fetch_orders(start, end):
            for payload in page:
                prepared = platform.prepare(payload, self.channel)
                if isinstance(prepared, Landed):
                    found[prepared.canonical.external_id] = prepared.canonical.updated_at.isoformat()
        return found

    def landed(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT o.external_id, o.updated_at FROM orders o JOIN channels c ON c.id = o.channel_id "
                    "WHERE c.code = :c"
                ),
                {"c": self.channel.code},
            )
            return {r.external_id: r.updated_at.isoformat() for r in rows}

    def wait_landed(self, expected: dict[str, str]) -> None:
        """Until every expected order is in the warehouse at its expected version."""
        try:
            wait_for(lambda: expected.items() <= self.landed().items(), what="the pushed orders landed")
        except AssertionError as error:
            missing = {k: (v, self.landed().get(k)) for k, v in expected.items() if self.landed().get(k) != v}
            sent = [d for d in self.deliveries() if d["order_id"] in missing]
            stored = [r for r in self.inbox() if r["order_external_id"] in missing]
            raise AssertionError(
                f"not landed (expected, found): {missing}; deliveries {sent}; inbox {stored}"
            ) from error

    def inbox(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT event_id, status, order_external_id FROM webhook_inbox i "
                    "JOIN channels c ON c.id = i.channel_id WHERE c.code = :c"
                ),
                {"c": self.channel.code},
            )
            return [dict(r._mapping) for r in rows]

    def step(self) -> tuple[datetime, datetime]:
        """Move the platform's clock on: the orders created and changed in (then, now] are what it pushes;
        returned as the window ``[start, end)`` that a sync of the same orders reads."""
        start = self.clock.now() + SECOND
        end = self.clock.advance(STEP) + SECOND
        return start, end

    def sync(self, start: datetime, end: datetime) -> Any:
        return sync_orders(self.engine, self.channel, start, end, credentials=self.credentials())


@pytest.fixture(scope="module", params=PUSHING)
def hooked(request, engine, tmp_path_factory) -> Iterator[Hooked]:
    platform = request.param
    code = f"hook_{platform}"
    now = (datetime.now(UTC) - BEHIND).replace(microsecond=0)
    folder = tmp_path_factory.mktemp(code)
    config_file, config = write_hub_config(
        folder, code, platform, location=f"WH-{platform.upper()}", overlap_minutes=0
    )
    register_config(engine, config)
    with run_sandbox(
        platform, seed=31, start=now - timedelta(hours=2), interval=30, clock=Clock.frozen(now)
    ) as sandbox:
        seed_from_catalog(engine, config.channels[0], sandbox.world.catalog)
        hook = Hooked(platform, sandbox, config, config_file, engine)
        # The history up to the instant of subscribing (a platform pushes what changes after it).
        hook.sync(now - timedelta(hours=2), now + SECOND)
        app = create_receiver(
            engine, config, credentials=hook.credentials, stock_changed=hook.calls.append, sweep_every=3600
        )
        with serving(app) as base_url:
            hook.subscribe(f"{base_url}/webhooks/{code}")
            yield hook


def test_pushed_orders_land_once_exactly_as_the_sync_would(hooked: Hooked) -> None:
    start, end = hooked.step()
    expected = hooked.expected(start, end)
    assert expected, "the window holds no order to push"
    hooked.wait_landed(expected)
    wait_for(lambda: hooked.calls, what="a stock asset event")
    events = [r["event_id"] for r in hooked.inbox()]
    assert len(events) == len(set(events))
    assert all(r["status"] in ("applied", "no_order") for r in hooked.inbox())
    result = hooked.sync(start, end)  # what the safety net then finds
    assert (result.counts.new, result.counts.updated) == (0, 0), result.summary_line()


def test_duplicated_and_forged_deliveries_have_one_effect(hooked: Hooked) -> None:
    hooked.faults(webhook_duplicate_rate=1.0, webhook_forged_rate=1.0)
    try:
        start, end = hooked.step()
        expected = hooked.expected(start, end)
        hooked.wait_landed(expected)
        deliveries = [d for d in hooked.deliveries() if d["outcome"] in ("forged", "duplicate")]
    finally:
        hooked.faults(webhook_duplicate_rate=0.0, webhook_forged_rate=0.0)
    assert {d["outcome"] for d in deliveries} == {"forged", "duplicate"}
    assert all(d["status"] == 401 for d in deliveries if d["outcome"] == "forged")
    assert all(d["status"] == 200 for d in deliveries if d["outcome"] == "duplicate")
    result = hooked.sync(start, end)
    assert (result.counts.new, result.counts.updated) == (0, 0), result.summary_line()


def test_a_lost_webhook_is_landed_by_the_scheduled_sync(hooked: Hooked) -> None:
    hooked.faults(webhook_lost_rate=1.0)
    try:
        before = len(hooked.inbox())
        start, end = hooked.step()
        expected = hooked.expected(start, end)
        wait_for(
            lambda: any(d["outcome"] == "lost" for d in hooked.deliveries()[-len(expected) :]),
            what="the deliveries lost",
        )
        time.sleep(0.5)
        assert len(hooked.inbox()) == before
        assert not any(external in hooked.landed() for external in set(expected) - set(hooked.landed()))
        result = hooked.sync(start, end)
    finally:
        hooked.faults(webhook_lost_rate=0.0)
    assert result.counts.new + result.counts.updated > 0
    assert expected.items() <= hooked.landed().items()


def test_a_receiver_killed_after_its_inbox_write_loses_nothing(hooked: Hooked, database_url: str) -> None:
    """``channelhub webhooks serve --no-apply`` (a process of its own) stores and answers, then is SIGKILLed;
    the sweep lands what it stored."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_CHANNELS_CONFIG": str(hooked.config_file),
        f"AIRFLOW_CONN_{hooked.channel.conn_id.upper()}": json.dumps(hooked.connection),
    }
    code = "import sys; from channelhub.cli import main; sys.exit(main(sys.argv[1:]))"
    serve = subprocess.Popen(
        [sys.executable, "-c", code, "webhooks", "serve", "--no-apply", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks/{hooked.channel.code}"
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/webhooks/nobody"), timeout=60, what="serve")
        hooked.subscribe(url)
        before = len(hooked.inbox())
        start, end = hooked.step()
        expected = hooked.expected(start, end)
        fresh = {k: v for k, v in expected.items() if hooked.landed().get(k) != v}
        wait_for(lambda: len(hooked.inbox()) > before, what="the inbox write")
        time.sleep(1.0)  # every delivery of the step stored
    finally:
        serve.send_signal(signal.SIGKILL)
        serve.wait(10)
    pending = [r for r in hooked.inbox() if r["status"] == "pending"]
    assert pending and not fresh.items() <= hooked.landed().items()
    report = sweep_inbox(
        hooked.engine, hooked.config, older_than=timedelta(0), credentials=hooked.credentials
    )
    assert report.claimed >= len(pending)
    assert expected.items() <= hooked.landed().items()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 404
    except requests.ConnectionError:
        return False
