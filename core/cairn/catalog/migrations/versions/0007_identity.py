"""Repository identity: the catalog records which store it belongs to.

Revision ID: 0007
Revises: 0006

Adds `repository`, one row: the repository id (a UUID, also in the store's
`config.json`), NULL until the catalog is bound to a store. `legacy` says whether the
catalog held any version when this revision ran: such a catalog was made before ids and
may adopt the store it was used with (docs/FORMAT.md "Repository identity"); a catalog
made empty may not adopt a store that already holds data.

On PostgreSQL every role may read the row and bind an unbound catalog (the first
writer of a new repository need not be its owner), but a trigger refuses to change an
id once set, whoever asks: only a new database starts a new binding.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "repository",
        sa.Column("one", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(36), nullable=True),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.Column("legacy", sa.Boolean, nullable=False),
        sa.Column("store_url", sa.Text, nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("one = 1", name="ck_repository_one"),
    )
    bind = op.get_bind()
    # run by the catalog's owner (migrations are), so it sees every project's versions
    legacy = bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM versions)")).scalar()
    repository = sa.table(
        "repository",
        sa.column("one", sa.Integer),
        sa.column("pending", sa.Boolean),
        sa.column("legacy", sa.Boolean),
    )
    op.bulk_insert(repository, [{"one": 1, "pending": False, "legacy": bool(legacy)}])
    if bind.dialect.name == "postgresql":
        _row_level_security()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        s = _schema()
        op.execute(f"DROP TRIGGER IF EXISTS cairn_keep_id ON {s}.repository")
        op.execute(f"DROP FUNCTION IF EXISTS {s}.cairn_keep_id()")
    op.drop_table("repository")


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _row_level_security() -> None:
    s = _schema()
    op.execute(f"GRANT SELECT, UPDATE ON {s}.repository TO PUBLIC")
    op.execute(f"ALTER TABLE {s}.repository ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {s}.repository FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY cairn_read ON {s}.repository FOR SELECT USING (true)")
    op.execute(f"CREATE POLICY cairn_update ON {s}.repository FOR UPDATE USING (true)")
    # the row is the migration's; only the catalog's administrators add or remove it
    admin = f"{s}.cairn_is_admin(current_user)"
    op.execute(f"CREATE POLICY cairn_insert ON {s}.repository FOR INSERT WITH CHECK ({admin})")
    op.execute(f"CREATE POLICY cairn_delete ON {s}.repository FOR DELETE USING ({admin})")
    # an id, once set, never changes: a wrong store can never re-bind a catalog
    op.execute(
        f"""CREATE FUNCTION {s}.cairn_keep_id() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.id IS NOT NULL AND NEW.id IS DISTINCT FROM OLD.id THEN
            RAISE EXCEPTION 'the repository id of a catalog never changes'
              USING ERRCODE = 'check_violation';
          END IF;
          RETURN NEW;
        END $$"""
    )
    op.execute(
        f"CREATE TRIGGER cairn_keep_id BEFORE UPDATE ON {s}.repository "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.cairn_keep_id()"
    )
