"""Retention policies: what `cairn retain` keeps, per project or collection.

Revision ID: 0008
Revises: 0007

`retention_policies` holds one row per project (collection_id NULL) and at most one per
collection (docs/FORMAT.md "Retention policies", docs/RETENTION.md). A cairn older than
this revision would delete versions holding a protected alias (`cairn rm`, `prune`): the
revision number keeps it from opening the catalog.

On PostgreSQL the table gets row-level security like every other: whoever may read a
project may read its policies; only its admins may declare, change or remove them (a
policy decides what is deleted). A collection's policy must name a collection of the
same project, and neither column moves a row across projects.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id"), nullable=True),
        sa.Column("keep_last", sa.Integer, nullable=True),
        sa.Column("keep_younger", sa.BigInteger, nullable=True),
        sa.Column("keep_aliased", sa.JSON, nullable=True),
        sa.Column("keep_used", sa.BigInteger, nullable=True),
        sa.Column("protect", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.CheckConstraint("keep_last IS NULL OR keep_last >= 0", name="ck_retention_keep_last"),
        sa.CheckConstraint(
            "(keep_younger IS NULL OR keep_younger >= 0) AND (keep_used IS NULL OR keep_used >= 0)",
            name="ck_retention_durations",
        ),
    )
    nulls = sa.text("collection_id IS NULL")
    named = sa.text("collection_id IS NOT NULL")
    op.create_index(
        "uq_retention_project",
        "retention_policies",
        ["project_id"],
        unique=True,
        sqlite_where=nulls,
        postgresql_where=nulls,
    )
    op.create_index(
        "uq_retention_collection",
        "retention_policies",
        ["collection_id"],
        unique=True,
        sqlite_where=named,
        postgresql_where=named,
    )
    if op.get_bind().dialect.name == "postgresql":
        _row_level_security()


def downgrade() -> None:
    op.drop_index("uq_retention_collection", "retention_policies")
    op.drop_index("uq_retention_project", "retention_policies")
    op.drop_table("retention_policies")


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _row_level_security() -> None:
    s = _schema()
    admin = f"{s}.cairn_is_admin(current_user)"

    def may(level: int) -> str:
        return (
            f"CASE WHEN {admin} THEN true ELSE "
            f"{s}.cairn_right(project_id, current_user) >= {level} END"
        )

    same_project = (
        f"(collection_id IS NULL OR EXISTS (SELECT 1 FROM {s}.collections c "
        "WHERE c.id = retention_policies.collection_id "
        "AND c.project_id = retention_policies.project_id))"
    )
    t = f"{s}.retention_policies"
    op.execute(f"ALTER TABLE {t} ALTER COLUMN updated_by SET DEFAULT current_user")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO PUBLIC")
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO PUBLIC', "
        f"pg_get_serial_sequence('{t}', 'id')); END $$"
    )
    op.execute(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY cairn_read ON {t} FOR SELECT USING ({may(1)})")
    op.execute(
        f"CREATE POLICY cairn_insert ON {t} FOR INSERT WITH CHECK ({may(3)} AND {same_project})"
    )
    op.execute(
        f"CREATE POLICY cairn_update ON {t} FOR UPDATE USING ({may(3)}) "
        f"WITH CHECK ({may(3)} AND {same_project})"
    )
    op.execute(f"CREATE POLICY cairn_delete ON {t} FOR DELETE USING ({may(3)})")
    op.execute(
        f"CREATE TRIGGER cairn_keep_keys BEFORE UPDATE ON {t} "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.cairn_keep_keys('project_id', 'collection_id')"
    )
