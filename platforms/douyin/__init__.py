"""Douyin shop 抖店 (open platform ``openapi-fxg.jinritemai.com``): the declaration. The wire is in
``connector.py`` and ``pushes.py``, the payload in ``mapping.py`` and ``order.schema.json``; every wire fact
and its source in ``NOTES.md``."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="douyin",
    title="Douyin shop 抖店",
    id_field="order_id",
    # 19-digit product ids (3600137140018749665 in Douyin's own examples), 16-digit sku ids.
    sandbox_id_space=(3_600_137_140_000_000_000, 1_736_000_000_000_000, 0, 3),
    demo_carrier="SF",
    expiring_tokens=True,  # access_token lives 7 days; the hub gets a new one with token.create
    webhooks="webhooks:CONTRACT",
)
