"""Bundle lines: the components a line's stock was applied to, frozen on the line.

Revision ID: 0005_bundle_lines
Revises: 0004_ops
Create Date: 2026-11-25

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005_bundle_lines"
down_revision: str | Sequence[str] | None = "0004_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("order_lines", sa.Column("applied_components", JSONB))
    # Only bundle lines carry components: the index stays as small as they are.
    op.create_index(
        "ix_order_lines_applied_components",
        "order_lines",
        ["applied_components"],
        postgresql_using="gin",
        postgresql_where=sa.text("applied_components IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_order_lines_applied_components", table_name="order_lines")
    op.drop_column("order_lines", "applied_components")
