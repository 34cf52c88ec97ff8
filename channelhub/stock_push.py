"""Push each listing's sellable quantity to one channel: warehouse -> stock policy -> connector.

Only listings whose sellable quantity differs from what the channel was last told are pushed, so a run
coalesces every stock change since the previous one into one set per listing. Each outcome is recorded
(``stock_push_log``); a platform's refusal becomes a ``push_failed`` exception; transient trouble on some
listings does not stop the others, and the run then fails so Airflow retries it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine

from channelhub.config import ChannelConfig
from channelhub.credentials import ChannelCredentials, load_credentials
from channelhub.platforms import get_platform
from connectors.errors import ConnectorError
from connectors.pushes import StockPush
from warehouse.stock_policy import channel_stock, record_push

log = logging.getLogger("channelhub.stock_push")


class StockPushIncomplete(RuntimeError):
    """Some listings could not be pushed for transient reasons; the rest were, and are recorded."""


@dataclass
class StockPushReport:
    channel: str
    listings: int = 0
    changed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def summary_line(self) -> str:
        outcomes = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items())) or "nothing to push"
        return f"{self.channel}: {self.listings} listings, {self.changed} changed: {outcomes}"


def push_stock(
    engine: Engine, channel: ChannelConfig, *, credentials: ChannelCredentials | None = None
) -> StockPushReport:
    report = StockPushReport(channel.code)
    with engine.connect() as conn:
        listings = channel_stock(conn, channel.code, channel.stock_policy)
    report.listings = len(listings)
    changed = [listing for listing in listings if listing.changed]
    report.changed = len(changed)
    if not changed:
        return report

    connector = get_platform(channel.platform).connector(
        credentials or load_credentials(channel.conn_id), channel
    )
    failures: list[str] = []
    for listing in changed:
        push = StockPush(
            merchant_sku=listing.merchant_sku,
            channel_product_id=listing.channel_product_id,
            channel_variant_id=listing.channel_variant_id,
            quantity=listing.sellable,
        )
        try:
            result = connector.set_stock(push)
            status, detail = result.status, result.detail
        except ConnectorError as err:  # transient after the client's own retries: record, go on, fail the run
            status, detail = "failed", str(err)
            failures.append(f"{listing.sku}: {err}")
        with engine.begin() as conn:
            record_push(conn, channel.code, listing, status, detail)
        report.outcomes[status] += 1
    log.info("stock push %s", report.summary_line())
    if failures:
        raise StockPushIncomplete(
            f"{channel.code}: {len(failures)} of {len(changed)} stock pushes failed: "
            + "; ".join(failures[:5])
        )
    return report
