"""Order routing: which location reserves each line of an order (pure: no I/O, deterministic).

A channel's rules (``config/channels.yaml``, ``routing:``; stored on ``channels.routing``) name the locations
that may fulfil its orders, in priority order, and how to choose among them:

- ``whole_order`` (default true): the first location (by rank) that can reserve every line of the order takes
  them all;
- ``split`` (default false): when no single location can, each line goes to the first location that can
  reserve it; lines that fit nowhere stay at the first choice and wait there as ``insufficient_stock``;
  without ``split`` the whole order waits at the first choice (today's behaviour);
- ``nearest`` (default false): rank by same city as the shipping address, then same province, then priority;
- ``store_floor`` (default 0): a ``store`` location is skipped when its free units of a SKU after the
  reservation would fall below the floor (what the shop floor keeps for walk-in customers).

``route_order`` only decides; ``warehouse.order_routes`` reads the free stock, writes the chosen location on
each line, and the conditional reserve of ``warehouse.stock.apply_steps`` stays the guard against races.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Location kinds that can never fulfil an order (their stock counts for no channel).
UNROUTABLE_KINDS = ("transit", "damaged")
RULE_KEYS = ("locations", "whole_order", "split", "nearest", "store_floor")


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """One channel's routing rules; ``locations`` empty means the channel's fulfilment location alone."""

    locations: tuple[str, ...] = ()
    whole_order: bool = True
    split: bool = False
    nearest: bool = False
    store_floor: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "locations": list(self.locations),
            "whole_order": self.whole_order,
            "split": self.split,
            "nearest": self.nearest,
            "store_floor": self.store_floor,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RoutingRules:
        known = {key: value[key] for key in RULE_KEYS if key in value}
        if "locations" in known:
            known["locations"] = tuple(known["locations"])
        return cls(**known)

    def problems(self) -> list[str]:
        """What makes these rules unusable, whatever the locations are (see also ``location_problems``)."""
        found = []
        if len(set(self.locations)) != len(self.locations):
            found.append("locations: a location is listed twice")
        if not self.whole_order and not self.split:
            found.append(
                "whole_order: false needs split: true (otherwise no line could ever leave the first location)"
            )
        if self.store_floor < 0:
            found.append(f"store_floor: {self.store_floor} is negative")
        return found


def location_problems(codes: Sequence[str], kinds: Mapping[str, str]) -> list[str]:
    """Unknown codes and locations that cannot fulfil an order; ``kinds``: {code: kind} of known locations."""
    found = []
    for code in codes:
        kind = kinds.get(code)
        if kind is None:
            known = ", ".join(sorted(kinds)) or "none"
            found.append(f"locations: {code!r} is not one of the configured locations ({known})")
        elif kind in UNROUTABLE_KINDS:
            found.append(
                f"locations: {code!r} is a {kind} location: its stock counts for no channel "
                "and ships no order"
            )
    return found


@dataclass(frozen=True, slots=True)
class Candidate:
    """A location that may fulfil the order."""

    location_id: int
    code: str
    kind: str = "warehouse"
    province: str | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class LineNeed:
    """A line to route: the units of stock it must reserve, per SKU (a bundle's components, units each)."""

    line_id: int
    parts: tuple[tuple[int, int], ...]  # (sku_id, units)


def _place(name: str | None) -> str:
    """A province or city as compared: case and spaces ignored, and the 省/市 suffix (浙江省 = 浙江)."""
    text = "".join((name or "").split()).casefold()
    return text[:-1] if len(text) > 2 and text[-1] in "省市" else text


def rank(
    candidates: Sequence[Candidate], rules: RoutingRules, province: str | None, city: str | None
) -> list[Candidate]:
    """Candidates best first: priority order (as given); with ``nearest``, same city, then same province
    first."""
    if not rules.nearest:
        return list(candidates)
    want_province, want_city = _place(province), _place(city)

    def distance(candidate: Candidate) -> int:
        same_province = bool(want_province) and _place(candidate.province) == want_province
        same_city = bool(want_city) and _place(candidate.city) == want_city
        # A city of the same name in another province is not near.
        if same_city and (same_province or not want_province or not candidate.province):
            return 0
        return 1 if same_province else 2

    return sorted(candidates, key=lambda c: distance(c))  # stable: priority breaks ties


def _fits(
    candidate: Candidate, needs: Mapping[int, int], free: Mapping[tuple[int, int], int], floor: int
) -> bool:
    for sku_id, units in needs.items():
        left = free.get((sku_id, candidate.location_id), 0) - units
        if left < 0 or (candidate.kind == "store" and left < floor):
            return False
    return True


def _take(free: dict[tuple[int, int], int], location_id: int, needs: Mapping[int, int]) -> None:
    for sku_id, units in needs.items():
        free[(sku_id, location_id)] = free.get((sku_id, location_id), 0) - units


def route_order(
    lines: Sequence[LineNeed],
    candidates: Sequence[Candidate],
    free: Mapping[tuple[int, int], int],
    rules: RoutingRules,
    province: str | None = None,
    city: str | None = None,
) -> dict[int, int | None]:
    """{line id: location id, or None where no location can reserve it (it waits at the first choice)}.

    ``free``: on_hand - reserved per (sku_id, location_id) now; lines are routed in the given order, each
    taking its units from what the earlier ones left."""
    ranked = rank(candidates, rules, province, city)
    left = dict(free)
    needs = {line.line_id: _needs(line) for line in lines}
    if rules.whole_order:
        whole: Counter[int] = Counter()
        for line in lines:
            whole.update(needs[line.line_id])
        for candidate in ranked:
            if _fits(candidate, whole, left, rules.store_floor):
                return {line.line_id: candidate.location_id for line in lines}
        if not rules.split:
            return {line.line_id: None for line in lines}
    chosen: dict[int, int | None] = {}
    for line in lines:
        chosen[line.line_id] = None
        for candidate in ranked:
            if _fits(candidate, needs[line.line_id], left, rules.store_floor):
                _take(left, candidate.location_id, needs[line.line_id])
                chosen[line.line_id] = candidate.location_id
                break
    return chosen


def _needs(line: LineNeed) -> Counter[int]:
    needs: Counter[int] = Counter()
    for sku_id, units in line.parts:
        needs[sku_id] += units
    return needs
