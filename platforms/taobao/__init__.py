"""Taobao / Tmall (TOP, 淘宝开放平台): the declaration. The wire is in ``connector.py`` and ``pushes.py``, the
payload in ``mapping.py`` and ``order.schema.json``; every fact and its source in ``NOTES.md``."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="taobao",
    title="Taobao / Tmall 淘宝",
    id_field="tid",
    # num_iid are 12 digits (598497390355 in Taobao's published sample), sku_id 13 (4,5xx,xxx,xxx,xxx).
    sandbox_id_space=(600_000_000_000, 4_500_000_000_000, 0, 2),
    demo_carrier="YTO",
    expiring_tokens=False,  # the seller's session key is granted once and lives until revoked
)
