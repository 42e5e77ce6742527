"""The consumer allocates ledger positions itself and appends with a plain COPY.

Revision ID: 0003
"""

from alembic import op

from services.store.schema import POSITIONS_BY_DEFAULT

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(POSITIONS_BY_DEFAULT)


def downgrade() -> None:
    raise NotImplementedError("restore from a backup instead")
