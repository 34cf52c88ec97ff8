"""Personal data retention: when an order's and a raw payload's personal data were blanked, and an index of
the closed orders still holding theirs.

Revision ID: 0009_personal_data_retention
Revises: 0008_reserved_within_on_hand
Create Date: 2026-12-07

Written by hand (a migration stays as it was written); ``warehouse/models.py`` declares the same schema
(``CLOSED_ORDER`` is the index's condition), and the schema test compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_personal_data_retention"
down_revision: str | Sequence[str] | None = "0008_reserved_within_on_hand"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("raw_payloads", sa.Column("personal_data_erased_at", sa.DateTime(timezone=True)))
    op.add_column("orders", sa.Column("personal_data_erased_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_orders_personal_data_due",
        "orders",
        ["updated_at"],
        postgresql_where=sa.text(
            "personal_data_erased_at IS NULL AND (cancelled OR fulfillment_status = 'fulfilled' "
            "OR payment_status IN ('refunded', 'voided'))"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_personal_data_due", "orders")
    op.drop_column("orders", "personal_data_erased_at")
    op.drop_column("raw_payloads", "personal_data_erased_at")
