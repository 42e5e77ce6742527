"""HOT pack updates: no index on `packs.exhausts_at`, room left in each page of `packs`.

Revision ID: 0004
"""

from alembic import op

from services.store.schema import HOT_PACK_UPDATES

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(HOT_PACK_UPDATES)


def downgrade() -> None:
    raise NotImplementedError("restore from a backup instead")
