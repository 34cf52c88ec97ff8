"""Youzan 有赞云: the declaration. The wire is in ``connector.py``, the payload in ``mapping.py`` and
``order.schema.json``; the facts and their sources in docs/platform-notes.md."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="youzan",
    title="Youzan 有赞云",
    id_field="full_order_info.order_info.tid",
    sandbox_id_space=(3_000_000_000, 30_000_000, 0, 3),
    demo_carrier="SF",
    expiring_tokens=True,
    webhooks="webhooks:CONTRACT",
)
