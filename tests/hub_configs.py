"""Hub config documents for tests (what ``config/channels.yaml`` holds), built instead of written by hand.

    config = hub_config("wx_sync", "wechat_channels", location="WH-WX", overlap_minutes=0, page_size=250)
    config_file, config = write_hub_config(tmp_path, {"shop": "shopify", "wx": "wechat_channels"})

A document has one location and channels fulfilling from it; a channel has only its code, platform,
``conn_id`` (its code) and fulfilment location plus the settings a test gives: everything else takes the
config's own defaults (``channelhub.config.parse_config``). Tests of the parser itself write their documents
by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from channelhub.config import HubConfig, load_config, parse_config

Channels = str | Iterable[str] | Mapping[str, str]  # a code, codes, or a mapping of code to platform


def hub_document(
    channels: Channels,
    platform: str = "shopify",
    *,
    location: str = "WH",
    **settings: Any,
) -> dict[str, Any]:
    """A document of location ``location`` and one channel per code of ``channels`` (of ``platform`` unless
    ``channels`` maps codes to platforms), each with ``settings`` (``overlap_minutes``, ``page_size``,
    ``stock_policy``, also ``conn_id`` ...) over its code, platform, conn_id (its code) and location."""
    if isinstance(channels, str):
        channels = [channels]
    platforms = channels if isinstance(channels, Mapping) else dict.fromkeys(channels, platform)
    return {
        "locations": [{"code": location, "name": f"{location} (test warehouse)"}],
        "channels": [  # each its own copy of the settings (no YAML anchors, no shared dicts)
            {
                "code": code,
                "platform": of,
                "conn_id": code,
                "fulfilment_location": location,
                **deepcopy(settings),
            }
            for code, of in platforms.items()
        ],
    }


def hub_config(
    channels: Channels,
    platform: str = "shopify",
    *,
    location: str = "WH",
    **settings: Any,
) -> HubConfig:
    """``hub_document(...)``, parsed."""
    return parse_config(hub_document(channels, platform, location=location, **settings))


def write_hub_config(
    folder: Path,
    channels: Channels,
    platform: str = "shopify",
    *,
    location: str = "WH",
    **settings: Any,
) -> tuple[Path, HubConfig]:
    """``hub_document(...)`` written to ``folder/channels.yaml`` (for ``HUB_CHANNELS_CONFIG``), and loaded."""
    config_file = folder / "channels.yaml"
    config_file.write_text(yaml.safe_dump(hub_document(channels, platform, location=location, **settings)))
    return config_file, load_config(config_file)


def mark_synced(engine, channel: str) -> None:
    """Record that ``channel``'s order sync succeeded just now, for tests of stock pushes that do not sync:
    until a channel has a good sync, its stock is only pushed down (``channelhub.stock_push``)."""
    from datetime import UTC, datetime

    from channelhub.sync import ORDERS_STREAM
    from warehouse.sync_state import record_run

    with engine.begin() as conn:
        record_run(conn, channel, ORDERS_STREAM, datetime.now(UTC), {})
