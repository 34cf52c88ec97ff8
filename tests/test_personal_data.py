"""Issue 17, item 7: buyers' personal data is kept minimal, and blanked once their order has been closed long
enough.

Every platform of the registry, against its sandbox and a warehouse database of this module's own (the
retention job is hub-wide: it must not blank other modules' orders): raw payloads are stored without what
fulfilment never needs and with what it does; the same payload synced twice is one raw row; a payload
queued from its masked copy lands on retry; retention blanks closed orders past the period and nothing
else, reruns to nothing, leaves an order whose version comes back unchanged blank, takes a new version
again, and masks the payloads of orders that never landed once their exceptions have been closed as long.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hub_configs import hub_config, hub_document
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from canonical.order import MappingError
from channelhub import db
from channelhub.config import ChannelConfig, HubConfig
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.exception_ops import retry_exceptions
from channelhub.platforms import PLATFORMS, Platform, channel_connector, get_platform
from channelhub.retention import run_retention
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from mappings.common import MASK
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from warehouse import exceptions as exception_queue
from warehouse.ingest import Landed, Rejected, ingest_orders
from warehouse.models import CLOSED_ORDER
from warehouse.testing import Shop, make_line, make_order

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=8)
DAYS = 30
FIXTURES = Path(__file__).parent / "fixtures"
# Keys whose text is personal whatever the platform declares (a check independent of the declarations).
PERSONAL_KEY = re.compile(r"(^|_)(email|openid|unionid|open_id|ip|ip_address|user_agent|nickname)$")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


@pytest.fixture(scope="module")
def warehouse_url(pg_server_url: str) -> Iterator[str]:
    from conftest import create_test_database

    url = create_test_database(pg_server_url)
    yield url
    db.drop_database(pg_server_url, make_url(url).database)


@pytest.fixture(scope="module")
def warehouse(warehouse_url: str) -> Iterator[Engine]:
    engine = create_engine(warehouse_url)
    yield engine
    engine.dispose()


@dataclass
class Sandbox:
    platform: Platform
    running: Any
    credentials: ChannelCredentials

    def channel(self, engine: Engine, code: str) -> tuple[HubConfig, ChannelConfig]:
        location = f"WH-{code.upper()}"
        config = hub_config(code, self.platform.name, location=location, overlap_minutes=0, page_size=50)
        register_config(engine, config)
        seed_from_catalog(engine, config.channel(code), self.running.world.catalog)
        return config, config.channel(code)

    def originals(self, channel: ChannelConfig) -> dict[str, dict]:
        """The window's payloads as the platform serves them (the sandbox's clock stands still)."""
        connector = channel_connector(channel, self.credentials)
        pages = connector.fetch_orders(START, NOW)
        return {self.platform.external_id(payload): payload for page in pages for payload in page}


@pytest.fixture(scope="module", params=sorted(PLATFORMS))
def sandbox(request) -> Iterator[Sandbox]:
    name = request.param
    with run_sandbox(
        name, seed=21, start=START, interval=600, clock=Clock.frozen(NOW), leak_per_second=100.0
    ) as running:
        conn = sandbox_connection(name, running.base_url, running.access_token)
        credentials = ChannelCredentials(
            name, conn["host"], conn.get("login"), Secret(conn["password"]), conn.get("extra", {})
        )
        yield Sandbox(get_platform(name), running, credentials)


def values_at(payload: Any, path: str) -> list[Any]:
    """The values at a declared path (``*``: every item of a list); none where the payload lacks it."""
    found = [payload]
    for part in path.split("/"):
        if part == "*":
            found = [item for value in found if isinstance(value, list) for item in value]
        else:
            found = [value[part] for value in found if isinstance(value, dict) and part in value]
    return found


def holds_nothing(value: Any) -> bool:
    if isinstance(value, dict):
        return all(holds_nothing(v) for v in value.values())
    if isinstance(value, list):
        return all(holds_nothing(v) for v in value)
    return value in (MASK, "", None) or isinstance(value, bool)


def personal_texts(node: Any, key: str = "") -> list[str]:
    """Texts under keys that are personal by name (e-mail, openid, IP, user agent, nickname), unmasked."""
    if isinstance(node, dict):
        return [text for k, v in node.items() for text in personal_texts(v, k)]
    if isinstance(node, list):
        return [text for item in node for text in personal_texts(item, key)]
    return [node] if isinstance(node, str) and node not in ("", MASK) and PERSONAL_KEY.search(key) else []


def stored(engine: Engine, code: str) -> dict[str, list[dict]]:
    """{external_id: [raw payload row, ...]} of the channel."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.id, r.external_id, r.payload, r.personal_data_erased_at FROM raw_payloads r "
                "JOIN channels c ON c.id = r.channel_id WHERE c.code = :c ORDER BY r.id"
            ),
            {"c": code},
        ).all()
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row.external_id, []).append(dict(row._mapping))
    return found


