"""Pinduoduo 拼多多 (POP open platform): the declaration. The wire is in ``connector.py`` and ``pushes.py``,
the payload in ``mapping.py`` and ``order.schema.json``; every fact and its source in ``NOTES.md``."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="pinduoduo",
    title="Pinduoduo 拼多多",
    id_field="order_sn",
    # goods_id like 2525296157, sku_id like 51972265894 (the published order example, NOTES.md)
    sandbox_id_space=(2_525_000_000, 51_972_000_000, 0, 2),
    demo_carrier="SF",
    expiring_tokens=True,  # access_token lives hours; renewed with pdd.pop.auth.token.refresh
)
