"""Small pure helpers every platform mapping uses to turn wire values into canonical ones.

Each helper takes the raw value plus ``field``, the value's path in the payload (``"line_items[2].price"``),
and raises ``MappingError`` naming that path when the value cannot be converted. They never guess:
money never passes through float, ids never pass through float, and times always end up tz-aware UTC.

Personal data: each mapping module declares where its payload holds it (``PERSONAL_DATA``, a
``PersonalData``), and ``mask`` blanks those paths in a payload before it is stored. A masked text reads as
absent here (``blank_to_none``, ``join_name``), so a stored payload re-run through the mapping (an exception
retry) gives the same order without the buyer's details.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

from canonical.order import Address, CanonicalOrder, MappingError, Totals

_DECIMAL_STRING = re.compile(r"-?\d+(\.\d+)?")
_DIGITS = re.compile(r"-?\d+")
# Date and time to the second, optional fraction; the zone part differs per parser.
_DATE_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?"
_ISO_WITH_OFFSET = re.compile(_DATE_TIME + r"(Z|[+-]\d{2}:?\d{2})")
_NAIVE_LOCAL = re.compile(_DATE_TIME)
# Epoch seconds beyond this (year 5138) are almost surely milliseconds sent by mistake.
_MAX_EPOCH_SECONDS = 10**11


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- times ---------------------------------------------------------------------------------------


def parse_iso_datetime(value: Any, field: str) -> datetime:
    """An ISO-8601 time that carries its own offset ("...-05:00" or "...Z") -> tz-aware UTC."""
    if not isinstance(value, str) or not _ISO_WITH_OFFSET.fullmatch(value):
        raise MappingError(f"{field}: expected an ISO-8601 time with an offset, got {_describe(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise MappingError(f"{field}: invalid time {value!r} ({error})") from error
    return parsed.astimezone(UTC)


def parse_optional_iso_datetime(value: Any, field: str) -> datetime | None:
    """Like ``parse_iso_datetime`` but None (or "") stays None: for cancelled_at, closed_at and kin."""
    if value is None or value == "":
        return None
    return parse_iso_datetime(value, field)


def parse_local_datetime(value: Any, zone: tzinfo | timedelta, field: str) -> datetime:
    """A naive local time ("2024-05-01 12:00:00" or "2024-05-01T12:00:00") in ``zone`` -> tz-aware UTC.

    ``zone`` is a fixed offset (``timedelta(hours=8)`` for Taobao/Youzan) or a tzinfo such as
    ``ZoneInfo("Europe/Berlin")`` for a WooCommerce site timezone. A value that carries its own offset
    is refused: it means the platform or the channel config is not what this mapping assumes.
    """
    if not isinstance(value, str) or not _NAIVE_LOCAL.fullmatch(value):
        raise MappingError(f"{field}: expected a local time 'YYYY-MM-DD HH:MM:SS', got {_describe(value)}")
    try:
        naive = datetime.fromisoformat(value)
    except ValueError as error:
        raise MappingError(f"{field}: invalid time {value!r} ({error})") from error
    tz = timezone(zone) if isinstance(zone, timedelta) else zone
    return naive.replace(tzinfo=tz).astimezone(UTC)


# Taobao, Youzan, Pinduoduo and JD stamp their times in Beijing time without an offset; China has one
# fixed offset and no daylight saving, so a timedelta is exact.
BEIJING = timedelta(hours=8)


def parse_beijing_datetime(value: Any, field: str) -> datetime:
    """A naive Beijing time ("2024-05-01 12:00:00") -> tz-aware UTC (``parse_local_datetime`` at UTC+8)."""
    return parse_local_datetime(value, BEIJING, field)


def parse_optional_beijing_datetime(value: Any, field: str, *, never: str | None = None) -> datetime | None:
    """Like ``parse_beijing_datetime`` but None and "" stay None, and so does ``never``: the placeholder a
    platform writes for a time that has not happened yet (JD's "0001-01-01 00:00:00")."""
    if value is None or value == "" or (never is not None and value == never):
        return None
    return parse_beijing_datetime(value, field)


def parse_epoch_seconds(value: Any, field: str) -> datetime:
    """Unix epoch seconds (JSON integer or digit string, as WeChat sends them) -> tz-aware UTC."""
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))
    ):
        raise MappingError(f"{field}: expected integer epoch seconds, got {_describe(value)}")
    seconds = int(value)
    if not 0 <= seconds < _MAX_EPOCH_SECONDS:
        raise MappingError(f"{field}: {seconds} is out of range for epoch seconds (milliseconds?)")
    return datetime.fromtimestamp(seconds, UTC)


# -- money ---------------------------------------------------------------------------------------