def orders_of(engine: Engine, code: str) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.external_id, o.updated_at, o.total, o.customer, o.shipping_address, "
                f"o.raw_payload_id, o.personal_data_erased_at, ({CLOSED_ORDER}) AS closed "
                "FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c"
            ),
            {"c": code},
        ).all()
    return {row.external_id: dict(row._mapping) for row in rows}


def as_json(value: Any) -> dict | None:
    """A canonical customer or address as the warehouse holds it (orders.customer, .shipping_address)."""
    return None if value is None else asdict(value)


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_real_payloads_stored_masked_map_to_the_same_order_but_the_buyer(name):
    """Every fixture payload of the platform: the stored copy passes the schema and maps to the same order
    (lines, money, statuses, shipping address) without the buyer's details; the erased copy keeps only the
    address's country, province, city and district."""
    platform = get_platform(name)
    checked = 0
    for path in sorted((FIXTURES / name).glob("*.json")):
        try:
            payloads = platform.unwrap(json.loads(path.read_text()))
        except MappingError:
            continue  # not an order document (a list of ids, an error page)
        for payload in payloads:
            landed = platform.prepare(payload)
            if not isinstance(landed, Landed):
                continue
            checked += 1
            again = platform.prepare(landed.raw)
            assert isinstance(again, Landed), (path.name, again)
            original = landed.canonical.to_json()
            assert {**again.canonical.to_json(), "customer": None} == {**original, "customer": None}
            if again.canonical.customer is not None:
                assert again.canonical.customer.email is None and again.canonical.customer.name is None
            erased = platform.prepare(platform.erased(payload))
            assert isinstance(erased, Landed), (path.name, erased)
            address, was = erased.canonical.shipping_address, landed.canonical.shipping_address
            if address is not None:
                for field in ("name", "phone", "address1", "address2", "postal_code"):
                    assert getattr(address, field) is None, (path.name, field)
                assert (address.country_code, address.province, address.city) == (
                    was.country_code,
                    was.province,
                    was.city,
                )
    assert checked >= 2


def test_a_sync_stores_payloads_without_personal_data_but_with_what_fulfilment_needs(warehouse, sandbox):
    platform = sandbox.platform
    code = f"pii_store_{platform.name}"
    _, channel = sandbox.channel(warehouse, code)
    first = sync_orders(warehouse, channel, START, NOW, credentials=sandbox.credentials)
    originals = sandbox.originals(channel)
    kept = stored(warehouse, code)
    assert first.counts.new > 10 and len(kept) == first.counts.new  # one raw row per order landed

    masked = fulfilment = 0
    for external_id, [row] in kept.items():
        original, payload = originals[external_id], row["payload"]
        for path in platform.personal_data.personal:
            for before, after in zip(values_at(original, path), values_at(payload, path), strict=True):
                assert holds_nothing(after), (external_id, path, after)
                masked += not holds_nothing(before)
        for path in platform.personal_data.fulfilment:
            assert values_at(payload, path) == values_at(original, path), (external_id, path)
            fulfilment += sum(not holds_nothing(v) for v in values_at(payload, path))
        # Whatever the declarations say: no e-mail address, IP or text under a personal key is left.
        text_kept = json.dumps(payload, ensure_ascii=False)
        assert EMAIL.findall(text_kept) == [] and IPV4.findall(text_kept) == []
        assert personal_texts(payload) == []
        # Nothing else was touched.
        assert payload == json.loads(json.dumps(platform.for_storage(original)))
    assert masked > 0 and fulfilment > 0, "the sandbox serves personal and fulfilment data to check"

    # The canonical order keeps what the mapping gives (fulfilment and ops contact need it until retention).
    landed = orders_of(warehouse, code)
    for external_id, order in landed.items():
        canonical = platform.prepare(originals[external_id], channel).canonical
        assert order["customer"] == (canonical.customer and as_json(canonical.customer))
        assert order["shipping_address"] == (
            canonical.shipping_address and as_json(canonical.shipping_address)
        )

    # The same payloads synced again are the same raw rows: nothing new is stored.
    again = sync_orders(warehouse, channel, START, NOW, credentials=sandbox.credentials)
    assert again.counts.new == again.counts.updated == 0
    assert stored(warehouse, code) == kept


