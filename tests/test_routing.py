"""Issue 21, capability 1: order routing against a real Postgres.

Per-channel rules choose where each line reserves (priority, whole order from one location, split, nearest by
city/province, store floor); the chosen location is kept on the line; ``channelhub route move|away`` move a
reservation in one transaction (release + reserve in the ledger, the move kept in ``line_routes``); the
shipments import ships a line from where it is reserved. After every test the levels equal their ledger and
nothing is oversold.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select, text

from channelhub import cli
from channelhub.config import ConfigError, parse_config
from channelhub.sync import register_config
from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.ingest import retry_attention
from warehouse.models import channels, stock_ledger
from warehouse.route_lines import RoutingConfigError, set_channel_routing
from warehouse.route_moves import RouteError, move_away, move_line_now, order_locations, route_history
from warehouse.routing import Candidate, LineNeed, RoutingRules, rank, route_order
from warehouse.stock_policy import set_bundle
from warehouse.store_imports import import_file
from warehouse.testing import T0, Shop, make_line, make_order

# name: (kind, province, city); codes are "<prefix>-<name>"
PLACES = {
    "wh": ("warehouse", None, None),  # the channel's fulfilment location (Shop.location)
    "hz": ("warehouse", "浙江省", "杭州市"),
    "nb": ("warehouse", "浙江省", "宁波市"),
    "sh": ("store", "上海市", "上海市"),
    "road": ("transit", None, None),
}


class RoutedShop(Shop):
    """A shop whose channel code fits the config's pattern (the CLI loads it from a config file)."""

    @property
    def channel(self) -> str:
        return f"{self.prefix}_shop"

    def loc(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def rules(self, *names: str, **settings: object) -> RoutingRules:
        rules = RoutingRules(locations=tuple(self.loc(n) for n in names), **settings)  # type: ignore[arg-type]
        with self.engine.begin() as conn:
            set_channel_routing(conn, self.channel, rules)
        return rules

    def stock_at(self, sku: str, name: str, units: int) -> None:
        with self.engine.begin() as conn:
            catalog.receive_stock(
                conn, self.sku(sku), self.loc(name), units, f"receive:test:{uuid.uuid4().hex}"
            )

    def level_at(self, sku: str, name: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            return stock.stock_level(conn, self.sku(sku), self.loc(name))

    def lines(self, order: str) -> dict[str, tuple[str, int]]:
        """{line id: (location code without the prefix, units reserved)}."""
        with self.engine.connect() as conn:
            rows = order_locations(conn, self.channel, order)
        return {r["line"]: (r["location"].removeprefix(f"{self.prefix}-"), r["reserved"]) for r in rows}

    def document(self) -> dict:
        return {
            "locations": [
                {"code": self.loc(name), "name": name, "kind": kind}
                | ({"province": province, "city": city} if province else {})
                for name, (kind, province, city) in PLACES.items()
            ],
            "channels": [
                {
                    "code": self.channel,
                    "platform": "shopify",
                    "conn_id": self.channel,
                    "fulfilment_location": self.location,
                    "routing": {"locations": [self.loc("wh"), self.loc("hz")], "split": True},
                }
            ],
        }


def to(order, province: str | None, city: str | None):
    """The order shipped to this province and city."""
    return replace(order, shipping_address=replace(order.shipping_address, province=province, city=city))


@pytest.fixture()
def shop(engine: Engine) -> Iterator[RoutedShop]:
    shop = RoutedShop.create(engine)
    register_config(engine, parse_config(shop.document(), "test"))
    yield shop
    with engine.connect() as conn:
        assert stock.ledger_drift(conn) == []
        assert stock.oversold(conn) == 0


def ledger_of(shop: RoutedShop, order: str) -> list[tuple[str, str, str, int]]:
    with shop.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT g.idempotency_key, g.kind, loc.code, g.delta_reserved FROM stock_ledger g "
                "JOIN orders o ON o.id = g.order_id JOIN locations loc ON loc.id = g.location_id "
                "JOIN channels c ON c.id = o.channel_id "
                "WHERE c.code = :c AND o.external_id = :o ORDER BY g.id"
            ),
            {"c": shop.channel, "o": order},
        ).all()
    return [(key, kind, loc.removeprefix(f"{shop.prefix}-"), d) for key, kind, loc, d in rows]


