"""The webhook receiver's durable inbox: each verified push event, stored before the platform is answered.

Revision ID: 0010_webhook_inbox
Revises: 0009_personal_data_retention
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010_webhook_inbox"
down_revision: str | Sequence[str] | None = "0009_personal_data_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("order_external_id", sa.Text),
        sa.Column("order_payload", JSONB),
        sa.Column("raw_body", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("received_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TZ),
        sa.Column("applied_at", TZ),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name="fk_webhook_inbox_channel_id_channels"),
        sa.UniqueConstraint("channel_id", "event_id", name="uq_webhook_inbox_channel_id_event_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'applied', 'no_order', 'failed')", name=op.f("ck_webhook_inbox_status")
        ),
    )
    op.create_index("ix_webhook_inbox_status_received_at", "webhook_inbox", ["status", "received_at"])


def downgrade() -> None:
    op.drop_table("webhook_inbox")
