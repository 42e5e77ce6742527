"""Lapse notices (`infinite.training.lapsed`): the outbox `lapse_notices` and the partial
indexes of `usage_records` the notifier reads the lapsing sessions of a pack by.

Revision ID: 0008
"""

from alembic import op

from services.store.schema import LAPSE_NOTICES

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LAPSE_NOTICES)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from a backup instead")
