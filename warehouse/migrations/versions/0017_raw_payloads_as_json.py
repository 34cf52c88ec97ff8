"""Raw payloads stored as ``json`` text (lz4-compressed where the server has lz4) instead of ``jsonb``.

Revision ID: 0017_raw_payloads_as_json
Revises: 0016_store_sales
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them). Landing a
~9 KB Shopify order as ``jsonb`` cost Postgres ~390 us of CPU (parsed into its binary form, then
pglz-compressed); as ``json`` (validated, kept as the hub wrote it) ~250 us with pglz and ~150 us with lz4
(measured on a 2-core AMD EPYC, Postgres 15, 3 000 payloads). The warehouse never queries inside a raw
payload: the exception queue shows it, retention rewrites it whole. lz4 is chosen only where the server was
built with it (Debian's Postgres is; some embedded builds are not), as ``default_toast_compression`` lists it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017_raw_payloads_as_json"
down_revision: str | Sequence[str] | None = "0016_store_sales"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_LZ4 = (
    "SELECT EXISTS (SELECT 1 FROM pg_settings "
    "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))"
)


def upgrade() -> None:
    op.execute("ALTER TABLE raw_payloads ALTER COLUMN payload TYPE json USING CAST(payload AS json)")
    if op.get_bind().exec_driver_sql(HAS_LZ4).scalar():
        op.execute("ALTER TABLE raw_payloads ALTER COLUMN payload SET COMPRESSION lz4")


def downgrade() -> None:
    op.execute("ALTER TABLE raw_payloads ALTER COLUMN payload SET COMPRESSION default")
    op.execute("ALTER TABLE raw_payloads ALTER COLUMN payload TYPE jsonb USING CAST(payload AS jsonb)")