# -- the pure decision ---------------------------------------------------------------------------


def test_route_order_is_a_pure_decision():
    a, b, s = Candidate(1, "A"), Candidate(2, "B"), Candidate(3, "S", "store", "浙江省", "杭州市")
    one, two = LineNeed(10, ((7, 2),)), LineNeed(11, ((8, 1),))
    free = {(7, 1): 2, (8, 2): 1, (7, 2): 2}
    assert route_order([one, two], [a, b], free, RoutingRules()) == {10: 2, 11: 2}  # B has both
    assert route_order([one, two], [a, b], free, RoutingRules(whole_order=False, split=True)) == {
        10: 1,
        11: 2,
    }
    assert route_order([one, two], [a], free, RoutingRules()) == {10: None, 11: None}
    # Two lines of one SKU take from what the first left.
    three = LineNeed(12, ((7, 1),))
    assert route_order([one, three], [a, b], {(7, 1): 2, (7, 2): 3}, RoutingRules()) == {10: 2, 12: 2}
    split = RoutingRules(whole_order=False, split=True)
    assert route_order([one, three], [a, b], {(7, 1): 2, (7, 2): 3}, split) == {10: 1, 12: 2}
    assert rank([a, b, s], RoutingRules(nearest=True), "浙江", "杭州") == [s, a, b]  # 省/市 suffixes ignored
    assert rank([a, s], RoutingRules(nearest=True), "江苏省", "杭州市") == [a, s]  # same city name, elsewhere


# -- routing in ingest ---------------------------------------------------------------------------


def test_without_rules_a_channel_reserves_at_its_fulfilment_location(shop: RoutedShop):
    shop.add_sku("A", 5)
    with shop.engine.begin() as conn:
        set_channel_routing(conn, shop.channel, None)
    shop.stock_at("A", "hz", 5)
    shop.ingest(make_order("9001", [make_line("1", shop.sku("A"), 2)]))
    assert shop.lines("9001") == {"1": ("wh", 2)}
    with (
        shop.engine.connect() as conn
    ):  # no rules is SQL NULL (not JSON null): "WHERE routing IS NULL" finds it
        assert conn.execute(
            text("SELECT routing IS NULL FROM channels WHERE code = :c"), {"c": shop.channel}
        ).scalar_one()


def test_priority_list_first_location_with_stock_takes_the_order(shop: RoutedShop):
    shop.add_sku("A")
    shop.rules("hz", "wh", "nb")
    shop.stock_at("A", "wh", 3)
    shop.stock_at("A", "nb", 9)
    shop.ingest(make_order("9010", [make_line("1", shop.sku("A"), 2)]))
    assert shop.lines("9010") == {"1": ("wh", 2)}  # hz has none: the next in priority
    shop.ingest(make_order("9011", [make_line("1", shop.sku("A"), 2)]))
    assert shop.lines("9011") == {"1": ("nb", 2)}  # wh has 1 left
    assert shop.level_at("A", "wh") == (3, 2) and shop.level_at("A", "nb") == (9, 2)
    assert ledger_of(shop, "9011") == [(f"reserve:{shop.channel}:9011:1", "reserve", "nb", 2)]


def test_whole_order_from_one_location_before_the_priority(shop: RoutedShop):
    shop.add_sku("A")
    shop.add_sku("B")
    shop.rules("wh", "hz", split=True)
    shop.stock_at("A", "wh", 5)  # wh has A only
    shop.stock_at("A", "hz", 5)
    shop.stock_at("B", "hz", 5)
    shop.ingest(make_order("9020", [make_line("1", shop.sku("A"), 1), make_line("2", shop.sku("B"), 1)]))
    assert shop.lines("9020") == {"1": ("hz", 1), "2": ("hz", 1)}


