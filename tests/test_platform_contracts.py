"""Issue 19: the contract every platform keeps, one test per contract, each run on every platform of the
registry (``platforms.registry.PLATFORM_NAMES``), so a platform's own test files hold only its quirks.

The tests use only what the hub defines for every platform: the runtime registry (``channelhub.platforms``:
schema check, mapping, the ``ChannelConnector`` protocol), the sandbox server (``run_sandbox``,
``sandbox_connection``), the sandbox world and its overlay, the fault knobs every sandbox honours
(``sandbox.faults``), the warehouse, and what platforms/README.md asks of every sandbox ("What a sandbox must
offer": ``app.state.renderer.render(state)``, ``app.state.lists_order`` where a platform lists only some
world orders, ``/_sandbox/state``'s ``requests.api_requests``). Expected results come from the world, never
from the connector under test.

One sandbox per platform for the whole module (a frozen clock, a world with a few hundred orders); each test
takes channels of its own in the session's warehouse, and every test leaves the faults cleared.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hub_configs import hub_config
from jsonschema import Draft202012Validator
from sqlalchemy import Engine, select, text

from canonical.order import CanonicalOrder, canonical_order_schema
from channelhub.config import ChannelConfig
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.platforms import PLATFORMS, ChannelConnector, Platform, Skipped
from channelhub.stock_push import as_push
from channelhub.sync import ORDERS_STREAM, register_config, sync_orders
from connectors.auth import Secret
from connectors.carriers import CARRIERS, carrier_key
from connectors.errors import AuthError
from connectors.pushes import ShipmentLine, ShipmentPush
from platforms.registry import DECLARATIONS, PLATFORM_NAMES
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox, sandbox_connection
from sandbox.world import OrderState
from warehouse import sync_state
from warehouse.ingest import Landed
from warehouse.models import platform_tokens
from warehouse.stock import ledger_drift, oversold
from warehouse.stock_policy import channel_stock

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
WORLD_START = NOW - timedelta(hours=12)
INTERVAL_SECONDS = 300  # ~140 orders over the world's 12 hours
WINDOW = (NOW - timedelta(hours=6), NOW - timedelta(hours=1))
PAGE_SIZE = 10  # many pages: many requests for the paging faults to hit
# A shorter window where every refused request costs a wait (a platform's backoff, WeChat's next minute).
BURST_WINDOW = (NOW - timedelta(hours=2), NOW - timedelta(hours=1))
BURST_PAGE_SIZE = 3  # a few more requests for the burst to hit
GET_ORDER_SAMPLE = 12  # orders read one by one (a platform may allow few calls a second)
CANONICAL = Draft202012Validator(canonical_order_schema())


@dataclass
class Shop:
    """One platform's sandbox and what the tests need to talk to it as the hub would."""

    name: str
    platform: Platform
    sandbox: RunningSandbox
    credentials: ChannelCredentials
    engine: Engine

    def channel(self, purpose: str, **settings: Any) -> ChannelConfig:
        """A channel of its own in the warehouse (and a location of its own), the catalog mapped as an
        integrator would: what it lands never mixes with another test's."""
        code = f"ct_{self.name}_{purpose}"
        settings = {"overlap_minutes": 0, "page_size": PAGE_SIZE, **settings}
        config = hub_config(code, self.name, location=f"WH-{code}", **settings)
        register_config(self.engine, config)
        seed_from_catalog(self.engine, config.channel(code), self.sandbox.world.catalog)
        return config.channel(code)

    def connector(self, channel: ChannelConfig) -> ChannelConnector:
        return self.platform.connector(self.credentials, channel)

    def render(self, state: OrderState) -> dict[str, Any]:
        return self.sandbox.app.state.renderer.render(state)

    def external_id(self, state: OrderState) -> str:
        external_id = self.platform.external_id(self.render(state))
        assert external_id is not None, f"{self.name}: the rendered order has no {self.platform.id_field}"
        return external_id

    def lists(self, state: OrderState) -> bool:
        """Whether the platform lists this world order at all: a sandbox whose platform never lists some
        orders says which through ``app.state.lists_order`` (JD lists an order once it is paid); without
        it every world order is listed."""
        lists_order = getattr(self.sandbox.app.state, "lists_order", None)
        return lists_order is None or bool(lists_order(state))

    def world_window(self, start: datetime, end: datetime) -> dict[str, OrderState]:
        """The orders the world holds updated in ``[start, end)`` now and the platform lists, by the
        platform's id for them."""
        last = end - timedelta(seconds=1)  # world times are whole seconds, its bounds inclusive
        return {
            self.external_id(state): state
            for state in self.sandbox.world.updated_between(start, last)
            if self.lists(state)
        }

    def requests(self) -> dict[str, int]:
        answer = requests.get(f"{self.sandbox.base_url}/_sandbox/state", timeout=10)
        return answer.json()["requests"]

    def faults(self, **knobs: Any) -> None:
        self.sandbox.faults.update(**knobs)


