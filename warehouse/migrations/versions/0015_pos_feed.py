"""The live POS feed's documents: one row per (location, the POS's document id), its digest and answer.

Revision ID: 0015_pos_feed
Revises: 0014_returns
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0015_pos_feed"
down_revision: str | Sequence[str] | None = "0014_returns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pos_documents",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("document_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("result", JSONB, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_pos_documents"),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name="fk_pos_documents_location_id_locations"
        ),
        sa.UniqueConstraint("location_id", "document_id", name="uq_pos_documents_location_id_document_id"),
        sa.CheckConstraint("type IN ('sale', 'return', 'count')", name=op.f("ck_pos_documents_type")),
        sa.CheckConstraint(
            "status IN ('applied', 'partial', 'rejected')", name=op.f("ck_pos_documents_status")
        ),
    )


def downgrade() -> None:
    op.drop_table("pos_documents")