def test_without_split_the_order_waits_at_the_first_location(shop: RoutedShop):
    shop.add_sku("A")
    shop.add_sku("B")
    shop.rules("wh", "hz")
    shop.stock_at("A", "wh", 5)
    shop.stock_at("B", "hz", 5)
    counts = shop.ingest(
        make_order("9030", [make_line("1", shop.sku("A"), 1), make_line("2", shop.sku("B"), 1)])
    )
    assert shop.lines("9030") == {"1": ("wh", 1), "2": ("wh", 0)}  # as before routing: B short at wh
    assert counts.exceptions["insufficient_stock"] == 1
    with shop.engine.connect() as conn:
        [short] = queue.list_open(conn, channel=shop.channel, reason="insufficient_stock")
    assert f"at {shop.loc('wh')}: needed 1, available 0" in short["detail"]


def test_split_sends_each_line_where_it_can_be_reserved(shop: RoutedShop):
    shop.add_sku("A")
    shop.add_sku("B")
    shop.add_sku("C")
    shop.rules("wh", "hz", split=True)
    shop.stock_at("A", "wh", 5)
    shop.stock_at("B", "hz", 5)
    order = make_order(
        "9040",
        [
            make_line("1", shop.sku("A"), 1),
            make_line("2", shop.sku("B"), 2),
            make_line("3", shop.sku("C"), 1),
        ],
    )
    counts = shop.ingest(order)
    # C is nowhere: it waits at the first choice, short.
    assert shop.lines("9040") == {"1": ("wh", 1), "2": ("hz", 2), "3": ("wh", 0)}
    assert counts.exceptions["insufficient_stock"] == 1


def test_nearest_same_city_then_same_province_then_priority(shop: RoutedShop):
    shop.add_sku("A")
    shop.rules("wh", "nb", "hz", "sh", nearest=True)
    for place in ("wh", "nb", "hz", "sh"):
        shop.stock_at("A", place, 10)
    shop.ingest(
        to(make_order("9050", [make_line("1", shop.sku("A"), 1)]), "浙江省", "杭州市"),
        to(make_order("9051", [make_line("1", shop.sku("A"), 1)]), "浙江省", "温州市"),
        to(make_order("9052", [make_line("1", shop.sku("A"), 1)]), "上海", "上海"),
        to(make_order("9053", [make_line("1", shop.sku("A"), 1)]), "北京市", "北京市"),
    )
    assert shop.lines("9050") == {"1": ("hz", 1)}  # same city
    assert shop.lines("9051") == {"1": ("nb", 1)}  # same province: nb before hz in priority
    assert shop.lines("9052") == {"1": ("sh", 1)}
    assert shop.lines("9053") == {"1": ("wh", 1)}  # nothing near: priority


def test_a_store_below_its_floor_is_skipped(shop: RoutedShop):
    shop.add_sku("A")
    shop.rules("sh", "wh", store_floor=3)
    shop.stock_at("A", "sh", 5)
    shop.stock_at("A", "wh", 5)
    shop.ingest(make_order("9060", [make_line("1", shop.sku("A"), 2)]))
    assert shop.lines("9060") == {"1": ("sh", 2)}  # leaves 3: at the floor
    shop.ingest(make_order("9061", [make_line("1", shop.sku("A"), 1)]))
    assert shop.lines("9061") == {"1": ("wh", 1)}  # would leave 2 at the store
    assert shop.level_at("A", "sh") == (5, 2)


def test_a_short_line_is_routed_again_when_stock_comes(shop: RoutedShop):
    shop.add_sku("A")
    shop.rules("wh", "hz")
    shop.ingest(make_order("9070", [make_line("1", shop.sku("A"), 2)]))
    assert shop.lines("9070") == {"1": ("wh", 0)}
    shop.stock_at("A", "hz", 2)
    retry_attention(shop.engine, shop.channel)
    assert shop.lines("9070") == {"1": ("hz", 2)}
    with shop.engine.connect() as conn:
        assert queue.list_open(conn, channel=shop.channel) == []
    # A line that holds stock never moves by itself: stock arriving at wh changes nothing.
    shop.stock_at("A", "wh", 5)
    retry_attention(shop.engine, shop.channel)
    shop.ingest(make_order("9070", [make_line("1", shop.sku("A"), 2)], updated_at=_later()))
    assert shop.lines("9070") == {"1": ("hz", 2)}


