"""The live POS feed in ``make demo-once``: one store posts one sale over HTTP; every channel sells less.

``demo_pos_sale(engine, config)`` serves the feed in a thread (``channelhub.webhooks.serving``), gives the
demo store a key the way production does (its Airflow connection ``pos_<store>``, here an
``AIRFLOW_CONN_*`` variable of this process for the call's duration), posts one sale document with that key,
posts it again (answered from the first result, nothing changes), and prints the answers and each channel's
sellable quantity of the SKU before and after.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import Engine, select

from channelhub.config import HubConfig
from channelhub.store_feed import DOCUMENTS_PATH, StockChanged, create_feed, store_conn_id
from channelhub.webhooks import serving
from warehouse import catalog
from warehouse.models import channel_listings, channels, skus
from warehouse.stock_policy import channel_stock

DEMO_STORE = "DEMO-STORE-1"
DEMO_STOCK = 20  # units the demo store holds of the SKU before its first sale


@contextmanager
def _store_key(store: str, key: str) -> Iterator[None]:
    name = f"AIRFLOW_CONN_{store_conn_id(store).upper()}"
    before = os.environ.get(name)
    os.environ[name] = json.dumps({"conn_type": "generic", "password": key})
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _listed_sku(engine: Engine) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            select(skus.c.code)
            .join(channel_listings, channel_listings.c.sku_id == skus.c.id)
            .join(channels, channels.c.id == channel_listings.c.channel_id)
            .order_by(channel_listings.c.id)
            .limit(1)
        ).scalar()
    if found is None:
        raise RuntimeError("no SKU is listed on any channel yet: run the first sync before the POS demo")
    return found


def _sellable(engine: Engine, config: HubConfig, sku: str) -> dict[str, int]:
    sellable = {}
    with engine.connect() as conn:
        for channel in config.channels:
            if not channel.enabled:
                continue
            for listing in channel_stock(conn, channel.code, channel.stock_policy):
                if listing.sku == sku:
                    sellable[channel.code] = listing.sellable
    return sellable


def demo_pos_sale(
    engine: Engine,
    config: HubConfig,
    *,
    store: str = DEMO_STORE,
    sku: str | None = None,
    quantity: int = 2,
    stock_changed: StockChanged | None = None,
) -> dict[str, Any]:
    """Post one sale of ``quantity`` x ``sku`` (default: the first listed SKU) at ``store`` (created as a
    store with ``DEMO_STOCK`` units when missing) through the feed over HTTP; print and return the answers
    and the channels' sellable quantities before and after."""
    sku = sku or _listed_sku(engine)
    with engine.begin() as conn:
        catalog.upsert_location(conn, store, f"demo store {store}", "store")
        catalog.receive_stock(conn, sku, store, DEMO_STOCK, f"receive:demo-pos:{store}:{sku}")
    before = _sellable(engine, config, sku)
    document = {
        "document_id": f"DEMO-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}",
        "type": "sale",
        "location": store,
        "occurred_at": datetime.now(UTC).isoformat(),
        "lines": [{"line_no": 1, "sku": sku, "quantity": quantity, "unit_price": "99.00"}],
    }
    key = f"demo-{uuid.uuid4().hex}"
    headers = {"X-Store-Code": store, "Authorization": f"Bearer {key}"}
    with _store_key(store, key), serving(create_feed(engine, stock_changed=stock_changed)) as url:
        first = requests.post(url + DOCUMENTS_PATH, json=document, headers=headers, timeout=30)
        again = requests.post(url + DOCUMENTS_PATH, json=document, headers=headers, timeout=30)
    after = _sellable(engine, config, sku)
    print(f"- POS feed: {store} posts sale {document['document_id']} ({quantity} x {sku}) over HTTP")
    print(f"  answer {first.status_code}: {first.text}")
    print(f"  posted again -> {again.status_code}, replayed={again.json().get('replayed')}: nothing changes")
    for code in sorted(before):
        print(f"  {code:<20} sellable {before[code]:>6} -> {after.get(code, 0)}")
    return {
        "document": document,
        "answer": first.json(),
        "status": first.status_code,
        "again": again.json(),
        "sellable_before": before,
        "sellable_after": after,
    }