def test_a_payload_queued_from_its_masked_copy_lands_on_retry(warehouse, sandbox):
    """A schema_invalid and a mapping_failed order (a schema and a mapping since fixed) are retried from the
    copy the queue kept, which holds no personal data: both land, with their lines, money and address."""
    platform = sandbox.platform
    code = f"pii_retry_{platform.name}"
    config, channel = sandbox.channel(warehouse, code)
    prepared = [platform.prepare(p, channel) for p in sandbox.originals(channel).values()]
    picked = [p for p in prepared if isinstance(p, Landed) and p.canonical.shipping_address][:2]
    queued = [
        Rejected(p.canonical.external_id, reason, f"{reason}: since fixed", p.raw)
        for p, reason in zip(picked, ("schema_invalid", "mapping_failed"), strict=True)
    ]
    ingest_orders(warehouse, code, [], queued)
    with warehouse.connect() as conn:
        ids = [q["id"] for q in exception_queue.list_open(conn, channel=code)]
    assert len(ids) == 2

    outcomes = retry_exceptions(warehouse, config, ids, "test")

    assert [o.status for o in outcomes] == ["resolved", "resolved"]
    landed, kept = orders_of(warehouse, code), stored(warehouse, code)
    for item in picked:
        order = landed[item.canonical.external_id]
        assert order["shipping_address"] == as_json(item.canonical.shipping_address)
        assert order["total"] == item.canonical.totals.total
        customer = order["customer"] or {}
        assert customer.get("email") is None and customer.get("name") is None
        [raw] = kept[item.canonical.external_id]  # the retried copy is the queued one: one raw row
        assert order["raw_payload_id"] == raw["id"]
    with warehouse.connect() as conn:
        lines = conn.execute(
            text(
                "SELECT o.external_id, count(*) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "JOIN channels c ON c.id = o.channel_id WHERE c.code = :c GROUP BY 1"
            ),
            {"c": code},
        ).all()
    assert dict(lines) == {p.canonical.external_id: len(p.canonical.lines) for p in picked}


def test_retention_blanks_closed_orders_past_the_period_and_nothing_else(warehouse, sandbox):
    platform = sandbox.platform
    code = f"pii_keep_{platform.name}"
    config, channel = sandbox.channel(warehouse, code)
    sync_orders(warehouse, channel, START, NOW, credentials=sandbox.credentials)
    originals = sandbox.originals(channel)
    before = orders_of(warehouse, code)
    closed = sorted({o["updated_at"] for o in before.values() if o["closed"]})
    assert len(closed) >= 2 and any(not o["closed"] for o in before.values())
    cutoff = closed[0] + (closed[1] - closed[0]) / 2  # the oldest closed orders are due, the others not
    now = cutoff + timedelta(days=DAYS)

    dry = run_retention(warehouse, config, days=DAYS, now=now, dry_run=True)
    assert orders_of(warehouse, code) == before, "a dry run changes nothing"
    done = run_retention(warehouse, config, days=DAYS, now=now)
    assert done.counts == dry.counts and done.counts.orders >= 1

    after, kept = orders_of(warehouse, code), stored(warehouse, code)
    due = {e for e, o in before.items() if o["closed"] and o["updated_at"] < cutoff}
    assert due and due != set(before)
    for external_id, order in after.items():
        if external_id not in due:  # open, or closed too recently: untouched
            assert order == before[external_id]
            assert all(row["personal_data_erased_at"] is None for row in kept[external_id])
            continue
        assert order["personal_data_erased_at"] is not None
        customer, address, was = order["customer"], order["shipping_address"], before[external_id]
        assert customer is None or set(customer.values()) == {None}
        if address is not None:
            for blanked in ("name", "phone", "address1", "address2", "postal_code"):
                assert address[blanked] is None, (external_id, blanked)
            for kept_field in ("country_code", "province", "city", "district"):  # reports by region
                assert address[kept_field] == was["shipping_address"][kept_field]
        for row in kept[external_id]:
            assert row["personal_data_erased_at"] is not None
            assert row["payload"] == json.loads(json.dumps(platform.erased(originals[external_id])))

    # Rerun: nothing left to do. The same versions synced again stay blank and store nothing.
    assert run_retention(warehouse, config, days=DAYS, now=now).counts.as_dict() == dict.fromkeys(
        ("orders", "order_payloads", "exception_payloads", "inbox_bodies"), 0
    )
    again = sync_orders(warehouse, channel, START, NOW, credentials=sandbox.credentials)
    assert again.counts.new == again.counts.updated == 0
    assert orders_of(warehouse, code) == after and stored(warehouse, code) == kept

    # A new version of an erased order (changed after closing) lands whole; retention takes it again.
    first = min(due)
    landed = platform.prepare(originals[first], channel)
    newer = replace(landed.canonical, updated_at=landed.canonical.updated_at + timedelta(microseconds=1))
    counts = ingest_orders(warehouse, code, [Landed(newer, {**landed.raw, "channelhub_test": "newer"})])
    assert counts.updated == 1
    reopened = orders_of(warehouse, code)[first]
    assert reopened["personal_data_erased_at"] is None
    assert reopened["customer"] == (landed.canonical.customer and as_json(landed.canonical.customer))
    # An older version of another one stores a payload unmasked: the order is taken again too.
    second = max(due) if len(due) > 1 else first
    stale = platform.prepare(originals[second], channel)
    older = replace(stale.canonical, updated_at=stale.canonical.updated_at - timedelta(microseconds=1))
    ingest_orders(warehouse, code, [Landed(older, {**stale.raw, "channelhub_test": "older"})])
    assert orders_of(warehouse, code)[second]["personal_data_erased_at"] is None

    retaken = run_retention(warehouse, config, days=DAYS, now=now)
    assert retaken.counts.orders == len({first, second}) and retaken.counts.order_payloads == 2
    for external_id in (first, second):
        assert orders_of(warehouse, code)[external_id]["personal_data_erased_at"] is not None
        assert all(row["personal_data_erased_at"] for row in stored(warehouse, code)[external_id])