def test_a_bundle_is_routed_where_all_its_components_are(shop: RoutedShop):
    shop.add_sku("P1")
    shop.add_sku("P2")
    shop.add_sku("KIT")
    with shop.engine.begin() as conn:
        set_bundle(conn, shop.sku("KIT"), [(shop.sku("P1"), 1), (shop.sku("P2"), 2)])
    shop.rules("wh", "hz")
    shop.stock_at("P1", "wh", 5)  # wh lacks P2
    shop.stock_at("P1", "hz", 1)
    shop.stock_at("P2", "hz", 2)
    shop.ingest(make_order("9080", [make_line("1", shop.sku("KIT"), 1)]))
    assert shop.lines("9080") == {"1": ("hz", 1)}
    assert shop.level_at("P2", "hz") == (2, 2)


# -- re-routing ----------------------------------------------------------------------------------


def test_move_releases_and_reserves_in_the_ledger_and_keeps_the_move(shop: RoutedShop):
    shop.add_sku("A", 5)
    shop.stock_at("A", "hz", 5)
    shop.rules("wh", "hz")
    shop.ingest(make_order("9100", [make_line("1", shop.sku("A"), 2)]))
    [moved] = move_line_now(
        shop.engine, shop.channel, "9100", shop.loc("hz"), line="1", actor="ops-ada", note="wh flooded"
    )
    assert (moved.from_location, moved.to_location, moved.units) == (shop.loc("wh"), shop.loc("hz"), 2)
    assert shop.lines("9100") == {"1": ("hz", 2)}
    assert shop.level_at("A", "wh") == (5, 0) and shop.level_at("A", "hz") == (5, 2)
    key = f"{shop.channel}:9100:1"
    assert ledger_of(shop, "9100") == [
        (f"reserve:{key}", "reserve", "wh", 2),
        (f"release:{key}", "release", "wh", -2),
        (f"reserve:{key}#2", "reserve", "hz", 2),
    ]
    with shop.engine.connect() as conn:
        [history] = route_history(conn, shop.channel, "9100")
    assert (history["actor"], history["note"], history["cause"]) == ("ops-ada", "wh flooded", "move")
    assert (history["release_key"], history["reserve_key"]) == (f"release:{key}", f"reserve:{key}#2")
    # Ingest continues the numbering: a cancel releases at the new location.
    shop.ingest(make_order("9100", [make_line("1", shop.sku("A"), 2)], cancelled=True, updated_at=_later()))
    assert ledger_of(shop, "9100")[-1] == (f"release:{key}#2", "release", "hz", -2)
    assert shop.level_at("A", "hz") == (5, 0)


def test_move_refusals_change_nothing(shop: RoutedShop):
    shop.add_sku("A", 5)
    shop.stock_at("A", "hz", 1)
    shop.ingest(
        make_order("9110", [make_line("1", shop.sku("A"), 2)]),
        make_order("9111", [make_line("1", shop.sku("A"), 2, shipped=1)]),
    )
    before = ledger_of(shop, "9110")
    cases = [
        ("9110", "NOWHERE", "unknown location 'NOWHERE'"),
        ("9110", shop.loc("road"), "is a transit location"),
        ("9110", shop.loc("hz"), f"{shop.loc('hz')} lacks the free stock for line 1 of order 9110: 2 x"),
        ("9111", shop.loc("hz"), "has shipped 1 units"),
        ("9999", shop.loc("hz"), "order 9999 of channel"),
    ]
    for order, target, message in cases:
        with pytest.raises(RouteError, match=message.replace("(", r"\(")):
            move_line_now(shop.engine, shop.channel, order, target, line="1", actor="ops")
    assert ledger_of(shop, "9110") == before
    assert shop.lines("9110") == {"1": ("wh", 2)} and shop.level_at("A", "hz") == (1, 0)


