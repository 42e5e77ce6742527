"""Read-time functions the planner can inline; usage-record indexes that carry end_time.

Revision ID: 0002
"""

from alembic import op

from services.store.schema import READ_FUNCTIONS, USAGE_INDEXES_WITH_END_TIME

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(READ_FUNCTIONS)  # CREATE OR REPLACE: same values, inlinable bodies
    op.execute(USAGE_INDEXES_WITH_END_TIME)


def downgrade() -> None:
    raise NotImplementedError("restore from a backup instead")
