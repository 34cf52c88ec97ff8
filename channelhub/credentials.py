"""Channel credentials, read from an Airflow Connection (``AIRFLOW_CONN_<CONN_ID>`` or the metadata DB).

Airflow's own ``Connection`` repr prints the password, so the hub hands connectors a ``ChannelCredentials``
whose secret is a ``connectors.auth.Secret``: its str/repr are masked, and only the connector's auth
reveals it, on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.auth import Secret


class CredentialsError(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ChannelCredentials:
    conn_id: str
    base_url: str
    login: str | None = None
    secret: Secret = field(default_factory=lambda: Secret(""))
    extra: dict[str, Any] = field(default_factory=dict)
    # Connections this one names in its extra, already resolved (tests, harnesses); others are loaded.
    links: Mapping[str, ChannelCredentials] = field(default_factory=dict, repr=False)

    def linked(self, key: str) -> ChannelCredentials | None:
        """The credentials of the second Airflow connection this one's extra names under ``key`` (an app of
        its own the channel also calls, e.g. WeChat's mini program); None when the extra names none."""
        conn_id = self.extra.get(key)
        if conn_id in (None, ""):
            return None
        if not isinstance(conn_id, str):
            raise CredentialsError(f"connection {self.conn_id!r}: extra {key!r} must name a connection id")
        found = self.links.get(conn_id)
        return found if found is not None else load_credentials(conn_id)


def load_credentials(conn_id: str) -> ChannelCredentials:
    """Resolve ``conn_id`` through Airflow's secrets backends (environment variables first)."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as err:  # Airflow raises its own not-found type; keep its message, never the URI
        raise CredentialsError(
            f"Airflow connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} "
            f"or add it in the Airflow UI ({type(err).__name__})"
        ) from None
    host = conn.host or ""
    if "://" in host:
        base_url = host.rstrip("/")
    else:
        scheme = conn.extra_dejson.get("scheme") or conn.schema or "https"
        base_url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    return ChannelCredentials(
        conn_id=conn_id,
        base_url=base_url,
        login=conn.login or None,
        secret=Secret(conn.password or ""),
        extra=dict(conn.extra_dejson),
    )
