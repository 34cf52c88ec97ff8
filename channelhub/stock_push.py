"""Push each listing's sellable quantity to one channel: warehouse -> stock policy -> connector.

One pusher of a channel at a time (``stock_push_lock``, also taken by reconciliation's repair). Only
listings whose sellable quantity differs from what the channel was last told are pushed, so a run
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
from channelhub.credentials import ChannelCredentials
from channelhub.outbound import push_each
from channelhub.platforms import channel_connector
from connectors.pushes import StockPush
from warehouse.stock_policy import ListingStock, channel_stock, record_push, stock_push_lock

log = logging.getLogger("channelhub.stock_push")


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
    with stock_push_lock(engine, channel.code):  # from the read of what is sellable to its record
        with engine.connect() as conn:
            listings = channel_stock(conn, channel.code, channel.stock_policy)
        report.listings = len(listings)
        changed = [listing for listing in listings if listing.changed]
        report.changed = len(changed)
        if not changed:
            return report

        connector = channel_connector(channel, credentials, engine=engine)
        try:
            report.outcomes = push_each(
                engine,
                changed,
                lambda listing: connector.set_stock(as_push(listing)),
                lambda conn, listing, status, detail: record_push(
                    conn, channel.code, listing, status, detail
                ),
                lambda listing: listing.sku,
                f"stock pushes to {channel.code}",
            )
        finally:
            log.info("stock push %s", report.summary_line())
    return report


def as_push(listing: ListingStock) -> StockPush:
    return StockPush(
        merchant_sku=listing.merchant_sku,
        channel_product_id=listing.channel_product_id,
        channel_variant_id=listing.channel_variant_id,
        quantity=listing.sellable,
    )