def test_payloads_of_orders_that_never_landed_are_masked_once_their_exceptions_closed_long_ago(
    warehouse, sandbox
):
    platform = sandbox.platform
    code = f"pii_queue_{platform.name}"
    config, channel = sandbox.channel(warehouse, code)
    originals = list(sandbox.originals(channel).values())
    prepared = [platform.prepare(p, channel) for p in originals]
    picked = [(o, p) for o, p in zip(originals, prepared, strict=True) if isinstance(p, Landed)][:2]
    rejects = [
        Rejected(f"never-{index}", "schema_invalid", "does not fit", p.raw)
        for index, (_, p) in enumerate(picked)
    ]
    ingest_orders(warehouse, code, [], rejects)
    with warehouse.begin() as conn:
        closed_id, _ = [q["id"] for q in exception_queue.list_open(conn, channel=code)]
        assert exception_queue.close(conn, closed_id, status="ignored", actor="test", note="a test order")
        closed_at = exception_queue.get(conn, closed_id)["resolved_at"]

    # Closed less than the period ago: kept.
    run_retention(warehouse, config, days=DAYS, now=closed_at + timedelta(days=DAYS) - timedelta(hours=1))
    assert all(
        row["personal_data_erased_at"] is None for rows in stored(warehouse, code).values() for row in rows
    )

    run_retention(warehouse, config, days=DAYS, now=closed_at + timedelta(days=DAYS, hours=1))
    kept = stored(warehouse, code)
    [erased] = kept["never-0"]
    assert erased["personal_data_erased_at"] is not None
    assert erased["payload"] == json.loads(json.dumps(platform.erased(picked[0][0])))
    [waiting] = kept["never-1"]  # its exception is open: a retry still needs what fulfilment needs
    assert waiting["personal_data_erased_at"] is None
    assert waiting["payload"] == json.loads(json.dumps(picked[1][1].raw))


def test_the_daily_dag_and_the_cli_run_the_job_with_the_configured_days(
    warehouse, warehouse_url, tmp_path, monkeypatch, airflow_db, capfd
):
    from airflow.dag_processing.dagbag import DagBag

    from channelhub.cli import main

    document = hub_document("pii_dag", location="WH-PII-DAG")
    document["retention"] = {"personal_data_days": 7}
    config_file = tmp_path / "channels.yaml"
    config_file.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", warehouse_url)
    shop = Shop.create(warehouse)
    shop.add_sku("A", 10)
    now = datetime.now(UTC).replace(microsecond=0)
    line = [make_line("1", shop.sku("A"), 1)]
    shop.ingest(
        make_order("closed-8d", line, updated_at=now - timedelta(days=8), cancelled=True),
        make_order("closed-6d", line, updated_at=now - timedelta(days=6), cancelled=True),
        make_order("open-8d", line, updated_at=now - timedelta(days=8)),
    )

    assert main(["retention", "run", "--dry-run"]) == 0
    out = capfd.readouterr().out
    assert "retention (7 days" in out and "would blank 1 orders and 1 of their raw payloads" in out
    assert orders_of(warehouse, shop.channel)["closed-8d"]["personal_data_erased_at"] is None
    with pytest.raises(SystemExit) as refused:
        main(["retention", "run", "--days", "0"])
    assert refused.value.code == 2 and "a whole number of days from 1" in capfd.readouterr().err

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags"))
    assert bag.import_errors == {}
    dag = bag.get_dag("personal_data_retention")
    assert dag.timetable.delta == timedelta(days=1)  # daily
    assert dag.test(logical_date=now).state == "success"

    erased = {
        e: o["personal_data_erased_at"] is not None for e, o in orders_of(warehouse, shop.channel).items()
    }
    assert erased == {"closed-8d": True, "closed-6d": False, "open-8d": False}
    assert "blanked 1 orders and 1 of their raw payloads" in "".join(capfd.readouterr())


