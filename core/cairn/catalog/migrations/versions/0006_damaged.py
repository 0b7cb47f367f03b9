"""Damaged objects: what `cairn verify` found missing or corrupt in the store.

Revision ID: 0006
Revises: 0005

`damaged` holds (namespace, object digest) rows that `cairn verify` could not read back
intact (docs/FORMAT.md "Damaged objects"). A writer that logs those bytes again treats
them as absent, stores a good copy over the bad one and deletes the row. A cairn older
than this revision would trust a damaged object and never repair it: the revision number
keeps it from opening the catalog. The index `ix_packed_digest_pack` answers "which
packs hold these objects" without reading the pack index's rows, and `pack_epochs`
counts, per namespace, the times an indexed object changed place (gc, repairs), so a
machine may reuse what it learned about where a version's objects are until it changes.

On PostgreSQL the table gets row-level security like every other: whoever may read a
namespace may see and report its damaged objects (verify needs no special role); whoever
may write it may clear them, and may move the pack index row of a damaged packed object
to its good copy (the `cairn_repair` policy on `packed`), which only catalog
administrators could do before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "damaged",
        sa.Column("namespace", sa.String(128), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("problem", sa.String(16), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("problem IN ('missing', 'corrupt')", name="ck_damaged_problem"),
    )
    # which packs hold a version's objects, answered from the index alone: what a writer
    # asks before it trusts that objects are stored (cairn.catalog.packs.split)
    op.create_index("ix_packed_digest_pack", "packed", ["namespace", "digest", "pack"])
    op.create_table(
        "pack_epochs",
        sa.Column("namespace", sa.String(128), primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _row_level_security()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP POLICY IF EXISTS cairn_repair ON {_schema()}.packed")
    op.drop_table("pack_epochs")
    op.drop_index("ix_packed_digest_pack", "packed")
    op.drop_table("damaged")


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _row_level_security() -> None:
    s = _schema()
    admin = f"{s}.cairn_is_admin(current_user)"

    def may(level: int, table: str = "") -> str:
        ns = f"{table}.namespace" if table else "namespace"
        return (
            f"CASE WHEN {admin} THEN true ELSE "
            f"({ns} = '' OR {s}.cairn_access({ns}, current_user) >= {level}) END"
        )

    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.damaged TO PUBLIC")
    op.execute(f"ALTER TABLE {s}.damaged ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {s}.damaged FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY cairn_read ON {s}.damaged FOR SELECT USING ({may(1)})")
    op.execute(f"CREATE POLICY cairn_insert ON {s}.damaged FOR INSERT WITH CHECK ({may(1)})")
    op.execute(
        f"CREATE POLICY cairn_update ON {s}.damaged FOR UPDATE USING ({may(1)}) "
        f"WITH CHECK ({may(1)})"
    )
    op.execute(f"CREATE POLICY cairn_delete ON {s}.damaged FOR DELETE USING ({may(2)})")
    # whoever may move an object's index row bumps its namespace's epoch
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON {s}.pack_epochs TO PUBLIC")
    op.execute(f"ALTER TABLE {s}.pack_epochs ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {s}.pack_epochs FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY cairn_read ON {s}.pack_epochs FOR SELECT USING ({may(1)})")
    op.execute(f"CREATE POLICY cairn_insert ON {s}.pack_epochs FOR INSERT WITH CHECK ({may(2)})")
    op.execute(
        f"CREATE POLICY cairn_update ON {s}.pack_epochs FOR UPDATE USING ({may(2)}) "
        f"WITH CHECK ({may(2)})"
    )
    op.execute(f"CREATE POLICY cairn_delete ON {s}.pack_epochs FOR DELETE USING ({admin})")
    # a writer moves the index row of a damaged packed object to the good copy it stored
    op.execute(
        f"CREATE POLICY cairn_repair ON {s}.packed FOR DELETE USING ({may(2, 'packed')} AND "
        f"EXISTS (SELECT 1 FROM {s}.damaged d WHERE d.namespace = packed.namespace "
        "AND d.digest = packed.digest))"
    )
