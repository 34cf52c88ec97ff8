"""Injected misbehaviour shared by every platform simulator (each renders it in its platform's own way).

The knobs, and how the simulators render them:

- ``rate_limit_storm``: forced throttling (Shopify/WooCommerce 429 + ``Retry-After``, WeChat errcode 45011,
  Youzan's gateway throttle code), even with room in the platform's budget.
- ``server_error_rate``: 500 / 502 / 503, the gateway ones with an HTML body (WeChat: half are errcode -1).
- ``latency_seconds``: added before every API answer.
- ``timeout_rate`` + ``hang_seconds``: the platform acts on the request, then holds its answer back for
  ``hang_seconds`` (longer than the client's read timeout: the client gives up, not knowing whether a write
  landed).
- ``truncated_body_rate``: a 200 whose JSON body is cut short.
- ``malformed_order_rate``: orders (chosen per order, so the same ones every time) served with a line quantity
  of the wrong type, as a platform bug would.
- ``unreadable_order_rate``: orders (per order) with a lone surrogate escape in the buyer's note, ``1e400``
  as their weight and a note attribute nested 2,000 levels deep: values a decoder cannot keep as they are
  (Shopify's sandbox serves them).
- ``duplicate_page_rate``: a listing serves the page it served last again instead of the one asked for (a
  lagging cache): the previous cursor's answer for a cursor (Shopify ``page_info``, WeChat ``next_key``), the
  previous page's content for the next page number (WooCommerce ``page``, Youzan ``page_no``).
- ``shuffle_page_rate``: a listing page's items come in a random order (no platform promises an order inside
  a page); cursors and totals stay what the sorted listing says.
- ``clock_step_seconds``: every listing request moves the world clock on by this much before it is answered,
  so orders get events and new orders appear while a window is paged (they move in the sort order).
- ``clock_skew_seconds``: the platform's clock reads the sandbox clock plus this (negative: behind).
- ``token_expiry_rate``: before answering, the platform expires every short-lived token it issued (WeChat
  42001 / 40001, Youzan ``gw_err_resp`` 4202). Shopify's admin token and WooCommerce's consumer key do not
  expire: there the knob has no effect (``credentials_revoked`` is their failure).
- ``credentials_revoked``: the platform refuses the connection's credentials (Shopify 401 "Invalid API key
  or access token", WooCommerce 401 ``woocommerce_rest_authentication_error``, WeChat 40125 on
  ``cgi-bin/token`` and 40001 on calls, Youzan 1103 on ``/auth/token`` and 4201 on calls: the shop's grant
  withdrawn) until cleared.
- ``webhook_lost_rate``, ``webhook_duplicate_rate``, ``webhook_reorder_rate``, ``webhook_forged_rate``: per
  webhook delivery (``sandbox.webhooks``, drawn from an RNG of their own so API traffic does not move them):
  never sent; sent twice with the same delivery id; held back and sent after the next delivery; preceded by
  an extra request signed with a wrong key (someone else's forgery: the real delivery still goes out).
- ``webhook_retry_scale``: the platform's retry delays times this (1.0 real hours; tests use ~0.001).
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, TypeVar

from sandbox.clock import Clock

_PROBABILITIES = (
    "rate_limit_storm",
    "server_error_rate",
    "timeout_rate",
    "truncated_body_rate",
    "malformed_order_rate",
    "unreadable_order_rate",
    "duplicate_page_rate",
    "shuffle_page_rate",
    "token_expiry_rate",
    "webhook_lost_rate",
    "webhook_duplicate_rate",
    "webhook_reorder_rate",
    "webhook_forged_rate",
)
MAX_CLOCK_SKEW_SECONDS = 86400.0
_Value = TypeVar("_Value")


def _knob(default: _Value, doc: str) -> _Value:
    """A fault setting with its one-line help (``python -m sandbox --help`` shows it)."""
    return field(default=default, metadata={"help": doc})


@dataclass
class Faults:
    """Injected misbehaviour; mutable at runtime (``update`` or ``POST /_sandbox/faults``).

    Probabilities are per API request (per listing page for the paging ones) and drawn from a seeded RNG, so a
    run with the same request sequence meets the same faults.
    """

    # Each knob's help is its ``--flag`` help in ``python -m sandbox`` (the CLI is derived from these fields).
    rate_limit_storm: float = _knob(0.0, "forced 429 / throttle answers, even with room in the bucket")
    server_error_rate: float = _knob(0.0, "500 / 502 / 503, the gateway ones with an HTML body")
    latency_seconds: float = _knob(0.0, "added before every API answer")
    timeout_rate: float = _knob(0.0, "answers held back for hang_seconds, after the platform acted")
    hang_seconds: float = _knob(
        35.0, "how long a timeout_rate answer is held back (past a 30 s read timeout)"
    )
    truncated_body_rate: float = _knob(0.0, "200 with the JSON body cut short")
    # Share of orders (chosen per order, so the same ones every time) served with a line quantity of the wrong
    # type, as a platform bug would: the connector schema must reject them, the rest of the page must land.
    malformed_order_rate: float = _knob(0.0, "share of orders served with a wrongly typed line quantity")
    # Share of orders (again per order) whose text or numbers no decoder can keep as they are: a buyer note
    # with half an emoji (a lone surrogate escape), a number past a float's range (1e400) and a note attribute
    # nested past any decoder. Shopify only.
    unreadable_order_rate: float = _knob(0.0, "share of orders with a surrogate, 1e400, deep nesting")
    duplicate_page_rate: float = _knob(0.0, "a listing page served again in place of the next one")
    shuffle_page_rate: float = _knob(0.0, "a listing page's items in a random order")
    clock_step_seconds: float = _knob(0.0, "the world clock moves on by this on every listing request")
    clock_skew_seconds: float = _knob(
        0.0, "the platform's clock = the sandbox clock + this (negative: behind)"
    )
    token_expiry_rate: float = _knob(0.0, "short-lived tokens expired before answering (WeChat, Youzan)")
    credentials_revoked: bool = _knob(False, "the connection's credentials refused until cleared")
    webhook_lost_rate: float = _knob(0.0, "webhook deliveries never sent")
    webhook_duplicate_rate: float = _knob(0.0, "webhook deliveries sent twice (same delivery id)")
    webhook_reorder_rate: float = _knob(0.0, "webhook deliveries held back and sent after the next one")
    webhook_forged_rate: float = _knob(0.0, "webhook deliveries preceded by a forgery (a wrong signature)")
    webhook_retry_scale: float = _knob(1.0, "the platform's webhook retry delays times this (tests: 0.001)")
    seed: int = _knob(0, "seeds the fault draws")
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _webhook_rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._validate()
        self._rng = random.Random(self.seed)
        self._webhook_rng = random.Random(f"{self.seed}:webhooks")

    def _validate(self) -> None:
        for name, value in self.to_dict().items():
            # NaN passes every range check below, and an infinite latency would hold a request for good.
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        for name in ("latency_seconds", "hang_seconds", "clock_step_seconds", "webhook_retry_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if abs(self.clock_skew_seconds) > MAX_CLOCK_SKEW_SECONDS:
            raise ValueError(f"clock_skew_seconds must be within ±{MAX_CLOCK_SKEW_SECONDS:.0f}")

    def to_dict(self) -> dict[str, float | int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def update(self, **changes: Any) -> dict[str, float | int | bool]:
        known = set(self.to_dict())
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            previous = self.to_dict()
            try:
                for name, value in changes.items():
                    setattr(self, name, _coerce(name, value))
                self._validate()
            except (TypeError, ValueError) as error:
                for name, value in previous.items():
                    setattr(self, name, value)
                raise ValueError(str(error)) from None
            if "seed" in changes:
                self._rng = random.Random(self.seed)
                self._webhook_rng = random.Random(f"{self.seed}:webhooks")
        return self.to_dict()

    def clear(self) -> None:
        """Every knob back to its default (no misbehaviour); the seed and the RNG's position stay."""
        self.update(
            **{f.name: f.default for f in fields(self) if not f.name.startswith("_") and f.name != "seed"}
        )

    # -- drawing --------------------------------------------------------------------------------------

    def order_is_malformed(self, index: int) -> bool:
        rate = self.malformed_order_rate
        return rate > 0 and random.Random(f"{self.seed}:malformed:{index}").random() < rate

    def order_is_unreadable(self, index: int) -> bool:
        rate = self.unreadable_order_rate
        return rate > 0 and random.Random(f"{self.seed}:unreadable:{index}").random() < rate

    def roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._rng.random() < probability

    def webhook_roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._webhook_rng.random() < probability

    def choose(self, options: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._rng.choice(options)

    # -- helpers the simulators share ------------------------------------------------------------------

    def hang(self) -> float:
        """Seconds to hold this answer back (0: answer at once)."""
        return self.hang_seconds if self.roll(self.timeout_rate) else 0.0

    def shuffled(self, items: list[Any]) -> list[Any]:
        """``items`` in a random order when ``shuffle_page_rate`` fires, else as they are."""
        if len(items) < 2 or not self.roll(self.shuffle_page_rate):
            return items
        with self._lock:
            mixed = list(items)
            self._rng.shuffle(mixed)
        return mixed

    def step_clock(self, clock: Clock) -> None:
        """A listing request arrived: let the world move on (``clock_step_seconds``)."""
        if self.clock_step_seconds > 0:
            clock.advance(timedelta(seconds=self.clock_step_seconds))


def check_setting(name: str, value: Any) -> float | int | bool:
    """``value`` as fault setting ``name`` holds it, else a ValueError saying why (``update``'s rules),
    for front ends that take the settings one at a time (the ``python -m sandbox`` flags)."""
    if name.startswith("_") or name not in {f.name for f in fields(Faults)}:
        raise ValueError(f"unknown fault setting: {name}")
    coerced = _coerce(name, value)
    Faults(**{name: coerced})  # the other settings at their defaults, which always pass
    return coerced


def _coerce(name: str, value: Any) -> Any:
    if name == "seed":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"seed must be an integer, got {value!r}") from None
    if name == "credentials_revoked":
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"credentials_revoked must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


class ServedPages:
    """The page each listing served last, so ``duplicate_page_rate`` can serve it again (a lagging cache).

    A listing is identified by ``key`` (its filters, without the page or cursor); ``page`` names the page
    asked for (a cursor, a page number). Only a follow-up page is answered with the page served before it: the
    first page of a walk (no cursor, page 1) always comes as asked.
    """

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._last: dict[str, tuple[Hashable, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(filters: Any) -> str:
        return json.dumps(filters, sort_keys=True, default=str)

    def replay(self, key: str, page: Hashable, *, first: bool) -> Any | None:
        """The answer to serve instead of page ``page`` (the previous page's), or None to answer normally.
        ``first``: the request is for the first page of a walk."""
        with self._lock:
            last = self._last.get(key)
        if first or last is None or last[0] == page:
            return None
        return last[1] if self._faults.roll(self._faults.duplicate_page_rate) else None

    def remember(self, key: str, page: Hashable, answer: Any) -> None:
        with self._lock:
            self._last[key] = (page, answer)