def quiet_end(shop: Shop, end: datetime) -> datetime:
    """``end`` moved on to the first second no order's update falls on: a platform may read a window's end
    inclusively (the hub widens a window at the edge, ``connectors.windows``), so an order updated exactly at
    the end may come back with the window; a quiet end keeps the comparison exact."""
    while any(True for _ in shop.sandbox.world.updated_between(end, end)):
        end += timedelta(seconds=1)
    return end


@pytest.fixture(scope="module", params=PLATFORM_NAMES, ids=PLATFORM_NAMES)
def shop(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Shop]:
    name = request.param
    with run_sandbox(
        name,
        seed=1900 + PLATFORM_NAMES.index(name),
        start=WORLD_START,
        interval=INTERVAL_SECONDS,
        clock=Clock.frozen(NOW),
        leak_per_second=100.0,  # a rate budget the tests do not wait on (throttling is a fault below)
    ) as sandbox:
        conn = sandbox_connection(name, sandbox.base_url, sandbox.access_token)
        credentials = ChannelCredentials(
            f"ct_{name}",
            conn["host"],
            login=conn.get("login"),
            secret=Secret(conn["password"]),
            extra=conn.get("extra", {}),
        )
        yield Shop(name, PLATFORMS[name], sandbox, credentials, engine)


@pytest.fixture(autouse=True)
def faults_cleared(shop: Shop) -> Iterator[None]:
    shop.sandbox.faults.clear()
    shop.sandbox.clock.set(NOW)
    yield
    shop.sandbox.faults.clear()
    shop.sandbox.clock.set(NOW)


def landed_ids(engine: Engine, channel: ChannelConfig) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT o.external_id FROM orders o JOIN channels c ON c.id = o.channel_id"
                    " WHERE c.code = :code ORDER BY 1"
                ),
                {"code": channel.code},
            ).scalars()
        )


def open_exceptions(engine: Engine, channel: ChannelConfig) -> list[tuple[str, str | None, str | None]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT e.reason, e.external_id, e.sku FROM exceptions e JOIN channels c"
                    " ON c.id = e.channel_id WHERE c.code = :code AND e.status = 'open' ORDER BY 1, 2, 3"
                ),
                {"code": channel.code},
            )
        ]


