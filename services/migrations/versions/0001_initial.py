"""The initial schema: ledger, bookkeeping, read models and read-time functions.

Revision ID: 0001
"""

from alembic import op

from services.store.schema import (
    BOOKKEEPING_TABLES,
    LEDGER_TABLES,
    READ_FUNCTIONS,
    read_model_tables,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LEDGER_TABLES)
    op.execute(BOOKKEEPING_TABLES)
    op.execute(read_model_tables())
    op.execute(READ_FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from a backup instead")
