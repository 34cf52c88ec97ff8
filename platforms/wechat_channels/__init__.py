"""WeChat Channels shop: the declaration. The wire is in ``connector.py``, the payload in ``mapping.py`` and
``order.schema.json``; the facts and their sources in docs/platform-notes.md."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="wechat_channels",
    title="WeChat Channels shop",
    id_field="order_id",
    sandbox_id_space=(10_000_000_000, 2_000_000_000, 0, 3),
    demo_carrier="SF",
    expiring_tokens=True,
    webhooks="webhooks:CONTRACT",
)
