"""Per-location sanity limit on store rows: a count or POS line beyond it waits for a person.

Revision ID: 0007_location_row_limit
Revises: 0006_tokens_corrections
Create Date: 2026-12-06

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_location_row_limit"
down_revision: str | Sequence[str] | None = "0006_tokens_corrections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "locations",
        sa.Column("max_units_per_row", sa.Integer, nullable=False, server_default=sa.text("100000")),
    )
    op.create_check_constraint(op.f("ck_locations_max_units_per_row"), "locations", "max_units_per_row > 0")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_locations_max_units_per_row"), "locations", type_="check")
    op.drop_column("locations", "max_units_per_row")
