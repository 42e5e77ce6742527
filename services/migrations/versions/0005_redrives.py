"""Re-drives of refused records (`redrives`, append-only); refusals keep the headers.

Revision ID: 0005
"""

from alembic import op

from services.store.schema import REDRIVES

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(REDRIVES)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from a backup instead")