def money(value: Any, field: str) -> Decimal:
    """A decimal amount in major units: a decimal string ("199.00") or a JSON number -> exact Decimal.

    JSON floats go through ``str`` (shortest round-trip repr), so 195.66 becomes Decimal("195.66"),
    never Decimal(195.66) = 195.659999...
    """
    if isinstance(value, bool):
        raise MappingError(f"{field}: expected an amount, got {_describe(value)}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise MappingError(f"{field}: expected a finite amount, got {_describe(value)}")
        amount = Decimal(str(value))
    elif isinstance(value, str) and _DECIMAL_STRING.fullmatch(value):
        amount = Decimal(value)
    else:
        raise MappingError(f"{field}: expected a decimal amount, got {_describe(value)}")
    if not amount.is_finite():
        raise MappingError(f"{field}: expected a finite amount, got {_describe(value)}")
    return amount


def optional_money(value: Any, field: str) -> Decimal | None:
    """Like ``money`` but None stays None (for amounts a platform may omit)."""
    return None if value is None else money(value, field)


def money_from_minor_units(value: Any, field: str, exponent: int = 2) -> Decimal:
    """An integer count of minor units (WeChat fen, cents) -> Decimal in major units: 1999 -> 19.99."""
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))
    ):
        raise MappingError(f"{field}: expected an integer amount in minor units, got {_describe(value)}")
    return Decimal(int(value)).scaleb(-exponent)


def totals_paid_with_postage(*, goods: Decimal, postage: Decimal, paid: Decimal, refunded: Decimal) -> Totals:
    """Totals of a Taobao or Youzan order: ``paid`` includes the postage, prices include VAT (no tax line),
    and the discount is whatever the goods as listed plus postage came to above what the buyer paid."""
    return Totals(
        subtotal=paid - postage,
        discount=goods + postage - paid,
        shipping=postage,
        tax=Decimal("0.00"),
        total=paid,
        refunded=refunded,
    )


# -- strings and ids -----------------------------------------------------------------------------


def blank_to_none(value: Any, field: str) -> str | None:
    """Optional text: None, "" and whitespace-only become None; other text is stripped.

    Integers are accepted and rendered (some platforms send postal codes or phones as numbers).
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise MappingError(f"{field}: expected text, got {_describe(value)}")
    stripped = value.strip()
    return None if stripped == MASK else stripped or None


def id_str(value: Any, field: str) -> str:
    """A platform id as a string. JSON integers stay exact (Python ints are unbounded); floats are refused
    because an id above 2**53 has already lost digits by the time it is a float."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise MappingError(f"{field}: expected an id (integer or non-empty string), got {_describe(value)}")


def optional_id_str(value: Any, field: str) -> str | None:
    """Like ``id_str`` but None and "" become None (Shopify custom line items have no product id)."""
    if value is None or value == "":
        return None
    return id_str(value, field)


def join_name(*parts: Any) -> str | None:
    """First and last name (or any parts) joined by a space, blanks skipped; None when nothing is left."""
    words = [part.strip() for part in parts if isinstance(part, str) and part.strip() not in ("", MASK)]
    return " ".join(words) or None


def objects(obj: dict[str, Any], key: str, where: str = "") -> list[dict[str, Any]]:
    """obj[key] as a list of objects; absent or null is an empty list, anything else malformed an error."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise MappingError(f"{where}{key}: expected a list of objects")
    return value


def json_object(item: Any, where: str, what: str = "an order") -> dict[str, Any]:
    """One entry of a document's list that must be an object; ``what`` names it ("a trade") in the error."""
    if not isinstance(item, dict):
        raise MappingError(f"{where}: expected {what} object, got {type(item).__name__}")
    return item


def json_objects(items: Any, key: str, what: str = "an order") -> list[dict[str, Any]]:
    """A document's list of orders, read from its ``key``: a list whose every entry is an object."""
    if not isinstance(items, list):
        raise MappingError(f'"{key}" must be a list, got {type(items).__name__}')
    return [json_object(item, f"{key}[{index}]", what) for index, item in enumerate(items)]


def china_address(
    *,
    name: str | None,
    phone: str | None,
    province: str | None,
    city: str | None,
    district: str | None,
    address1: str | None,
    address2: str | None = None,
    postal_code: str | None = None,
) -> Address | None:
    """A mainland-China shipping address from fields already read; None when the payload held none of them
    (a virtual good, or a masked payload), never an Address of blanks."""
    if not any((name, phone, province, city, district, address1, address2, postal_code)):
        return None
    return Address(name, phone, "CN", province, city, district, address1, address2, postal_code)


