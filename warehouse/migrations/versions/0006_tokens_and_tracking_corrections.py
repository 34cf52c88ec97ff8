"""Shared short-lived platform tokens; tracking corrections on shipments.

Revision ID: 0006_tokens_corrections
Revises: 0005_bundle_lines
Create Date: 2026-12-06

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).

- ``platform_tokens``: one access token per platform credential, shared by every task and process of the hub
  (WeChat and Youzan invalidate or rate-limit tokens fetched again; ``warehouse.token_cache``). The token is
  stored sealed with a key derived from the app secret, so the table alone reveals nothing.
- ``shipments.previous_carrier/previous_tracking_number/corrected_at``: a shipments row that reuses a
  shipment id with a new tracking number corrects it; the number the channel may hold is kept for the push.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_tokens_corrections"
down_revision: str | Sequence[str] | None = "0005_bundle_lines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_tokens",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewals", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("key", name="pk_platform_tokens"),
    )
    op.add_column("shipments", sa.Column("previous_carrier", sa.Text))
    op.add_column("shipments", sa.Column("previous_tracking_number", sa.Text))
    op.add_column("shipments", sa.Column("corrected_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("shipments", "corrected_at")
    op.drop_column("shipments", "previous_tracking_number")
    op.drop_column("shipments", "previous_carrier")
    op.drop_table("platform_tokens")
