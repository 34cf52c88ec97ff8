"""Credentials come from Airflow connections and never show in reprs or errors."""

from __future__ import annotations

import json

import pytest

from channelhub.credentials import CredentialsError, load_credentials

TOKEN = "shpat_0123456789abcdef0123456789abcdef"


def test_connection_from_environment_json(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHOP_T1",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9999", "password": TOKEN}),
    )
    creds = load_credentials("shop_t1")
    assert creds.base_url == "http://127.0.0.1:9999"
    assert creds.secret.reveal() == TOKEN
    assert TOKEN not in repr(creds) and TOKEN not in str(creds.secret)


def test_connection_from_environment_uri(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_T2", f"http://user:{TOKEN}@shop.example:8443/?scheme=https")
    creds = load_credentials("shop_t2")
    assert creds.base_url == "https://shop.example:8443"
    assert creds.login == "user" and creds.secret.reveal() == TOKEN


def test_missing_connection_names_the_variable():
    with pytest.raises(CredentialsError, match="AIRFLOW_CONN_NO_SUCH_SHOP"):
        load_credentials("no_such_shop")
