"""WooCommerce: the declaration. The wire is in ``connector.py``, the payload in ``mapping.py`` and
``order.schema.json``; the facts and their sources in docs/platform-notes.md."""

from platforms.declaration import PlatformDeclaration

DECLARATION = PlatformDeclaration(
    name="woocommerce",
    title="WooCommerce",
    id_field="id",
    # WordPress post ids (products and variations share one sequence in real shops; close enough here).
    sandbox_id_space=(100, 5_000, 0, 3),
    demo_carrier="UPS",
    mapping_options=frozenset({"status_map"}),
    webhooks="webhooks:CONTRACT",
)
