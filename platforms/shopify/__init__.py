"""Shopify: the declaration. The wire is in ``connector.py``, the payload in ``mapping.py`` and
``order.schema.json``; the facts and their sources in docs/platform-notes.md."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="shopify",
    title="Shopify",
    id_field="id",
    sandbox_id_space=(8_012_345_000_000, 44_123_456_000_000, 46_234_567_000_000, 3),
    demo_carrier="UPS",
    webhooks="webhooks:CONTRACT",
)
