"""The hand-written migration and ``warehouse/models.py`` describe the same schema, and it round-trips."""

from __future__ import annotations

import time
import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from channelhub import db
from warehouse import catalog
from warehouse.maintenance import analyze_if_stale
from warehouse.models import metadata
from warehouse.testing import Shop


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.PROJECT_ROOT / "warehouse" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def test_models_match_the_migrated_schema(engine: Engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def describe(engine: Engine) -> dict[str, dict]:
    """Everything the inspector sees of each warehouse table, in comparable form."""
    schema = inspect(engine)
    described = {}
    for table in sorted(metadata.tables):
        described[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"), bool(c.get("identity")))
                for c in schema.get_columns(table)
            ],
            "pk": schema.get_pk_constraint(table),
            "fks": sorted(
                (f["name"], tuple(f["constrained_columns"]), f["referred_table"], str(f.get("options")))
                for f in schema.get_foreign_keys(table)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"])) for u in schema.get_unique_constraints(table)
            ),
            "checks": sorted((c["name"], c["sqltext"]) for c in schema.get_check_constraints(table)),
            "indexes": sorted(
                (
                    i["name"],
                    str(i.get("column_names")),
                    str(i.get("expressions")),
                    i["unique"],
                    str(i.get("dialect_options")),
                )
                for i in schema.get_indexes(table)
            ),
        }
    with engine.connect() as conn:  # the inspector does not see triggers (function bodies: words compared)
        described["triggers"] = [
            (table, name, definition, " ".join(body.split()))
            for table, name, definition, body in conn.execute(
                text(
                    "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), p.prosrc FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
                    "WHERE NOT t.tgisinternal ORDER BY 1, 2"
                )
            )
        ]
    return described


def test_migration_builds_exactly_what_the_models_declare(engine: Engine, pg_server_url: str):
    """Stricter than autogenerate (which skips check constraints and partial-index details): build the
    schema from the models in a scratch database and compare everything the inspector reports."""
    name = f"channelhub_models_{uuid.uuid4().hex[:10]}"
    db.ensure_database(pg_server_url, name)
    scratch = create_engine(make_url(pg_server_url).set(database=name))
    try:
        metadata.create_all(scratch)
        assert describe(scratch) == describe(engine)
    finally:
        scratch.dispose()
        db.drop_database(pg_server_url, name)


def test_constraints_that_carry_the_invariants_exist(engine: Engine):
    schema = inspect(engine)
    uniques = {u["name"]: u["column_names"] for u in schema.get_unique_constraints("orders")}
    assert uniques["uq_orders_channel_id_external_id"] == ["channel_id", "external_id"]
    ledger_uniques = {u["name"]: u["column_names"] for u in schema.get_unique_constraints("stock_ledger")}
    assert ledger_uniques["uq_stock_ledger_idempotency_key"] == ["idempotency_key"]
    checks = {c["name"] for c in schema.get_check_constraints("stock_levels")}
    assert {"ck_stock_levels_on_hand_not_negative", "ck_stock_levels_reserved_not_negative"} <= checks
    open_index = {i["name"]: i for i in schema.get_indexes("exceptions")}["uq_exceptions_open"]
    assert open_index["unique"]


def test_stock_levels_refuse_negative_values(engine: Engine):
    shop = Shop.create(engine)
    shop.add_sku("A", 1)
    with engine.begin() as conn, pytest.raises(IntegrityError, match="reserved_not_negative"):
        conn.execute(
            text("UPDATE stock_levels SET reserved = -1 WHERE sku_id = :s"),
            {"s": catalog.sku_id_of(conn, shop.sku("A"))},
        )


def test_reserved_beyond_on_hand_is_refused_at_commit_but_may_pass_within_a_transaction(engine: Engine):
    shop = Shop.create(engine)
    shop.add_sku("A", 3)
    with engine.connect() as conn:
        where = {"s": catalog.sku_id_of(conn, shop.sku("A"))}
    over = "UPDATE stock_levels SET reserved = on_hand + 1 WHERE sku_id = :s"
    with pytest.raises(IntegrityError, match="reserves more than is on hand"), engine.begin() as conn:
        conn.execute(text(over), where)  # refused when the transaction commits
    with engine.begin() as conn:  # a count lowers on-hand, then releases reservations: fine at commit
        conn.execute(text(over), where)
        conn.execute(text("UPDATE stock_levels SET reserved = on_hand WHERE sku_id = :s"), where)
    assert shop.level("A") == (3, 3)
    with engine.begin() as conn:  # back to what its ledger says: later tests check the shared ledger
        conn.execute(text("UPDATE stock_levels SET reserved = 0 WHERE sku_id = :s"), where)


def test_one_channel_sku_maps_to_one_internal_sku(engine: Engine):
    shop = Shop.create(engine)
    shop.add_sku("A")
    shop.add_sku("B", listed=False)
    with engine.begin() as conn:
        first = catalog.upsert_listing(
            conn, shop.channel, shop.sku("A"), merchant_sku="X-1", channel_product_id="9"
        )
        # Re-pointing the channel SKU moves the listing; it does not add a second one.
        again = catalog.upsert_listing(
            conn, shop.channel, shop.sku("B"), merchant_sku="X-1", channel_product_id="9"
        )
        assert first == again
        listed = conn.execute(
            text(
                "SELECT count(*) FROM channel_listings l JOIN channels c ON c.id = l.channel_id "
                "WHERE c.code = :c AND l.merchant_sku = 'X-1'"
            ),
            {"c": shop.channel},
        ).scalar_one()
        assert listed == 1
    with engine.begin() as conn, pytest.raises(IntegrityError, match="uq_channel_listings_product_variant"):
        channel_id = catalog.channel_id_of(conn, shop.channel)
        sku_id = catalog.sku_id_of(conn, shop.sku("A"))
        conn.execute(
            text(
                "INSERT INTO channel_listings (channel_id, sku_id, channel_product_id) VALUES (:c, :s, '9')"
            ),
            {"c": channel_id, "s": sku_id},
        )


def test_downgrade_and_upgrade_round_trip(fresh_database_url: str):
    cfg = alembic_config(fresh_database_url)
    command.downgrade(cfg, "base")
    engine = create_engine(fresh_database_url)
    try:
        assert "orders" not in inspect(engine).get_table_names()
        command.upgrade(cfg, "head")
        engine.dispose()  # a new session picks up the database's UTC default
        assert {"orders", "order_lines", "stock_ledger", "exceptions"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar_one() == "UTC"
    finally:
        engine.dispose()


def test_a_table_grown_past_its_statistics_is_analyzed_once(engine: Engine):
    """A backfill must not outgrow the planner's statistics (autovacuum may be off or behind): the sync
    analyzes what grew by more than the threshold since its last ANALYZE, and only that."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO raw_payloads (channel_id, external_id, digest, payload) "
                "SELECT NULL, 'stats-' || n, md5('stats-' || n), '{}'::jsonb FROM generate_series(1, 2000) n"
            )
        )
    analyzed: list[str] = []
    for _ in range(50):  # table statistics reach pg_stat_user_tables asynchronously (within a second)
        analyzed = analyze_if_stale(engine, ("raw_payloads", "locations"), threshold=1500, scale=0.0)
        if analyzed:
            break
        time.sleep(0.1)
    assert analyzed == ["raw_payloads"]
    with engine.connect() as conn:
        last_analyze = conn.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'raw_payloads'")
        ).scalar_one()
    assert last_analyze is not None
    assert analyze_if_stale(engine, ("raw_payloads", "locations"), threshold=1500, scale=0.0) == []