def test_away_reroutes_every_reservation_by_the_rules(shop: RoutedShop):
    shop.add_sku("A", 10)
    shop.rules("wh", "nb", "hz", nearest=True)
    shop.ingest(
        to(make_order("9120", [make_line("1", shop.sku("A"), 2)]), "浙江省", "杭州市"),
        to(make_order("9121", [make_line("1", shop.sku("A"), 2)]), "浙江省", "宁波市"),
        to(make_order("9122", [make_line("1", shop.sku("A"), 3)]), "北京市", "北京市"),
    )
    assert {o: shop.lines(o)["1"][0] for o in ("9120", "9121", "9122")} == dict.fromkeys(
        ("9120", "9121", "9122"), "wh"
    )
    shop.stock_at("A", "hz", 2)
    shop.stock_at("A", "nb", 2)
    report = move_away(shop.engine, shop.loc("wh"), channel=shop.channel, actor="ops", note="wh closed")
    assert sorted((m.order, m.to_location) for m in report.moved) == [
        ("9120", shop.loc("hz")),
        ("9121", shop.loc("nb")),
    ]
    assert len(report.left) == 1 and "9122 line 1" in report.left[0] and "can reserve 3 x" in report.left[0]
    assert shop.lines("9122") == {"1": ("wh", 3)}  # nowhere else: stays reserved where it was
    assert shop.level_at("A", "wh") == (10, 3)
    with pytest.raises(RouteError, match="unknown location"):
        move_away(shop.engine, "NOWHERE", actor="ops")


# -- the shipments import ------------------------------------------------------------------------


def test_a_shipment_ships_from_where_the_line_is_reserved(shop: RoutedShop, tmp_path: Path):
    shop.add_sku("A")
    shop.rules("wh", "hz")
    shop.stock_at("A", "hz", 5)
    shop.ingest(make_order("9130", [make_line("1", shop.sku("A"), 2)]))
    assert shop.lines("9130") == {"1": ("hz", 2)}
    path = tmp_path / "shipments.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "shipment_id",
                "channel",
                "order_id",
                "line_id",
                "sku",
                "quantity",
                "carrier",
                "tracking_number",
                "shipped_at",
                "location",
            ]
        )
        writer.writerow(
            ["S1", shop.channel, "9130", "1", "", 1, "SF", "SF1", "2026-11-02T09:00:00Z", shop.loc("wh")]
        )
        writer.writerow(["S2", shop.channel, "9130", "1", "", 1, "SF", "SF2", "2026-11-02T09:00:00Z", ""])
    report = import_file(shop.engine, "shipments", path)
    [refused] = report.rejected
    assert f"reserved at {shop.loc('hz')} but this row ships it from {shop.loc('wh')}" in refused.reason
    assert report.applied == 1
    assert shop.level_at("A", "hz") == (4, 1)  # the row without a location shipped from the line's own
    # A line that shipped cannot move.
    with pytest.raises(RouteError, match="has shipped 1 units"):
        move_line_now(shop.engine, shop.channel, "9130", shop.loc("wh"), line="1", actor="ops")


# -- config and CLI ------------------------------------------------------------------------------


def test_config_stores_rules_and_explains_bad_ones(shop: RoutedShop):
    with shop.engine.connect() as conn:
        stored = conn.execute(select(channels.c.routing).where(channels.c.code == shop.channel)).scalar_one()
    assert stored == RoutingRules((shop.loc("wh"), shop.loc("hz")), split=True).as_json()

    document = shop.document()
    document["channels"][0]["routing"] = {
        "locations": ["NOWHERE", shop.loc("road")],
        "whole_order": False,
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "bad.yaml")
    problems = "\n".join(caught.value.problems)
    assert "channels[0].routing.locations: 'NOWHERE' is not one of the configured locations" in problems
    assert f"channels[0].routing.locations: '{shop.loc('road')}' is a transit location" in problems
    assert "channels[0].routing.whole_order: false needs split: true" in problems
    document["channels"][0]["routing"] = {"locations": [], "store_floor": -1}
    with pytest.raises(ConfigError, match="store_floor"):
        parse_config(document, "bad.yaml")
    with shop.engine.begin() as conn, pytest.raises(RoutingConfigError, match="'NOWHERE' is not one"):
        set_channel_routing(conn, shop.channel, RoutingRules(("NOWHERE",)))