def test_an_order_an_ingest_holds_is_left_for_the_next_run_not_waited_on(warehouse):
    """Retention takes orders with SKIP LOCKED: one a concurrent ingest holds (its row lock) is not
    waited on nor half-erased; the next run takes it. An order is blanked with its payloads or not at all."""
    shop = Shop.create(warehouse)
    shop.add_sku("A", 10)
    line = [make_line("1", shop.sku("A"), 1)]
    closed = datetime(2026, 1, 5, tzinfo=UTC)
    shop.ingest(*(make_order(f"held-{n}", line, updated_at=closed, cancelled=True) for n in range(3)))
    config = hub_config("pii_lock", location="WH-PII-LOCK")
    now = closed + timedelta(days=DAYS, hours=1)

    with warehouse.begin() as ingest:  # an ingest in the middle of applying held-1
        ingest.execute(text("SELECT 1 FROM orders WHERE external_id = 'held-1' FOR UPDATE"))
        run_retention(warehouse, config, days=DAYS, now=now)
        state = {
            e: (o["personal_data_erased_at"] is not None, o["customer"]["email"])
            for e, o in orders_of(warehouse, shop.channel).items()
        }
        assert state == {"held-0": (True, None), "held-1": (False, "ada@example.com"), "held-2": (True, None)}
        assert [r["personal_data_erased_at"] is None for r in stored(warehouse, shop.channel)["held-1"]] == [
            True
        ]

    assert run_retention(warehouse, config, days=DAYS, now=now).counts.orders >= 1
    assert orders_of(warehouse, shop.channel)["held-1"]["personal_data_erased_at"] is not None
    assert all(r["personal_data_erased_at"] for r in stored(warehouse, shop.channel)["held-1"])


def test_webhook_bodies_never_applied_are_dropped_after_the_period(warehouse):
    """An applied webhook event keeps no body (its order lives on masked in raw_payloads); one never applied
    (failed, or still pending) holds the buyer's data unmasked until the retention period ends, then only its
    event id, topic and order id stay: a pending row is still applied, the order fetched by id."""
    from warehouse import webhook_inbox

    config = hub_config("pii_hooks", "shopify", location="WH-PII-HOOKS")
    register_config(warehouse, config)
    received = datetime(2001, 1, 1, tzinfo=UTC)  # long before anything else in this warehouse
    body = {"id": 7001, "email": "buyer@example.com", "shipping_address": {"name": "A Buyer"}}
    with warehouse.begin() as conn:
        old_id, new_id = (
            webhook_inbox.store_events(
                conn,
                "pii_hooks",
                [webhook_inbox.InboxEvent(f"hook-{at:%Y%m%d}", "orders/create", "7001", body)],
                raw_body=json.dumps(body).encode(),
                headers={"x-shopify-topic": "orders/create"},
                received_at=at,
            )[0]
            for at in (received, received + timedelta(days=DAYS + 2))
        )
    report = run_retention(warehouse, config, days=DAYS, now=received + timedelta(days=DAYS, hours=1))
    assert report.counts.inbox_bodies == 1 and "1 webhook bodies never applied" in report.summary_line()
    with warehouse.connect() as conn:
        rows = {
            row.id: (bytes(row.raw_body), row.order_payload, row.order_external_id, row.status)
            for row in conn.execute(
                text("SELECT id, raw_body, order_payload, order_external_id, status FROM webhook_inbox "
                     "WHERE id = ANY(:ids)"),
                {"ids": [old_id, new_id]},
            )
        }  # fmt: skip
    assert rows[old_id] == (b"", None, "7001", "pending")  # the record stays; the buyer's data goes
    assert rows[new_id][0] == json.dumps(body).encode() and rows[new_id][1] == body
