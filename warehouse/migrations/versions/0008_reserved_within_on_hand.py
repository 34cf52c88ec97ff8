"""Reserved never exceeds on hand, enforced by the database: a deferred constraint trigger on stock_levels.

Revision ID: 0008_reserved_within_on_hand
Revises: 0007_location_row_limit
Create Date: 2026-12-06

Written by hand (a migration stays as it was written); ``warehouse.models.RESERVED_WITHIN_ON_HAND`` gives
``create_all`` the same trigger, and the schema test compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

STATEMENTS = (
    """
CREATE FUNCTION stock_levels_reserved_within_on_hand() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM stock_levels l
                WHERE l.sku_id = NEW.sku_id AND l.location_id = NEW.location_id
                  AND l.reserved > l.on_hand) THEN
        RAISE EXCEPTION 'stock level of sku % at location % reserves more than is on hand',
            NEW.sku_id, NEW.location_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reserved_within_on_hand';
    END IF;
    RETURN NULL;
END
$$
""",
    """
CREATE CONSTRAINT TRIGGER reserved_within_on_hand AFTER INSERT OR UPDATE ON stock_levels
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stock_levels_reserved_within_on_hand()
""",
)

revision: str = "0008_reserved_within_on_hand"
down_revision: str | Sequence[str] | None = "0007_location_row_limit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER reserved_within_on_hand ON stock_levels")
    op.execute("DROP FUNCTION stock_levels_reserved_within_on_hand()")
