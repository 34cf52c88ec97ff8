"""Tell Airflow that the warehouse's stock changed outside a DAG run (the webhook receiver), so every
``push_stock__<channel>`` DAG runs now rather than at its next schedule.

Through Airflow's public REST API (``POST /api/v2/assets/events`` on the ``WAREHOUSE_STOCK`` asset), the
documented way for a process outside Airflow to update an Asset: the scheduler then creates the
asset-triggered runs exactly as it does for a sync task's outlet. The API's address and an account come from
the Airflow connection ``channelhub_airflow_api`` (host = the API server's base URL, login, password; e.g.
``AIRFLOW_CONN_CHANNELHUB_AIRFLOW_API='{"conn_type": "http", "host": "http://localhost:8080", "login":
"admin", "password": "..."}'``). The JWT from ``POST /auth/token`` is kept and fetched again when refused.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests

from channelhub.assets import WAREHOUSE_STOCK
from channelhub.credentials import ChannelCredentials, CredentialsError, load_credentials
from connectors.auth import Secret

log = logging.getLogger("channelhub.airflow_api")

AIRFLOW_API_CONN_ID = "channelhub_airflow_api"
TIMEOUT_SECONDS = 10


class AirflowApiError(RuntimeError):
    pass


class StockAssetEvents:
    """Posts asset events for ``WAREHOUSE_STOCK``; safe to share between threads."""

    def __init__(self, base_url: str, login: str, password: Secret) -> None:
        self.base_url = base_url.rstrip("/")
        self._login = login
        self._password = password
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._asset_id: int | None = None

    @classmethod
    def from_credentials(cls, credentials: ChannelCredentials) -> StockAssetEvents:
        if not credentials.login or not credentials.secret:
            raise CredentialsError(
                f"Airflow connection {credentials.conn_id!r} needs a login and a password for Airflow's API"
            )
        return cls(credentials.base_url, credentials.login, credentials.secret)

    def stock_changed(self, extra: dict[str, Any] | None = None) -> None:
        """One asset event (``extra`` is kept with it: what changed, for the run's page)."""
        with self._lock:
            body = {"asset_id": self._stock_asset_id(), "extra": extra or {}}
            self._call("POST", "/api/v2/assets/events", json=body)

    def _stock_asset_id(self) -> int:
        if self._asset_id is None:
            answer = self._call("GET", "/api/v2/assets", params={"uri_pattern": WAREHOUSE_STOCK.uri})
            found = [a for a in answer.get("assets", []) if a.get("uri") == WAREHOUSE_STOCK.uri]
            if not found:
                raise AirflowApiError(
                    f"Airflow knows no asset {WAREHOUSE_STOCK.uri!r} yet (no DAG using it has been parsed)"
                )
            self._asset_id = int(found[0]["id"])
        return self._asset_id

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._new_token()
            answer = self._session.request(
                method,
                f"{self.base_url}{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=TIMEOUT_SECONDS,
                **kwargs,
            )
            if answer.status_code == 401 and attempt == 1:
                self._token = None  # expired JWT: log in again, once
                continue
            if answer.status_code >= 400:
                raise AirflowApiError(f"Airflow API {method} {path} answered {answer.status_code}")
            return answer.json()
        raise AirflowApiError(f"Airflow API {method} {path} refused a fresh token")

    def _new_token(self) -> str:
        answer = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self._login, "password": self._password.reveal()},
            timeout=TIMEOUT_SECONDS,
        )
        if answer.status_code >= 400:
            raise AirflowApiError(f"Airflow refused the login of {self._login!r} ({answer.status_code})")
        return str(answer.json()["access_token"])


def stock_asset_events(conn_id: str = AIRFLOW_API_CONN_ID) -> StockAssetEvents | None:
    """The notifier of the configured Airflow API; None (logged once by the caller) when no connection
    is configured: the stock push DAGs then run on their schedules only."""
    try:
        credentials = load_credentials(conn_id)
    except CredentialsError:
        return None
    return StockAssetEvents.from_credentials(credentials)
