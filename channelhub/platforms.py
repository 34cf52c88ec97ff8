"""The platform registry: for each platform, its connector, its payload schema and its mapping.

``prepare`` is the pure middle of the data flow (schema check -> mapping) shared by the sync pipeline,
``channelhub map``, reconciliation, the exception retry and the tests: a payload becomes ``Landed`` (a
canonical order), ``Rejected`` (a typed reason, the raw payload kept) or ``Skipped`` (a record the platform
lists among orders that is none, such as a WooCommerce checkout draft: counted, never landed nor queued),
never an uncaught exception. A channel's mapping options (WooCommerce's ``status_map``) come with it.

The raw payload a ``Landed`` or ``Rejected`` carries, i.e. what the warehouse stores, is the payload with
the platform's ``personal`` paths masked (``mappings.common.PersonalData``): the mapping reads the payload as
received, so the canonical order keeps the buyer's details until retention blanks them, but what the buyer
never needed to give for the delivery is never stored. ``erased`` masks the ``fulfilment`` paths too (the
retention job).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema_rs
from jsonschema import Draft202012Validator

from canonical.order import MappingError, NotAnOrder
from channelhub.credentials import load_credentials
from connectors.json_body import UNREADABLE_KEY
from mappings.common import PathTree, PersonalData, mask, path_tree
from platforms.registry import DECLARATIONS, declaration, package_file
from warehouse.ingest import Landed, Rejected
from warehouse.token_cache import WarehouseTokenStore

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Engine

    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials
    from connectors.errors import ConnectorError
    from connectors.framework import SyncWarning
    from connectors.pushes import PushResult, ShipmentPush, StockPush
    from connectors.tokens import TokenStore
    from connectors.webhooks import WebhookContract


@dataclass(frozen=True, slots=True)
class Skipped:
    """A payload the mapping says is no order (``NotAnOrder``): the sync counts it, nothing lands."""

    external_id: str | None
    detail: str


class ChannelConnector(Protocol):
    """What the hub needs of a platform's connector: pull orders (a window's, or one) and say what a window
    may miss, push shipments and stock, and read listings' stock back (reconciliation;
    ``connectors.framework.Connector`` reads many listings one by one unless the platform can do better)."""

    def fetch_orders(
        self, window_start: datetime, window_end: datetime
    ) -> Iterator[list[dict[str, Any]]]: ...

    def get_order(self, order_id: str) -> dict[str, Any]: ...

    def warnings_for_window(self, window_start: datetime, window_end: datetime) -> list[SyncWarning]: ...

    def listed_stock(self, listing: StockPush) -> int | None: ...

    def listed_stocks(self, listings: Sequence[StockPush]) -> list[int | ConnectorError | None]: ...

    def push_shipment(self, push: ShipmentPush) -> PushResult: ...

    def set_stock(self, push: StockPush) -> PushResult: ...


@dataclass(frozen=True)
class Platform:
    name: str
    payload_schema: str  # path of the JSON Schema of one order payload
    mapping_module: str  # module with map_order(payload) and unwrap(document), maybe not_an_order(payload)
    connector_factory: str  # "module:function" taking (credentials, channel config, token_store=None)
    id_field: str  # dotted path to a raw payload's external id, for naming rejects
    mapping_option_keys: frozenset[str] = frozenset()  # channel config keys the mapping takes
    webhooks: str | None = None  # "module:attribute" of its WebhookContract; None: it pushes no HTTP events

    @cached_property
    def validator(self) -> Draft202012Validator:
        schema = json.loads(Path(self.payload_schema).read_text())
        Draft202012Validator.check_schema(schema)
        return Draft202012Validator(inline_local_refs(schema))

    @cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        """The same schema in jsonschema-rs (Rust): whether a payload is valid, for the common case.

        It only ever *accepts*: a payload it refuses goes to ``validator`` (jsonschema), which decides and
        words the reason (a ``pattern``'s ``$`` is ECMA-262's there, Python's in jsonschema: "1\n" is
        refused here, accepted there). tests/test_fuzz.py checks that whatever it accepts jsonschema accepts.
        A 9 KB Shopify order: 15 us, against 80 us in fastjsonschema's generated Python (issue 22).
        """
        validator = jsonschema_rs.validator_for(self.validator.schema)

        def is_valid(payload: Any) -> bool:
            try:
                return validator.is_valid(payload)
            except (ValueError, TypeError, OverflowError):  # a value it cannot read (an int past 64 bits)
                return False

        return is_valid

    @cached_property
    def _mapping(self) -> Any:
        return import_module(self.mapping_module)

    def unwrap(self, document: Any) -> list[Any]:
        return self._mapping.unwrap(document)

    @cached_property
    def personal_data(self) -> PersonalData:
        """Where the platform's payload holds personal data, declared by its mapping module."""
        return self._mapping.PERSONAL_DATA

    @cached_property
    def _stored_paths(self) -> PathTree:
        return path_tree(self.personal_data.personal)

    @cached_property
    def _erased_paths(self) -> PathTree:
        return path_tree(self.personal_data.personal | self.personal_data.fulfilment)

    def for_storage(self, payload: Any) -> Any:
        """The payload as the warehouse stores it: ``personal`` paths masked (a few lookups, not a copy)."""
        return mask(payload, self._stored_paths)

    def erased(self, payload: Any) -> Any:
        """The payload once its order has been closed for the retention period: every personal path masked."""
        return mask(payload, self._erased_paths)

    def connector(
        self,
        credentials: ChannelCredentials,
        channel: ChannelConfig,
        token_store: TokenStore | None = None,
    ) -> ChannelConnector:
        module, function = self.connector_factory.split(":")
        return getattr(import_module(module), function)(credentials, channel, token_store=token_store)

    @cached_property
    def webhook_contract(self) -> WebhookContract | None:
        """The platform's push events (``connectors.webhooks``), loaded here only, as the connector is."""
        if self.webhooks is None:
            return None
        module, attribute = self.webhooks.split(":")
        return getattr(import_module(module), attribute)

    def external_id(self, payload: Any) -> str | None:
        value: Any = payload
        for key in self.id_field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return None if value is None or isinstance(value, dict | list) else str(value)

    def schema_problem(self, payload: Any) -> str | None:
        if self.fast_check(payload):
            return None
        # jsonschema decides and says why
        error = next(iter(sorted(self.validator.iter_errors(payload), key=lambda e: e.path)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(payload)"
        return f"{where}: {error.message}"

    def mapping_options(self, channel: ChannelConfig | None) -> dict[str, Any]:
        """What a channel's config tells its mapping: the keys the platform declares, where the channel set
        them (the config check refuses them on other platforms)."""
        if channel is None:
            return {}
        return {key: dict(value) for key in self.mapping_option_keys if (value := getattr(channel, key))}

    def prepare(self, payload: Any, channel: ChannelConfig | None = None) -> Landed | Rejected | Skipped:
        """Schema check then mapping with ``channel``'s options; every failure is a typed ``Rejected``
        carrying the raw payload to store (``for_storage``). What the mapping says is no order is
        ``Skipped`` first, whatever its shape (a draft the schema would refuse is still no order)."""
        if isinstance(payload, dict) and (unreadable := payload.get(UNREADABLE_KEY)):
            detail = (
                "values no decoder keeps as they are (half a surrogate pair, a number out of range, nesting "
                "past any decoder) at "
                f"{', '.join(map(str, unreadable))}: kept as their JSON text; fix the order on the platform"
            )
            return self._rejected(payload, "schema_invalid", detail)
        options = self.mapping_options(channel)
        not_an_order = getattr(self._mapping, "not_an_order", None)
        if not_an_order is not None and (why := not_an_order(payload, **options)) is not None:
            return Skipped(self.external_id(payload), why)
        problem = self.schema_problem(payload)
        if problem is not None:
            return self._rejected(payload, "schema_invalid", problem)
        try:
            return Landed(self._mapping.map_order(payload, **options), self.for_storage(payload))
        except NotAnOrder as err:
            return Skipped(self.external_id(payload), err.detail)
        except MappingError as err:
            return self._rejected(payload, err.reason, err.detail)

    def _rejected(self, payload: Any, reason: str, detail: str) -> Rejected:
        return Rejected(self.external_id(payload), reason, detail[:2000], self.for_storage(payload))


def inline_local_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every ``{"$ref": "#/$defs/x"}`` replaced by the definition itself.

    jsonschema resolves a ``$ref`` on every use, which made the payload check two thirds of ingest time
    (bench/ingest); the platform schemas are not recursive, so the references can be resolved once, here.
    """
    definitions = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"recursive schema definition {name!r} cannot be inlined")
            target = resolve(definitions[name], (*seen, name))
            siblings = {key: resolve(value, seen) for key, value in node.items() if key != "$ref"}
            return {"allOf": [target], **siblings} if siblings else target
        return {key: resolve(value, seen) for key, value in node.items() if key != "$defs"}

    return resolve(schema, ())


PLATFORMS: dict[str, Platform] = {
    name: Platform(
        name=name,
        payload_schema=str(package_file(name, declared.payload_schema)),
        mapping_module=f"platforms.{name}.{declared.mapping_module}",
        connector_factory=f"platforms.{name}.{declared.connector_factory}",
        id_field=declared.id_field,
        mapping_option_keys=declared.mapping_options,
        webhooks=f"platforms.{name}.{declared.webhooks}" if declared.webhooks else None,
    )
    for name, declared in DECLARATIONS.items()
}


def channel_connector(
    channel: ChannelConfig,
    credentials: ChannelCredentials | None = None,
    *,
    engine: Engine | None = None,
) -> ChannelConnector:
    """The connector of a configured channel; credentials from its Airflow connection unless given. With the
    warehouse's ``engine``, short-lived tokens are shared through it by every task and process of the hub
    (WeChat revokes a token whenever another is fetched for the same app)."""
    store = WarehouseTokenStore(engine) if engine is not None else None
    return get_platform(channel.platform).connector(
        credentials or load_credentials(channel.conn_id), channel, token_store=store
    )


def get_platform(name: str) -> Platform:
    declaration(name)  # an unknown name is a KeyError naming the known ones
    return PLATFORMS[name]