def resolved_units(engine: Engine, channel: ChannelConfig) -> Counter[tuple[str, str]]:
    """Units ordered per (order, internal SKU) over the lines the warehouse resolved to a SKU."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.external_id, s.code, sum(l.quantity) FROM order_lines l"
                " JOIN orders o ON o.id = l.order_id JOIN channels c ON c.id = o.channel_id"
                " JOIN skus s ON s.id = l.sku_id WHERE c.code = :code GROUP BY 1, 2"
            ),
            {"code": channel.code},
        )
        return Counter({(external_id, sku): int(units) for external_id, sku, units in rows})


def fetch(shop: Shop, channel: ChannelConfig, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return [payload for page in shop.connector(channel).fetch_orders(start, end) for payload in page]


def orders_of(shop: Shop, payloads: list[dict[str, Any]], channel: ChannelConfig) -> dict[str, Any]:
    """External id -> what the registry's check-and-map made of each payload (Skipped ones left out)."""
    prepared = (shop.platform.prepare(payload, channel) for payload in payloads)
    return {
        (p.canonical.external_id if isinstance(p, Landed) else p.external_id): p
        for p in prepared
        if not isinstance(p, Skipped)
    }


# -- pull -----------------------------------------------------------------------------------------------


def test_a_window_fetches_exactly_the_orders_the_world_updated_in_it(shop: Shop) -> None:
    start, end = WINDOW[0], quiet_end(shop, WINDOW[1])
    want = shop.world_window(start, end)
    channel = shop.channel("pull")
    payloads = fetch(shop, channel, start, end)
    got = orders_of(shop, payloads, channel)
    assert len(want) > 2 * PAGE_SIZE  # several pages
    assert sorted(got) == sorted(want)
    assert len(got) == len(payloads) - sum(
        isinstance(shop.platform.prepare(p, channel), Skipped) for p in payloads
    ), "an order came twice"


def test_every_payload_passes_the_schema_and_maps_to_what_the_world_holds(shop: Shop) -> None:
    channel = shop.channel("map")
    start, end = WINDOW[0], quiet_end(shop, WINDOW[1])
    want = shop.world_window(start, end)
    for external_id, prepared in orders_of(shop, fetch(shop, channel, start, end), channel).items():
        assert isinstance(prepared, Landed), f"{external_id}: {prepared}"
        order: CanonicalOrder = prepared.canonical
        state = want[external_id]
        CANONICAL.validate(order.to_json())
        assert order.platform == shop.name
        assert order.updated_at == state.updated_at, external_id
        assert order.created_at == state.order.created_at, external_id
        assert sum(line.quantity for line in order.lines) == sum(
            line.quantity for line in state.order.lines
        ), external_id


def test_get_order_returns_the_payload_the_window_returned(shop: Shop) -> None:
    channel = shop.channel("get")
    connector = shop.connector(channel)
    orders = [p for p in fetch(shop, channel, *WINDOW) if not isinstance(shop.platform.prepare(p), Skipped)]
    step = max(1, len(orders) // GET_ORDER_SAMPLE)
    sample = orders[::step]  # spread over the window's pages
    assert len(sample) >= min(GET_ORDER_SAMPLE, len(orders)) > 0
    for payload in sample:
        external_id = shop.platform.external_id(payload)
        assert external_id is not None
        assert connector.get_order(external_id) == payload, external_id


def test_a_sync_lands_the_window_and_queues_only_what_the_world_explains(shop: Shop) -> None:
    """Every order of the window lands; each line of a mapped variant resolves to the variant's SKU (through
    the merchant SKU or the channel's ids, whichever the platform gives); the only exceptions are lines of
    variants the merchant never mapped (the world's ``unmapped`` variants); stock stays consistent; a second
    run changes nothing."""
    start, end = WINDOW[0], quiet_end(shop, WINDOW[1])
    want = shop.world_window(start, end)
    channel = shop.channel("sync")
    first = sync_orders(shop.engine, channel, start, end, credentials=shop.credentials)
    assert landed_ids(shop.engine, channel) == sorted(want)
    unmapped = {v.index for v in shop.sandbox.world.catalog.unmapped_variants}
    explained = {
        external_id
        for external_id, state in want.items()
        if any(line.variant.index in unmapped for line in state.order.lines)
    }
    queued = open_exceptions(shop.engine, channel)
    assert {reason for reason, _, _ in queued} <= {"unknown_sku"}, queued
    assert {external_id for _, external_id, _ in queued} == explained
    world_units: Counter[tuple[str, str]] = Counter()
    for external_id, state in want.items():
        for line in state.order.lines:
            if line.variant.index not in unmapped:
                world_units[(external_id, line.variant.sku)] += line.quantity
    assert resolved_units(shop.engine, channel) == world_units
    with shop.engine.connect() as conn:
        assert oversold(conn) == 0 and ledger_drift(conn) == []
    again = sync_orders(shop.engine, channel, start, end, credentials=shop.credentials)
    assert again.counts.new == again.counts.updated == 0
    assert again.counts.unchanged == first.counts.new + first.counts.updated + first.counts.unchanged


# -- paging faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [
        {"duplicate_page_rate": 0.25},
        {"shuffle_page_rate": 1.0},
    ],
    ids=["duplicated", "reordered"],
)
def test_duplicated_and_reordered_pages_land_the_same_set(shop: Shop, knobs: dict[str, float]) -> None:
    start, end = WINDOW[0], quiet_end(shop, WINDOW[1])
    want = shop.world_window(start, end)
    channel = shop.channel("paging_" + "".join(name[0] for name in sorted(knobs)))
    shop.faults(seed=7, **knobs)
    sync_orders(shop.engine, channel, start, end, credentials=shop.credentials)
    shop.sandbox.faults.clear()
    assert landed_ids(shop.engine, channel) == sorted(want)


