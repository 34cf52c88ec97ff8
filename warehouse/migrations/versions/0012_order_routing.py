"""Order routing: each channel's routing rules, and the history of reservations moved between locations.

Revision ID: 0012_order_routing
Revises: 0011_store_side_kinds
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012_order_routing"
down_revision: str | Sequence[str] | None = "0011_store_side_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("channels", sa.Column("routing", JSONB))
    op.create_table(
        "line_routes",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("order_line_id", sa.BigInteger, nullable=False),
        sa.Column("from_location_id", sa.BigInteger, nullable=False),
        sa.Column("to_location_id", sa.BigInteger, nullable=False),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("release_key", sa.Text, nullable=False),
        sa.Column("reserve_key", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_line_routes"),
        sa.ForeignKeyConstraint(
            ["order_line_id"],
            ["order_lines.id"],
            name="fk_line_routes_order_line_id_order_lines",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_location_id"], ["locations.id"], name="fk_line_routes_from_location_id_locations"
        ),
        sa.ForeignKeyConstraint(
            ["to_location_id"], ["locations.id"], name="fk_line_routes_to_location_id_locations"
        ),
        sa.CheckConstraint("cause IN ('move', 'away')", name=op.f("ck_line_routes_cause")),
        sa.CheckConstraint("units > 0", name=op.f("ck_line_routes_units_positive")),
    )
    op.create_index("ix_line_routes_order_line_id", "line_routes", ["order_line_id"])


def downgrade() -> None:
    op.drop_table("line_routes")
    op.drop_column("channels", "routing")
