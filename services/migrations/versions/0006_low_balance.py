"""Low-balance notices: `packs.low_balance`, the crossings of each pack.

Revision ID: 0006
"""

from alembic import op

from services.store.schema import LOW_BALANCE

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LOW_BALANCE)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from a backup instead")
