"""What a platform package declares about itself (``platforms/<name>/__init__.py``: ``DECLARATION``).

Only facts the rest of the hub needs without importing the platform's code: the registry
(``platforms.registry``) reads these to derive every list that names platforms (the config schema's enum,
the sandboxes, the demo, the fault matrix, the crash harness), so a new platform is one package and nothing
else names it. By convention the package also holds ``connector.py`` (``connector_for_channel``),
``mapping.py`` (``map_order``, ``unwrap``, ``PERSONAL_DATA``), ``order.schema.json`` and ``NOTES.md``; its
simulator is ``sandbox.<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlatformDeclaration:
    name: str  # the package's name; channels.yaml's ``platform``
    title: str  # how people call it, for tables and pages
    id_field: str  # dotted path to a raw payload's external id, for naming rejects
    # The world's id space on this platform's sandbox: (product id base, variant id base, inventory item id
    # base, how many listings carry no SKU). Each platform draws from its own RNG, so ids never move.
    sandbox_id_space: tuple[int, int, int, int]
    demo_carrier: str  # the carrier the demo's shipments file names (one the platform's sandbox knows)
    expiring_tokens: bool = False  # short-lived tokens the hub fetches and renews (fault matrix: expiry)
    # The platform's API can change a shipped parcel's tracking number (a correction reaches its update call);
    # where it cannot, a correction is rejected with that reason, never shipped a second time.
    tracking_corrections: bool = True
    mapping_options: frozenset[str] = frozenset()  # channel config keys its mapping takes (``status_map``)
    connector_factory: str = "connector:connector_for_channel"  # module (in the package):function
    mapping_module: str = "mapping"
    payload_schema: str = "order.schema.json"
    # The platform's push events over HTTP: "module:attribute" (in the package) of its
    # ``connectors.webhooks.WebhookContract``; None where it pushes none the hub can take (a long-lived
    # message channel instead of HTTP: the scheduled sync is its only path, NOTES.md says why).
    webhooks: str | None = None
