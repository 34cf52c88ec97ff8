"""Injected misbehaviour shared by every platform simulator (each renders it in its platform's own way)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    """Injected misbehaviour; mutable at runtime (``update`` or ``POST /_sandbox/faults``).

    Probabilities are per API request and drawn from a seeded RNG, so a run with the same request sequence
    meets the same faults.
    """

    rate_limit_storm: float = 0.0  # forced 429 (even with room in the bucket)
    server_error_rate: float = 0.0  # 500 / 502 / 503, the gateway ones with an HTML body
    latency_seconds: float = 0.0  # added before every API response
    truncated_body_rate: float = 0.0  # 200 with the JSON body cut short
    # Share of orders (chosen per order, so the same ones every time) served with a line quantity of the wrong
    # type, as a platform bug would: the connector schema must reject them, the rest of the page must land.
    malformed_order_rate: float = 0.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._validate()
        self._rng = random.Random(self.seed)

    def _validate(self) -> None:
        for name in ("rate_limit_storm", "server_error_rate", "truncated_body_rate", "malformed_order_rate"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0")

    def to_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def update(self, **changes: Any) -> dict[str, float | int]:
        known = set(self.to_dict())
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            previous = self.to_dict()
            for name, value in changes.items():
                setattr(self, name, int(value) if name == "seed" else float(value))
            try:
                self._validate()
            except ValueError:
                for name, value in previous.items():
                    setattr(self, name, value)
                raise
            if "seed" in changes:
                self._rng = random.Random(self.seed)
        return self.to_dict()

    def clear(self) -> None:
        self.update(
            rate_limit_storm=0.0,
            server_error_rate=0.0,
            latency_seconds=0.0,
            truncated_body_rate=0.0,
            malformed_order_rate=0.0,
        )

    def order_is_malformed(self, index: int) -> bool:
        rate = self.malformed_order_rate
        return rate > 0 and random.Random(f"{self.seed}:malformed:{index}").random() < rate

    def roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._rng.random() < probability

    def choose(self, options: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._rng.choice(options)
