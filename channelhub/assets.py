"""Airflow Assets the hub's DAGs share: a DAG that may change stock names it as an outlet, and the stock push
DAGs run as soon as it is updated (as well as on their schedule)."""

from __future__ import annotations

from airflow.sdk import Asset

WAREHOUSE_STOCK = Asset("channelhub://warehouse/stock")
