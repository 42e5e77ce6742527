"""Leases: `packs.open_lease_ends`, `usage_records.lease_seconds` / `lease_ends_at`, the
partial index of open sessions by lease end, and the read functions that take leases.

Revision ID: 0007
"""

from alembic import op

from services.store.schema import LEASE_READ_FUNCTIONS, LEASES

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LEASES)
    op.execute(LEASE_READ_FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from a backup instead")
