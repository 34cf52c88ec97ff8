"""Push each listing's sellable quantity to one channel: warehouse -> stock policy -> connector.

One pusher of a channel at a time (``stock_push_lock``, also taken by reconciliation's repair). Only
listings whose sellable quantity differs from what the channel was last told are pushed, so a run
coalesces every stock change since the previous one into one set per listing. While the channel's own order
sync is stale (never ran, or no good run for ``stale_after``), what it sold meanwhile is not reserved here, so
an absolute set could offer those units again: only a listing the channel shows above its sellable quantity
is pushed (down), the others are held until a good sync (``held_sync_stale``). Each outcome is recorded
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
from channelhub.platforms import ChannelConnector, channel_connector
from channelhub.sync import sync_is_current
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
            current = sync_is_current(conn, channel)
        report.listings = len(listings)
        changed = [listing for listing in listings if listing.changed]
        report.changed = len(changed)
        if not changed:
            return report

        connector = channel_connector(channel, credentials, engine=engine)
        held: list[ListingStock] = []
        if not current:
            changed, held = decreases_only(connector, changed)
            log.warning(
                "%s: its order sync is stale: %d listings pushed down only, %d held until a good sync",
                channel.code,
                len(changed),
                len(held),
            )
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
            if held:
                report.outcomes["held_sync_stale"] = len(held)
            log.info("stock push %s", report.summary_line())
    return report


def decreases_only(
    connector: ChannelConnector, listings: list[ListingStock]
) -> tuple[list[ListingStock], list[ListingStock]]:
    """(the listings the channel shows above their sellable quantity, the rest): the first may be pushed
    down whatever the channel sold meanwhile; the rest, unreadable ones included, wait for a good sync."""
    down: list[ListingStock] = []
    held: list[ListingStock] = []
    pushes = [as_push(listing) for listing in listings]
    for listing, listed in zip(listings, connector.listed_stocks(pushes), strict=True):
        lower = isinstance(listed, int) and listing.sellable < listed
        (down if lower else held).append(listing)
    return down, held


def as_push(listing: ListingStock) -> StockPush:
    return StockPush(
        merchant_sku=listing.merchant_sku,
        channel_product_id=listing.channel_product_id,
        channel_variant_id=listing.channel_variant_id,
        quantity=listing.sellable,
    )
