"""Initial catalog schema.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from cairn.catalog import schema

revision = "0001"
down_revision = None


def upgrade() -> None:
    # The first revision creates the tables as schema.py declared them at 0001; later
    # revisions must spell out their changes with op.* calls, never re-read schema.py.
    bind = op.get_bind()
    schema.metadata.create_all(bind)


def downgrade() -> None:
    schema.metadata.drop_all(op.get_bind())