def answered(shop: Shop) -> int:
    """Every request the sandbox answered, refused ones included: its counters (``/_sandbox/state``) name
    them per platform (``api_requests``, ``throttled``, ``injected_errors``, ...); their total only grows."""
    return sum(shop.requests().values())


@pytest.mark.parametrize(
    "knobs", [{"server_error_rate": 0.2}, {"rate_limit_storm": 0.2}], ids=["5xx", "throttled"]
)
def test_a_burst_of_server_errors_or_throttling_is_retried(shop: Shop, knobs: dict[str, float]) -> None:
    """The sync finishes in one run and lands the whole window while the sandbox refuses some requests; it
    answered more requests than a clean sync of the same window needs, so the refused ones were sent again.
    The draws are seeded: a seed whose draws happen to spare every request proves nothing, so the next seed
    is tried (each such try is a complete, clean sync)."""
    start, end = BURST_WINDOW[0], quiet_end(shop, BURST_WINDOW[1])
    want = shop.world_window(start, end)
    name = "".join(word[0] for word in "_".join(knobs).split("_"))
    before = answered(shop)
    clean_channel = shop.channel(f"clean_{name}", page_size=BURST_PAGE_SIZE)
    sync_orders(shop.engine, clean_channel, start, end, credentials=shop.credentials)
    clean = answered(shop) - before
    assert clean > 2 and landed_ids(shop.engine, clean_channel) == sorted(want)
    # A platform may say "come back next minute" (WeChat's 45011), timed by its own clock: stand that clock a
    # second before a minute, so a throttled request waits a second or two here, not a minute.
    shop.sandbox.clock.set(NOW - timedelta(seconds=1))
    for seed in range(11, 21):
        channel = shop.channel(f"burst_{name}_{seed}", page_size=BURST_PAGE_SIZE)
        shop.faults(seed=seed, **knobs)
        before = answered(shop)
        sync_orders(shop.engine, channel, start, end, credentials=shop.credentials)
        faulty = answered(shop) - before
        shop.sandbox.faults.clear()
        assert landed_ids(shop.engine, channel) == sorted(want), f"seed {seed}"
        if faulty > clean:
            break
    assert faulty > clean, "no seed's draws refused a request"


# -- credentials ------------------------------------------------------------------------------------------


def shared_tokens(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(platform_tokens.c.sealed)).scalars())


