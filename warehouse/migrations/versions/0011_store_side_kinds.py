"""The store side's shared words: transit and damaged locations, transfer ledger kinds, a location's region.

Revision ID: 0011_store_side_kinds
Revises: 0010_webhook_inbox
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_store_side_kinds"
down_revision: str | Sequence[str] | None = "0010_webhook_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_LOCATION_KINDS = ("store", "warehouse")
LOCATION_KINDS = ("store", "warehouse", "transit", "damaged")
OLD_LEDGER_KINDS = ("receive", "reserve", "release", "deduct", "restock", "adjust")
LEDGER_KINDS = (*OLD_LEDGER_KINDS, "transfer_out", "transfer_in")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _kinds(table: str, kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f(f"ck_{table}_kind"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_kind"), table, _in("kind", kinds))


def upgrade() -> None:
    op.add_column("locations", sa.Column("province", sa.Text))
    op.add_column("locations", sa.Column("city", sa.Text))
    _kinds("locations", LOCATION_KINDS)
    _kinds("stock_ledger", LEDGER_KINDS)


def downgrade() -> None:
    _kinds("stock_ledger", OLD_LEDGER_KINDS)
    _kinds("locations", OLD_LOCATION_KINDS)
    op.drop_column("locations", "city")
    op.drop_column("locations", "province")
