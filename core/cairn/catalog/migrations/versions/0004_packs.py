"""Packs: small objects stored together, and the index of where each one is.

Revision ID: 0004
Revises: 0003

`packed` maps (namespace, object digest) to a byte range of a pack object in that store
namespace (docs/FORMAT.md "Packs"). A cairn older than this revision would look for a
packed object under `objects/` and not find it, so it must not open the catalog: the
revision number is what stops it.

On PostgreSQL the table gets row-level security like every other: a role reads and adds
rows of the shared namespace and of the private projects it may read (write); only
catalog administrators (gc) move or delete rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "packed",
        sa.Column("namespace", sa.String(128), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("pack", sa.String(64), nullable=False),
        sa.Column("start", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_packed_pack", "packed", ["namespace", "pack"])
    if op.get_bind().dialect.name == "postgresql":
        _row_level_security()


def downgrade() -> None:
    op.drop_index("ix_packed_pack", "packed")
    op.drop_table("packed")


def _row_level_security() -> None:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    s = '"' + str(name).replace('"', '""') + '"'
    admin = f"{s}.cairn_is_admin(current_user)"

    def may(level: int) -> str:
        return (
            f"CASE WHEN {admin} THEN true ELSE "
            f"(namespace = '' OR {s}.cairn_access(namespace, current_user) >= {level}) END"
        )

    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.packed TO PUBLIC")
    op.execute(f"ALTER TABLE {s}.packed ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {s}.packed FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY cairn_read ON {s}.packed FOR SELECT USING ({may(1)})")
    op.execute(f"CREATE POLICY cairn_insert ON {s}.packed FOR INSERT WITH CHECK ({may(2)})")
    op.execute(
        f"CREATE POLICY cairn_update ON {s}.packed FOR UPDATE USING ({admin}) WITH CHECK ({admin})"
    )
    op.execute(f"CREATE POLICY cairn_delete ON {s}.packed FOR DELETE USING ({admin})")
