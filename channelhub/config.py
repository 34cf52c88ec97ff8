"""``config/channels.yaml``: which channels exist and when/how they sync (never their credentials).

Loading checks the file against ``config/channels.schema.json`` and a few cross-references, and raises
``ConfigError`` listing every problem with its path (``channels[1].platform: ...``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from canonical.store_files import KINDS, OPTIONAL, REQUIRED, ImportFileError, time_zone
from canonical.store_headers import HeaderError, source_header_map
from canonical.store_read import FileOptions
from channelhub.db import PROJECT_ROOT
from platforms.registry import DECLARATIONS, PLATFORM_NAMES, declaration
from warehouse.models import DEFAULT_MAX_UNITS_PER_ROW
from warehouse.routing import RoutingRules, location_problems
from warehouse.stock_policy import StockPolicy

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "channels.yaml"
SCHEMA_PATH = PROJECT_ROOT / "config" / "channels.schema.json"
# Config keys some platform's mapping takes (``status_map``): refused on a channel whose platform takes none.
MAPPING_OPTION_KEYS = frozenset().union(*(d.mapping_options for d in DECLARATIONS.values()))
# How far each pull reaches back before its window: re-reading is cheap (ingest is idempotent), and it also
# covers a platform clock running a few minutes behind the hub's (an update the platform stamps just before
# the previous window's end, but makes after that window was read) and pages shifting under a pull.
DEFAULT_OVERLAP_MINUTES = 10
CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_READ_TIMEOUT_SECONDS = 30.0  # an answer not started within this is retried (reads) or reconciled
# Long enough for what follows a closed order (a return, a refund, a chargeback, a carrier's claim), short
# enough that the hub is not the place a buyer's address outlives the business's need of it.
DEFAULT_PERSONAL_DATA_DAYS = 90


class ConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid channel config:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class LocationConfig:
    code: str
    name: str
    kind: str = "warehouse"
    # A count or POS line of more units is held for a person (bad_import_row), not applied: a typo or a
    # scanner's misread must not become sellable stock on every channel.
    max_units_per_row: int = DEFAULT_MAX_UNITS_PER_ROW
    # Where it is, as shipping addresses name it (order routing's "nearest": same city, then province).
    province: str | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    code: str
    platform: str
    name: str
    conn_id: str
    fulfilment_location: str
    schedule: timedelta
    overlap: timedelta
    start_date: datetime
    page_size: int
    batch_size: int
    enabled: bool
    retries: int = 3
    retry_delay: timedelta = timedelta(seconds=30)
    alert_after_missed_syncs: int = 3
    stock_policy: StockPolicy = field(default_factory=StockPolicy)
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    # WooCommerce plugin statuses -> the core status each means (the mapping takes it as an argument)
    status_map: dict[str, str] = field(default_factory=dict)
    # Where its orders reserve stock (docs/routing.md); None: at ``fulfilment_location`` alone.
    routing: RoutingRules | None = None

    @property
    def http_timeout(self) -> tuple[float, float]:
        """(connect, read) timeouts of the channel's HTTP client, in seconds."""
        return (CONNECT_TIMEOUT_SECONDS, self.read_timeout_seconds)

    @property
    def dag_id(self) -> str:
        return f"sync_orders__{self.code}"

    @property
    def pool(self) -> str:
        return f"channel__{self.code}"

    @property
    def stale_after(self) -> timedelta:
        """How far its order sync may fall behind now before it counts as stale: alerted, and its stock pushed
        only downwards."""
        return self.schedule * self.alert_after_missed_syncs


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Hub-wide: how long personal data is kept (channelhub.retention)."""

    # Days after an order closes (cancelled, fulfilled, refunded or voided) until its buyer's details and
    # address are blanked in the warehouse.
    personal_data_days: int = DEFAULT_PERSONAL_DATA_DAYS


@dataclass(frozen=True, slots=True)
class ImportSourceConfig:
    """A drop folder under HUB_IMPORT_DIR (one store system or store) and how its files are read."""

    folder: str  # relative to the import folder; "." is the import folder itself
    encoding: str = "auto"
    # its column names -> the hub's columns (None: its own column, ignored)
    headers: dict[str, str | None] = field(default_factory=dict)
    sheet: str | None = None
    timezone: str | None = None  # of times without an offset (IANA, e.g. Asia/Shanghai); None: UTC

    @property
    def options(self) -> FileOptions:
        return FileOptions(self.encoding, dict(self.headers), self.sheet, self.timezone)


@dataclass(frozen=True, slots=True)
class HubConfig:
    locations: tuple[LocationConfig, ...]
    channels: tuple[ChannelConfig, ...]
    source: str
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    import_sources: tuple[ImportSourceConfig, ...] = ()

    def import_source(self, folder: str) -> ImportSourceConfig:
        for source in self.import_sources:
            if source.folder.strip("/") == folder.strip("/"):
                return source
        known = ", ".join(s.folder for s in self.import_sources) or "none"
        raise KeyError(f"no import source {folder!r} in {self.source} (configured: {known})")

    def channel(self, code: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.code == code:
                return channel
        known = ", ".join(c.code for c in self.channels) or "none"
        raise KeyError(f"no channel {code!r} in {self.source} (configured: {known})")


def config_path() -> Path:
    return Path(os.environ.get("HUB_CHANNELS_CONFIG", DEFAULT_CONFIG))


def _path_text(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_config(document: Any, source: str = "<config>") -> HubConfig:
    validator = Draft202012Validator(yaml_schema())
    problems = [
        f"{_path_text(err.absolute_path)}: {err.message}"
        for err in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems:
        raise ConfigError(source, problems)

    locations = tuple(LocationConfig(**loc) for loc in document["locations"])
    location_codes = {loc.code for loc in locations}
    channels: list[ChannelConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["channels"]):
        where = f"channels[{index}]"
        if raw["code"] in seen:
            problems.append(f"{where}.code: {raw['code']!r} is used by another channel")
        seen.add(raw["code"])
        if raw["fulfilment_location"] not in location_codes:
            problems.append(
                f"{where}.fulfilment_location: {raw['fulfilment_location']!r} is not one of the "
                f"configured locations ({', '.join(sorted(location_codes))})"
            )
        routing = RoutingRules.from_json(raw["routing"]) if "routing" in raw else None
        if routing is not None:
            kinds = {loc.code: loc.kind for loc in locations}
            problems.extend(
                f"{where}.routing.{problem}"
                for problem in routing.problems() + location_problems(routing.locations, kinds)
            )
        for key in MAPPING_OPTION_KEYS - declaration(raw["platform"]).mapping_options:
            if raw.get(key):
                problems.append(f"{where}.{key}: {raw['platform']} channels take no {key}")
        try:
            start = datetime.fromisoformat(
                raw.get("start_date", "2026-01-01T00:00:00Z").replace("Z", "+00:00")
            )
        except ValueError:
            problems.append(f"{where}.start_date: {raw['start_date']!r} is not an ISO-8601 date-time")
            start = datetime(2026, 1, 1)
        channels.append(
            ChannelConfig(
                code=raw["code"],
                platform=raw["platform"],
                name=raw.get("name", raw["code"]),
                conn_id=raw["conn_id"],
                fulfilment_location=raw["fulfilment_location"],
                schedule=timedelta(minutes=raw.get("schedule_minutes", 15)),
                overlap=timedelta(minutes=raw.get("overlap_minutes", DEFAULT_OVERLAP_MINUTES)),
                start_date=start.astimezone(UTC) if start.tzinfo else start.replace(tzinfo=UTC),
                page_size=raw.get("page_size", 250),
                batch_size=raw.get("batch_size", 500),
                enabled=raw.get("enabled", True),
                retries=raw.get("retries", 3),
                retry_delay=timedelta(seconds=raw.get("retry_delay_seconds", 30)),
                alert_after_missed_syncs=raw.get("alert_after_missed_syncs", 3),
                stock_policy=_stock_policy(raw.get("stock_policy", {})),
                read_timeout_seconds=float(raw.get("read_timeout_seconds", DEFAULT_READ_TIMEOUT_SECONDS)),
                status_map=dict(raw.get("status_map", {})),
                routing=routing,
            )
        )
    import_sources = _import_sources(document.get("import_sources", []), problems)
    if problems:
        raise ConfigError(source, problems)
    return HubConfig(
        locations=locations,
        channels=tuple(channels),
        source=source,
        retention=RetentionConfig(**document.get("retention", {})),
        import_sources=import_sources,
    )


# Every column some import kind reads: what a source's header map may map a name to.
IMPORT_COLUMNS = frozenset(c for kind in KINDS for c in (*REQUIRED[kind], *OPTIONAL[kind]))


def _import_sources(raw_sources: list[dict[str, Any]], problems: list[str]) -> tuple[ImportSourceConfig, ...]:
    sources: list[ImportSourceConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_sources):
        where = f"import_sources[{index}]"
        folder = raw["folder"]
        if folder.split("/")[0] in ("done", "failed"):
            problems.append(f"{where}.folder: {folder!r} is where imported files are moved; pick another")
        if folder in seen:
            problems.append(f"{where}.folder: {folder!r} is listed twice")
        seen.add(folder)
        headers = dict(raw.get("headers", {}))
        for name, column in headers.items():
            if column is not None and column not in IMPORT_COLUMNS:
                problems.append(
                    f"{where}.headers.{name}: {column!r} is no import column "
                    f"(one of: {', '.join(sorted(IMPORT_COLUMNS))})"
                )
        try:
            source_header_map(headers)
        except HeaderError as err:
            problems.append(f"{where}.headers: {err}")
        try:
            time_zone(raw.get("timezone"))
        except ImportFileError:
            problems.append(f"{where}.timezone: {raw['timezone']!r} is no IANA zone (e.g. Asia/Shanghai)")
        encoding, sheet, zone = raw.get("encoding", "auto"), raw.get("sheet"), raw.get("timezone")
        sources.append(ImportSourceConfig(folder, encoding, headers, sheet, zone))
    return tuple(sources)


def _stock_policy(raw: dict[str, Any]) -> StockPolicy:
    """The channel's policy; each ``listings`` entry overrides some of its settings for one internal SKU."""

    def settings(values: dict[str, Any]) -> dict[str, Any]:
        found = {key: value for key, value in values.items() if key != "listings"}
        if "locations" in found:
            found["locations"] = tuple(found["locations"])
        return found

    channel_policy = StockPolicy(**settings(raw))
    overrides = {
        sku: replace(channel_policy, **settings(values)) for sku, values in raw.get("listings", {}).items()
    }
    return replace(channel_policy, listings=overrides)


def load_config(path: Path | str | None = None) -> HubConfig:
    file = Path(path) if path else config_path()
    try:
        # libyaml's loader: the pure-Python one took half of each DAG file's parse at 200 channels (1.2 s).
        document = yaml.load(file.read_bytes().decode("utf-8"), Loader=yaml.CSafeLoader)
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            str(file),
            [f"not UTF-8 (byte {err.start} is {err.object[err.start : err.start + 1]!r}): save it as UTF-8"],
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(str(file), [f"not valid YAML: {err}"]) from None
    return parse_config(document, str(file))


def yaml_schema() -> dict[str, Any]:
    """channels.schema.json with the platform enum filled from the registry (the one list of platforms)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["properties"]["channels"]["items"]["properties"]["platform"]["enum"] = list(PLATFORM_NAMES)
    return schema