def test_expiring_tokens_are_renewed_and_the_sync_finishes(shop: Shop) -> None:
    """Tokens expire while the sync pages (``token_expiry_rate``): a platform with short-lived tokens
    (declared ``expiring_tokens``) must fetch new ones through the warehouse's shared store and finish the
    run; on static credentials the knob has nothing to expire and the run is simply complete."""
    start, end = WINDOW[0], quiet_end(shop, WINDOW[1])
    want = shop.world_window(start, end)
    channel = shop.channel("tokens")
    # A first run takes the token every later run shares (a clean one, outside the window under test).
    sync_orders(shop.engine, channel, start - timedelta(hours=1), start, credentials=shop.credentials)
    tokens_before = shared_tokens(shop.engine)
    shop.faults(seed=13, token_expiry_rate=0.3)
    sync_orders(shop.engine, channel, start, end, credentials=shop.credentials)
    shop.sandbox.faults.clear()
    assert set(want) <= set(landed_ids(shop.engine, channel))
    renewed = shared_tokens(shop.engine) - tokens_before
    if DECLARATIONS[shop.name].expiring_tokens:
        assert renewed, "tokens expired, yet no new token was stored"
    else:
        assert not renewed


def test_revoked_credentials_fail_with_an_auth_error_and_nothing_half_lands(shop: Shop) -> None:
    start, end = WINDOW[0], quiet_end(shop, WINDOW[1])
    want = shop.world_window(start, end)
    channel = shop.channel("revoked")
    middle = start + (end - start) / 2
    sync_orders(shop.engine, channel, start, middle, credentials=shop.credentials)
    landed_before = landed_ids(shop.engine, channel)
    with shop.engine.connect() as conn:
        watermark = sync_state.get_watermark(conn, channel.code, ORDERS_STREAM)
    shop.faults(credentials_revoked=True)
    with pytest.raises(AuthError) as refused:
        sync_orders(shop.engine, channel, middle, end, credentials=shop.credentials)
    shop.sandbox.faults.clear()
    assert refused.value.platform, "the error names no platform"
    assert shop.credentials.secret.reveal() not in str(refused.value)
    assert landed_ids(shop.engine, channel) == landed_before
    with shop.engine.connect() as conn:
        assert sync_state.get_watermark(conn, channel.code, ORDERS_STREAM) == watermark
    sync_orders(shop.engine, channel, middle, end, credentials=shop.credentials)
    assert landed_ids(shop.engine, channel) == sorted(want)


# -- shipment push ----------------------------------------------------------------------------------------


def carrier_alias(key: str) -> str:
    """How a warehouse might write the platform's demo carrier: not the hub's key itself but another of its
    names, lower-cased, so the push only finds the platform's code through ``connectors.carriers``."""
    names = next(carrier.names for carrier in CARRIERS if carrier.key == key)
    alias = max(names, key=lambda name: (name != key, len(name))).lower()
    assert carrier_key(alias) == key
    return alias


def tracking_number(carrier: str, serial: int) -> str:
    """The demo's tracking numbers (``channelhub.demo``): the form every sandbox takes for its carrier."""
    return f"1Z999AA1{serial:010d}" if carrier == "UPS" else f"SF10{serial:010d}"


def shipment(order: CanonicalOrder, carrier: str, serial: int) -> ShipmentPush:
    lines = tuple(
        ShipmentLine(
            line.external_line_id,
            line.quantity - line.shipped_quantity - line.refunded_quantity,
            line.channel_product_id,
            line.channel_variant_id,
        )
        for line in order.lines
        if line.quantity - line.shipped_quantity - line.refunded_quantity > 0
    )
    return ShipmentPush(
        external_order_id=order.external_id,
        shipment_key=f"contract-{order.external_id}",
        carrier=carrier,
        tracking_number=tracking_number(carrier_key(carrier) or carrier, serial),
        lines=lines,
        shipped_at=NOW,
        completes_order=True,
    )


