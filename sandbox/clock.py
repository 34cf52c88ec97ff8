"""The sandbox's sense of "now": real time plus an offset, or frozen at an instant (tests freeze it).

Every simulator asks its world's clock for the time, so a test can freeze the world, look at it,
advance an hour and watch orders change, without sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the sandbox clock works in aware UTC datetimes")
    return value.astimezone(UTC)


class Clock:
    """A thread-safe clock in UTC.

    Unfrozen it reads ``real now + offset``; frozen it reads a fixed instant that only ``advance``
    and ``set`` move.
    """

    def __init__(self, *, offset: timedelta = timedelta(0), frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = offset
        self._frozen_at = _require_aware(frozen_at) if frozen_at is not None else None

    @classmethod
    def frozen(cls, at: datetime) -> Clock:
        return cls(frozen_at=at)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def timestamp(self) -> float:
        """``now()`` as POSIX seconds (what the world's arithmetic uses)."""
        return self.now().timestamp()

    @property
    def is_frozen(self) -> bool:
        with self._lock:
            return self._frozen_at is not None

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at ``at`` (default: the current reading). Returns the frozen instant."""
        with self._lock:
            if at is not None:
                self._frozen_at = _require_aware(at)
            elif self._frozen_at is None:
                self._frozen_at = datetime.now(UTC) + self._offset
            return self._frozen_at

    def unfreeze(self) -> None:
        """Let time run again from the frozen instant (the offset absorbs the jump)."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - datetime.now(UTC)
                self._frozen_at = None

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by ``delta`` (negative moves it back); works frozen or running."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
                return self._frozen_at
            self._offset += delta
            return datetime.now(UTC) + self._offset

    def set(self, at: datetime) -> datetime:
        """Jump to ``at``, keeping the clock frozen or running as it was."""
        at = _require_aware(at)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = at
            else:
                self._offset = at - datetime.now(UTC)
            return at

    def __repr__(self) -> str:
        state = f"frozen_at={self._frozen_at.isoformat()}" if self._frozen_at else f"offset={self._offset}"
        return f"Clock({state})"
