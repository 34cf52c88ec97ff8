"""Small pure helpers every platform mapping uses to turn wire values into canonical ones.

Each helper takes the raw value plus ``field``, the value's path in the payload (``"line_items[2].price"``),
and raises ``MappingError`` naming that path when the value cannot be converted. They never guess:
money never passes through float, ids never pass through float, and times always end up tz-aware UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

from channelhub.canonical import CanonicalOrder, MappingError

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
    return stripped or None


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
    words = [part.strip() for part in parts if isinstance(part, str) and part.strip()]
    return " ".join(words) or None


def objects(obj: dict[str, Any], key: str, where: str = "") -> list[dict[str, Any]]:
    """obj[key] as a list of objects; absent or null is an empty list, anything else malformed an error."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise MappingError(f"{where}{key}: expected a list of objects")
    return value


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
