"""JD 京东 POP (JOS open platform): the declaration. The wire is in ``connector.py`` and ``pushes.py``, the
payload in ``mapping.py`` and ``order.schema.json``; every fact and its source in ``NOTES.md``."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="jd",
    title="JD 京东 POP",
    id_field="orderId",
    # wareId / skuId look like JD's 14-digit ids (NOTES.md, the published order: wareId 10020665903516,
    # skuId 10054887745652); JD has no inventory item ids; two listings carry no outerSkuId.
    sandbox_id_space=(10_020_000_000_000, 10_050_000_000_000, 0, 2),
    demo_carrier="SF",
    expiring_tokens=False,  # a shop grants an access_token for a long time (static, like a Shopify token)
    tracking_corrections=False,  # no JOS call changes a shipped POP order's waybill that we could confirm
)