def test_route_cli_moves_and_refuses_with_exit_2(
    shop: RoutedShop, tmp_path: Path, monkeypatch, capsys, database_url
):
    config_file = tmp_path / "channels.yaml"
    config_file.write_text(yaml.safe_dump(shop.document(), allow_unicode=True))
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    shop.add_sku("A", 2)
    shop.ingest(make_order("9140", [make_line("1", shop.sku("A"), 2)]))
    base = ["route", "move", "--channel", shop.channel, "--order", "9140", "--line", "1", "--by", "ops-li"]
    assert cli.main([*base, "--to", "NOWHERE"]) == 2
    assert "unknown location 'NOWHERE'" in capsys.readouterr().err
    assert cli.main([*base, "--to", shop.loc("hz")]) == 2  # no stock there
    assert "lacks the free stock" in capsys.readouterr().err
    shop.stock_at("A", "hz", 2)
    assert cli.main([*base, "--to", shop.loc("hz"), "--note", "courier strike"]) == 0
    assert f"{shop.loc('wh')} -> {shop.loc('hz')}" in capsys.readouterr().out
    assert cli.main(["route", "show", "--channel", shop.channel, "--order", "9140"]) == 0
    shown = capsys.readouterr().out
    assert f"at {shop.loc('hz')}" in shown and "move by ops-li: courier strike" in shown
    # The channel's rules (wh first) take it back to wh, whose stock is free again.
    assert cli.main(["route", "away", "--location", shop.loc("hz"), "--channel", shop.channel]) == 0
    assert "1 line(s) moved, 0 left" in capsys.readouterr().out
    assert shop.lines("9140") == {"1": ("wh", 2)}
    with shop.engine.connect() as conn:
        kinds = (
            conn.execute(
                select(stock_ledger.c.kind).where(
                    stock_ledger.c.idempotency_key.like(f"%:{shop.channel}:9140:%")
                )
            )
            .scalars()
            .all()
        )
    assert kinds == ["reserve", "release", "reserve", "release", "reserve"]


def _later() -> datetime:
    return T0 + timedelta(minutes=5)


def test_the_demo_shows_where_routed_lines_reserve_and_reroutes_a_store_order(shop: RoutedShop):
    from channelhub.demo_routing import show_routing

    shop.add_sku("A")
    shop.rules("wh", "hz", "sh", nearest=True)
    for place in ("wh", "sh"):
        shop.stock_at("A", place, 5)
    shop.ingest(
        to(make_order("9160", [make_line("1", shop.sku("A"), 2)]), "上海市", "上海市"),
        to(make_order("9161", [make_line("1", shop.sku("A"), 1)]), "北京市", "北京市"),
    )
    printed: list[str] = []
    shown = show_routing(shop.engine, printed.append)
    text_out = "\n".join(printed)
    mine = [row for row in shown["per_location"] if row["channel"] == shop.channel]
    assert {(row["location"], row["lines"], row["reserved"]) for row in mine} == {
        (shop.loc("sh"), 1, 2),
        (shop.loc("wh"), 1, 1),
    }
    if shown["order"]["channel"] == shop.channel:  # other tests' routed channels share the database
        assert shown["order"]["order_id"] == "9160"
        assert (
            f"order 9160 of {shop.channel}, shipped to 上海市 上海市, reserved at {shop.loc('sh')}"
            in text_out
        )
        assert shown["moves"] == [f"line 1: {shop.loc('sh')} -> {shop.loc('wh')}"]
        assert shop.lines("9160") == {"1": ("wh", 2)}  # moved back to the first location
        assert [kind for _, kind, _, _ in ledger_of(shop, "9160")] == ["reserve", "release", "reserve"]
