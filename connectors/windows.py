"""Incremental windows: how a platform wants a time range written, and how long a range it accepts.

Inside ChannelHub a window is a half-open ``[start, end)`` of tz-aware UTC datetimes over the platform's
*updated* time. At the edge we only ever widen it: the start is floored and the end ceiled to the
format's granularity, so rounding can add a boundary duplicate (harmless: ingest is idempotent) but never
drop an order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

Rounding = Literal["floor", "ceil"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be a tz-aware datetime (ChannelHub keeps times in UTC), got {moment!r}"
        )


def round_time(moment: datetime, granularity: timedelta, rounding: Rounding) -> datetime:
    """Round ``moment`` down or up to a multiple of ``granularity`` since the Unix epoch."""
    _require_aware(moment, "moment")
    step = granularity // timedelta(microseconds=1)
    offset = (moment - _EPOCH) // timedelta(microseconds=1)
    units = offset // step if rounding == "floor" else -(-offset // step)
    return (_EPOCH + timedelta(microseconds=units * step)).astimezone(moment.tzinfo)


@dataclass(frozen=True)
class TimeFormat:
    """How a platform writes a time parameter.

    kind: ``iso8601`` (with the offset of ``tz``), ``epoch_seconds``, ``epoch_millis``, or ``pattern``
    (``strftime`` with ``pattern``, naive wall time in ``tz``: Youzan/Taobao "yyyy-MM-dd HH:mm:ss" GMT+8)."""

    kind: Literal["iso8601", "epoch_seconds", "epoch_millis", "pattern"] = "iso8601"
    pattern: str = ""
    tz: tzinfo = UTC

    @property
    def granularity(self) -> timedelta:
        return timedelta(milliseconds=1) if self.kind == "epoch_millis" else timedelta(seconds=1)

    def format(self, moment: datetime, rounding: Rounding = "floor") -> str | int:
        moment = round_time(moment, self.granularity, rounding)
        if self.kind == "epoch_seconds":
            return int((moment - _EPOCH).total_seconds())
        if self.kind == "epoch_millis":
            return (moment - _EPOCH) // timedelta(milliseconds=1)
        local = moment.astimezone(self.tz)
        if self.kind == "pattern":
            return local.strftime(self.pattern)
        return local.isoformat(timespec="seconds")


ISO8601_UTC = TimeFormat("iso8601")
EPOCH_SECONDS = TimeFormat("epoch_seconds")
EPOCH_MILLIS = TimeFormat("epoch_millis")
CHINA_WALL_TIME = TimeFormat("pattern", "%Y-%m-%d %H:%M:%S", ZoneInfo("Asia/Shanghai"))


@dataclass(frozen=True)
class WindowSpec:
    """The incremental filter of a list endpoint.

    start_param/end_param: parameter names (``updated_at_min``/``updated_at_max``, ``start_modified``...).
    max_span: longest range the API accepts (Taobao 1 day, WeChat 7 days); longer windows are split;
        None: no limit.
    location: ``query`` or ``body`` (JSON); ``container`` nests the pair (WeChat ``update_time_range``).
    """

    start_param: str
    end_param: str
    time_format: TimeFormat = ISO8601_UTC
    max_span: timedelta | None = None
    location: Literal["query", "body"] = "query"
    container: str | None = None

    def render(self, start: datetime, end: datetime) -> dict[str, Any]:
        pair = {
            self.start_param: self.time_format.format(start, "floor"),
            self.end_param: self.time_format.format(end, "ceil"),
        }
        return {self.container: pair} if self.container else pair

    def split(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        return iter_windows(start, end, self.max_span, granularity=self.time_format.granularity)


def iter_windows(
    start: datetime,
    end: datetime,
    max_span: timedelta | None = None,
    *,
    granularity: timedelta | None = None,
) -> Iterator[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into contiguous half-open windows no longer than ``max_span``.

    With ``granularity`` the outer bounds are first widened to it (start floored, end ceiled), so every
    boundary is exactly representable in the platform's format and no sub-window grows past ``max_span`` when
    it is written out. An empty range yields nothing; ``start > end`` is a caller bug and raises.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    if start > end:
        raise ValueError(f"window start {start.isoformat()} is after its end {end.isoformat()}")
    if start == end:
        return
    if granularity is not None:
        start = round_time(start, granularity, "floor")
        end = round_time(end, granularity, "ceil")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if max_span is None or end - start <= max_span:
        yield start, end
        return
    if max_span <= timedelta(0):
        raise ValueError("max_span must be positive")
    if granularity is not None and max_span < granularity:
        raise ValueError("max_span is shorter than the time format's granularity")
    step = max_span
    if granularity is not None:  # keep interior boundaries on the granularity grid
        step = granularity * math.floor(max_span / granularity)
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        yield cursor, upper
        cursor = upper


def bisect_window(
    start: datetime, end: datetime, granularity: timedelta
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]] | None:
    """Halves of ``[start, end)`` on the granularity grid, or None when it cannot be split any further."""
    if end - start < 2 * granularity:
        return None
    middle = round_time(start + (end - start) / 2, granularity, "floor")
    return (start, middle), (middle, end)
