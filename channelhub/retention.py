"""The personal data retention job: blank what the hub holds of buyers whose orders closed long enough ago.

``run_retention`` is what the daily ``personal_data_retention`` DAG and ``channelhub retention run`` call:
``retention.personal_data_days`` (config/channels.yaml, default 90) after an order closed, its customer and
the receiver's name, phone and street are blanked in the warehouse, and every raw payload of it is masked
with its platform's declared personal and fulfilment paths (``mappings.<platform>.PERSONAL_DATA``); the
raw payloads of orders that never landed follow once their exceptions have been closed as long. The rules
and SQL are ``warehouse.retention``'s; this module only knows which platform masks what.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from channelhub.config import HubConfig
from channelhub.platforms import get_platform
from warehouse import retention

log = logging.getLogger("channelhub.retention")


@dataclass(frozen=True, slots=True)
class RetentionReport:
    days: int
    cutoff: datetime  # orders closed (last changed) before it, exceptions closed before it
    dry_run: bool
    counts: retention.RetentionCounts

    def summary_line(self) -> str:
        verb = "would blank" if self.dry_run else "blanked"
        return (
            f"personal data retention ({self.days} days, closed before {self.cutoff:%Y-%m-%d %H:%M:%S} UTC): "
            f"{verb} {self.counts.orders} orders and {self.counts.order_payloads} of their raw payloads, "
            f"{self.counts.exception_payloads} raw payloads of orders that never landed, "
            f"{self.counts.inbox_bodies} webhook bodies never applied"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            **self.counts.as_dict(),
        }


def erase_payload(platform: str, payload: Any) -> Any:
    """A stored raw payload of ``platform`` with every personal and fulfilment path masked."""
    return get_platform(platform).erased(payload)


def run_retention(
    engine: Engine,
    config: HubConfig,
    *,
    days: int | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
) -> RetentionReport:
    """Blank the personal data of orders closed ``days`` (default: the config's) before ``now``; a dry
    run only counts what would be blanked."""
    days = config.retention.personal_data_days if days is None else days
    if days < 1:
        raise ValueError(f"retention days must be at least 1, got {days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    if dry_run:
        with engine.connect() as conn:
            counts = retention.due(conn, cutoff)
    else:
        counts = retention.erase_closed_orders(engine, cutoff, erase_payload, batch_size)
        counts.exception_payloads = retention.erase_exception_payloads(
            engine, cutoff, erase_payload, batch_size
        )
        counts.inbox_bodies = retention.erase_inbox_bodies(engine, cutoff)
    report = RetentionReport(days, cutoff, dry_run, counts)
    log.info("%s", report.summary_line())
    return report