def pushed_fulfillments(shop: Shop, state: OrderState) -> list[Any]:
    return [
        event.fulfillment
        for event in shop.sandbox.world.overlay.events_for(state.order.index)
        if event.fulfillment is not None
    ]


def test_a_shipment_is_recorded_once_and_an_unknown_order_is_a_rejection(shop: Shop) -> None:
    channel = shop.channel("ship")
    connector = shop.connector(channel)
    want = shop.world_window(*WINDOW)
    orders = {
        external_id: prepared.canonical
        for external_id, prepared in orders_of(shop, fetch(shop, channel, *WINDOW), channel).items()
        if isinstance(prepared, Landed)
    }
    ready = [
        order
        for order in orders.values()
        if order.payment_status == "paid"
        and order.fulfillment_status == "unfulfilled"
        and not order.cancelled
        and not pushed_fulfillments(shop, want[order.external_id])
    ]
    assert ready, "the window holds no paid order waiting to ship"
    order = ready[0]
    carrier = carrier_alias(DECLARATIONS[shop.name].demo_carrier)
    push = shipment(order, carrier, serial=PLATFORM_NAMES.index(shop.name))

    first = connector.push_shipment(push)
    assert first.status == "pushed", first
    recorded = pushed_fulfillments(shop, want[order.external_id])
    assert [f.tracking_number for f in recorded] == [push.tracking_number]
    assert sum(qty for f in recorded for _, qty in f.lines) == sum(line.quantity for line in push.lines)

    again = connector.push_shipment(push)
    assert again.status == "already_done", again
    assert len(pushed_fulfillments(shop, want[order.external_id])) == 1

    # An order the platform does not have: one of the world's next orders, not created yet (a well-formed
    # id), the first the platform would list once created (JD renders no never-paid order).
    world = shop.sandbox.world
    future = next(
        state
        for index in range(world.order_count() + 50, world.order_count() + 100)
        if (state := world.state(index, NOW + timedelta(days=2))) is not None and shop.lists(state)
    )
    ghost = shop.platform.prepare(shop.render(future), channel)
    assert isinstance(ghost, Landed)
    refused = connector.push_shipment(shipment(ghost.canonical, carrier, serial=99))
    assert refused.status == "rejected" and refused.detail, refused
    assert world.overlay.events_for(future.order.index) == ()


# -- stock push -------------------------------------------------------------------------------------------


def test_set_stock_then_listed_stock_reads_the_value_back(shop: Shop) -> None:
    channel = shop.channel("stock")
    connector = shop.connector(channel)
    with shop.engine.connect() as conn:
        listings = channel_stock(conn, channel.code, channel.stock_policy)
    assert listings
    sets_before = len(shop.sandbox.world.overlay.stock_history)
    for number, listing in enumerate(listings[:3]):
        push = dataclasses.replace(as_push(listing), quantity=37 + number)
        result = connector.set_stock(push)
        assert result.status == "pushed", (listing, result)
        assert connector.listed_stock(push) == 37 + number
    history = shop.sandbox.world.overlay.stock_history[sets_before:]
    assert [entry.available for entry in history][-3:] == [37, 38, 39]


# -- channelhub map ---------------------------------------------------------------------------------------


def test_channelhub_map_prints_the_canonical_order_of_a_rendered_payload(shop: Shop, tmp_path: Path) -> None:
    channel = shop.channel("cli")
    connector = shop.connector(channel)
    want = shop.world_window(*WINDOW)
    external_id = sorted(want)[0]
    payload = connector.get_order(external_id)
    file = tmp_path / f"{shop.name}.json"
    file.write_text(json.dumps(payload, ensure_ascii=False))
    done = subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", shop.name, str(file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    CANONICAL.validate(printed)
    prepared = shop.platform.prepare(payload)
    assert isinstance(prepared, Landed)
    assert printed == json.loads(json.dumps(prepared.canonical.to_json(), default=str))
    assert printed["external_id"] == external_id and printed["platform"] == shop.name