def unit_count(value: Any, field: str) -> int:
    """A whole number of units >= 0 (booleans, floats and strings are malformed, not coerced)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MappingError(f"{field}: expected a whole number of units >= 0, got {value!r}")
    return value


@contextmanager
def about_order(platform: str, external_id: str) -> Iterator[None]:
    """Prefix every MappingError raised inside with the order, so a detail read in the exception queue
    points at it ("shopify order 450789469: line_items[0].price: ...")."""
    try:
        yield
    except MappingError as error:
        raise MappingError(f"{platform} order {external_id}: {error.detail}", error.reason) from error


def map_identified(
    platform: str,
    display_name: str,
    payload: Any,
    id_field: str,
    build: Callable[[dict[str, Any], str], CanonicalOrder],
) -> CanonicalOrder:
    """Check that ``payload`` is an order object with an id at ``id_field``, then ``build`` it (errors named
    after the order)."""
    if not isinstance(payload, dict):
        raise MappingError(f"expected a {display_name} order object, got {type(payload).__name__}")
    if payload.get(id_field) is None:
        raise MappingError(f"{id_field}: missing; a {display_name} order always has one")
    external_id = id_str(payload[id_field], id_field)
    with about_order(platform, external_id):
        return build(payload, external_id)


# -- personal data -------------------------------------------------------------------------------

# What a masked text becomes: a fixed marker (no digest of the value: a digest of a phone number or an
# e-mail address can be reversed by trying them all). Types and shapes are kept, so a masked payload still
# passes its platform's schema; the schemas constrain no text a platform declares personal.
MASK = "•••"

# Paths as a tree: {key: subtree, or None where the value at that key is masked}.
PathTree = dict[str, "PathTree | None"]


@dataclass(frozen=True, slots=True)
class PersonalData:
    """Where a platform's order payload holds personal data: paths such as ``"billing/email"``, with
    ``*`` for every item of a list (``"line_items/*/properties"``). A path to an object or a list masks
    everything inside it.

    - ``personal``: what fulfilling the order never needs (the buyer's e-mail and phone outside the
      shipping address, the billing address, IPs, user agents, platform user ids such as openids,
      nicknames): masked before the raw payload is stored, so it is never kept at all;
    - ``fulfilment``: what shipping it needs (the receiver's name, phone and street, the buyer's notes):
      stored, then masked by the retention job once the order has been closed for the configured days.

    Country, province and city stay in both: reports by region need them and they name no one.
    """

    personal: frozenset[str]
    fulfilment: frozenset[str]

    def __post_init__(self) -> None:
        if both := self.personal & self.fulfilment:
            raise ValueError(f"paths both personal and fulfilment: {sorted(both)}")


def under(prefix: str, *names: str) -> frozenset[str]:
    """The paths ``prefix/name`` of each name: the fields of one object (an address)."""
    return frozenset(f"{prefix}/{name}" for name in names)


def path_tree(paths: Iterable[str]) -> PathTree:
    """The paths as a tree ``mask`` walks: one lookup per key along a path, whatever the number of paths."""
    tree: PathTree = {}
    for path in sorted(paths):  # a path before the longer ones it covers ("a" masks "a/b" already)
        node: PathTree | None = tree
        *parents, last = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
            if node is None:
                break
        else:
            node[last] = None
    return tree


def mask(payload: Any, paths: PathTree) -> Any:
    """``payload`` with every value at ``paths`` masked: a non-empty text becomes ``MASK``, a number None;
    "", None and booleans stay as they are (they hold nothing), objects and lists are masked inside.

    Pure, deterministic and idempotent (masking a masked payload changes nothing), so the digest of a
    stored payload still dedupes the same payload fetched again. Only the objects and lists along a masked
    path are copied; everything else is shared with ``payload``, which is left untouched. Never raises: a
    path the payload does not have (or has in another shape) is skipped.
    """
    if isinstance(payload, dict):
        copied: dict[str, Any] | None = None
        for key, below in paths.items():
            value = payload.get(key, _ABSENT)
            if value is _ABSENT:
                continue
            if below is not None:
                masked = mask(value, below)
            elif type(value) is str:  # the common case, inline: ~40 paths per order on the ingest path
                if value == MASK or not value or value.isspace():
                    continue
                masked = MASK
            else:
                masked = _masked(value)
            if masked is not value:
                if copied is None:
                    copied = dict(payload)
                copied[key] = masked
        return payload if copied is None else copied
    if isinstance(payload, list) and "*" in paths:
        below = paths["*"]
        items = [_masked(item) if below is None else mask(item, below) for item in payload]
        return payload if all(new is old for new, old in zip(items, payload, strict=True)) else items
    return payload


_ABSENT = object()


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return MASK if value.strip() else value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return None
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value
