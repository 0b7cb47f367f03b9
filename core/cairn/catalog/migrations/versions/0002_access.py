"""Project access: members, per-project manifests and PostgreSQL row-level security.

Revision ID: 0002
Revises: 0001

On every catalog: the `members` table, `projects.created_by`, `leases.created_by`, and
`manifests` keyed by (project_id, digest) so no manifest row is shared by two projects.
On PostgreSQL also: table privileges for every role, SECURITY DEFINER functions that
answer "what may this role do in this project", and row-level security, enabled and
forced, on every catalog table (docs/ACCESS.md explains the model).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

WHEN = sa.DateTime(timezone=True)

# A role's right on a row's project: 0 none, 1 read, 2 write, 3 admin. Each table gets
# four policies, (SELECT using, INSERT check, UPDATE using and check, DELETE using).
READ, WRITE, ADMIN = 1, 2, 3
_PROJECT = "{s}.cairn_right(project_id, current_user)"
_COLLECTION = "{s}.cairn_collection_right(collection_id, current_user)"
_VERSION = "{s}.cairn_version_right(version_id, current_user)"
_RUN = "{s}.cairn_run_right(run_id, current_user)"
_IS_ADMIN = "{s}.cairn_is_admin(current_user)"


def _may(check: str) -> str:
    """`check`, after letting the catalog's administrators (its owner) through at once.

    The SECURITY DEFINER functions run as the owner: their own queries stop here rather
    than call them again. CASE, unlike OR, fixes the order of evaluation.
    """
    return f"CASE WHEN {_IS_ADMIN} THEN true ELSE ({check}) END"


_SAME_COLLECTION = (
    "EXISTS (SELECT 1 FROM {s}.versions v "
    "WHERE v.id = aliases.version_id AND v.collection_id = aliases.collection_id)"
)
_RULES: dict[str, tuple[str, str, str, str]] = {
    # its creator sees a project row from the start: INSERT ... ON CONFLICT checks the
    # proposed row against this policy before the trigger has made the creator admin
    "projects": (
        _may(f"{_PROJECT.replace('project_id', 'id')} >= {READ} OR created_by = current_user"),
        f"created_by = current_user OR {_IS_ADMIN}",
        _may(f"{_PROJECT.replace('project_id', 'id')} >= {ADMIN}"),
        _may(f"{_PROJECT.replace('project_id', 'id')} >= {ADMIN}"),
    ),
    "members": (
        _may(f"{_PROJECT} >= {READ}"),
        _may(f"{_PROJECT} >= {ADMIN} AND granted_by = current_user"),
        _may(f"{_PROJECT} >= {ADMIN}"),
        _may(f"{_PROJECT} >= {ADMIN}"),
    ),
    "collections": (
        _may(f"{_PROJECT} >= {READ}"),
        _may(f"{_PROJECT} >= {WRITE}"),
        _may(f"{_PROJECT} >= {WRITE}"),
        _IS_ADMIN,
    ),
    "runs": (
        _may(f"{_PROJECT} >= {READ}"),
        _may(f"{_PROJECT} >= {WRITE}"),
        _may(f"{_PROJECT} >= {WRITE}"),
        _IS_ADMIN,
    ),
    # a committed manifest never changes: no role, the owner included, may update one
    "manifests": (
        _may(f"{_PROJECT} >= {READ}"),
        _may(f"{_PROJECT} >= {WRITE}"),
        "false",
        _IS_ADMIN,
    ),
    "versions": (
        _may(f"{_COLLECTION} >= {READ}"),
        _may(f"{_COLLECTION} >= {WRITE}"),
        _may(f"{_COLLECTION} >= {WRITE}"),
        _IS_ADMIN,
    ),
    # an alias names a version of its own collection (never probes another project's ids)
    "aliases": (
        _may(f"{_COLLECTION} >= {READ}"),
        _may(f"{_COLLECTION} >= {WRITE} AND {_SAME_COLLECTION}"),
        _may(f"{_COLLECTION} >= {WRITE} AND {_SAME_COLLECTION}"),
        _may(f"{_COLLECTION} >= {WRITE}"),
    ),
    "parts": (
        _may(f"{_VERSION} >= {READ}"),
        _may(f"{_VERSION} >= {WRITE}"),
        _may(f"{_VERSION} >= {WRITE}"),
        _may(f"{_VERSION} >= {WRITE}"),
    ),
    # a use belongs to the run's project and names a version the run's role can read
    "usages": (
        _may(f"{_RUN} >= {READ} AND {_VERSION} >= {READ}"),
        _may(f"{_RUN} >= {WRITE} AND {_VERSION} >= {READ}"),
        _may(f"{_RUN} >= {WRITE} AND {_VERSION} >= {READ}"),
        _may(f"{_RUN} >= {WRITE}"),
    ),
    # a writer's lease is its own business (and gc's)
    "leases": (f"created_by = current_user OR {_IS_ADMIN}",) * 4,
    "lease_objects": ("EXISTS (SELECT 1 FROM {s}.leases l WHERE l.id = lease_id)",) * 4,
}
# columns that tie a row to its project: an UPDATE must not move a row across projects
_KEYS = {
    "projects": "id",
    "members": "project_id",
    "collections": "project_id",
    "runs": "project_id",
    "manifests": "project_id",
    "versions": "collection_id",
    "aliases": "collection_id",
    "parts": "version_id",
    "usages": "run_id, version_id",
    "leases": "created_by",
    "lease_objects": "lease_id",
}
_SERIAL = ("projects", "collections", "versions")


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("principal", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.CheckConstraint("role IN ('reader', 'writer', 'admin')", name="ck_members_role"),
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("created_by", sa.String(128), nullable=True))
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("created_by", sa.String(128), nullable=True))
    _manifests_per_project()
    if op.get_bind().dialect.name == "postgresql":
        for statement in _row_level_security(_schema()):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        s = _schema()
        for table in _RULES:
            for policy in ("read", "insert", "update", "delete"):
                op.execute(f"DROP POLICY IF EXISTS cairn_{policy} ON {s}.{table}")
            op.execute(f"ALTER TABLE {s}.{table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {s}.{table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"DROP TRIGGER IF EXISTS cairn_project_created ON {s}.projects")
        for table in _KEYS:
            op.execute(f"DROP TRIGGER IF EXISTS cairn_keep_keys ON {s}.{table}")
        op.execute(f"ALTER TABLE {s}.projects DROP CONSTRAINT IF EXISTS ck_projects_visibility")
        for fn in (
            "cairn_keep_keys()",
            "cairn_project_created()",
            "cairn_access(text, name)",
            "cairn_run_right(text, name)",
            "cairn_version_right(integer, name)",
            "cairn_collection_right(integer, name)",
            "cairn_right(integer, name)",
            "cairn_level(integer, name)",
            "cairn_is_admin(name)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {s}.{fn}")
    # one manifest row per digest again: copies in several projects hold the same bytes
    op.create_table(
        "manifests_0001",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.execute(
        "INSERT INTO manifests_0001 (digest, body, size, file_count, created_at) "
        "SELECT m.digest, m.body, m.size, m.file_count, m.created_at FROM manifests m "
        "WHERE m.project_id = (SELECT min(o.project_id) FROM manifests o WHERE o.digest = m.digest)"
    )
    op.drop_table("manifests")
    op.rename_table("manifests_0001", "manifests")
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("created_by")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("created_by")
    op.drop_table("members")


def _manifests_per_project() -> None:
    """Re-key manifests by (project_id, digest): one copy per project that uses it."""
    op.create_table(
        "manifests_0002",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "digest", name="pk_manifests"),
    )
    # rows no version names are unreferenced (gc would drop them): they are not carried
    op.execute(
        "INSERT INTO manifests_0002 (project_id, digest, body, size, file_count, created_at) "
        "SELECT DISTINCT c.project_id, m.digest, m.body, m.size, m.file_count, m.created_at "
        "FROM manifests m JOIN versions v ON v.digest = m.digest "
        "JOIN collections c ON c.id = v.collection_id"
    )
    op.drop_table("manifests")
    op.rename_table("manifests_0002", "manifests")


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _row_level_security(s: str) -> Iterator[str]:
    """DDL for access on PostgreSQL; `s` is the quoted schema holding the catalog."""
    yield from _functions(s)
    yield f"ALTER TABLE {s}.projects ALTER COLUMN created_by SET DEFAULT current_user"
    yield f"ALTER TABLE {s}.leases ALTER COLUMN created_by SET DEFAULT current_user"
    yield f"ALTER TABLE {s}.members ALTER COLUMN granted_by SET DEFAULT current_user"
    yield (
        f"ALTER TABLE {s}.projects ADD CONSTRAINT ck_projects_visibility "
        "CHECK (visibility IN ('private', 'public', 'open'))"
    )
    # whoever creates a project administers it
    yield (
        f"CREATE TRIGGER cairn_project_created AFTER INSERT ON {s}.projects "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.cairn_project_created()"
    )
    for table, columns in _KEYS.items():
        names = ", ".join(f"'{c.strip()}'" for c in columns.split(","))
        yield (
            f"CREATE TRIGGER cairn_keep_keys BEFORE UPDATE ON {s}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {s}.cairn_keep_keys({names})"
        )
    # privileges let every role try; the policies below decide which rows it reaches
    tables = ", ".join(f"{s}.{t}" for t in _RULES)
    yield f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO PUBLIC"
    yield f"GRANT SELECT ON {s}.alembic_version TO PUBLIC"
    for table in _SERIAL:
        yield (
            "DO $$ BEGIN EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO PUBLIC', "
            f"pg_get_serial_sequence('{s}.{table}', 'id')); END $$"
        )
    yield (
        "DO $$ BEGIN IF (SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM "
        "pg_namespace WHERE oid = current_schema()::regnamespace) THEN "
        f"GRANT USAGE ON SCHEMA {s} TO PUBLIC; END IF; END $$"
    )
    for table, rules in _RULES.items():
        read, insert, update, delete = (rule.replace("{s}", s) for rule in rules)
        yield f"ALTER TABLE {s}.{table} ENABLE ROW LEVEL SECURITY"
        # the owner too: its access goes through the same policies (it is admin there)
        yield f"ALTER TABLE {s}.{table} FORCE ROW LEVEL SECURITY"
        yield f"CREATE POLICY cairn_read ON {s}.{table} FOR SELECT USING ({read})"
        yield f"CREATE POLICY cairn_insert ON {s}.{table} FOR INSERT WITH CHECK ({insert})"
        yield (
            f"CREATE POLICY cairn_update ON {s}.{table} FOR UPDATE "
            f"USING ({update}) WITH CHECK ({update})"
        )
        yield f"CREATE POLICY cairn_delete ON {s}.{table} FOR DELETE USING ({delete})"


def _functions(s: str) -> Iterator[str]:
    """Membership checks as SECURITY DEFINER functions owned by the schema owner.

    A policy that queried `members` itself would recurse into `members`' own policy;
    these run as the owner, whom every policy lets through before any lookup (`_may`).
    They answer only about roles the session may act as: nobody learns another role's
    rights, or which ids exist, by asking about someone else.
    """
    definer = f"STABLE SECURITY DEFINER SET search_path = pg_catalog, {s}, pg_temp"
    # The catalog's administrators: its owner, roles that inherit the owner's privileges,
    # superusers. Nobody else is granted TRIGGER on a catalog table, so that privilege
    # says it; and one built-in call inlines into the policies, cheap on every row.
    yield f"""
CREATE FUNCTION {s}.cairn_is_admin(who name) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT pg_catalog.has_table_privilege(who, '{s}.projects'::pg_catalog.regclass, 'TRIGGER')
$$"""
    # Not SECURITY DEFINER: called by anyone else, it sees only what they may see. Called
    # by the functions below, it runs with their role and their search_path.
    yield f"""
CREATE FUNCTION {s}.cairn_level(pid integer, who name) RETURNS integer
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN coalesce(max(greatest(
           CASE p.visibility WHEN 'open' THEN 2 WHEN 'public' THEN 1 ELSE 0 END,
           CASE m.role WHEN 'admin' THEN 3 WHEN 'writer' THEN 2 WHEN 'reader' THEN 1
                       ELSE 0 END)), 0)
  FROM {s}.projects p
  LEFT JOIN {s}.members m
    ON m.project_id = p.id
   AND (m.principal = who
        OR EXISTS (SELECT 1 FROM pg_roles r
                    WHERE r.rolname = m.principal AND pg_has_role(who, r.oid, 'MEMBER')))
  WHERE p.id = pid;
END $$"""
    for fn, arg, lookup in (
        ("cairn_right", "pid integer", "project := pid"),
        (
            "cairn_collection_right",
            "cid integer",
            f"SELECT c.project_id INTO project FROM {s}.collections c WHERE c.id = cid",
        ),
        (
            "cairn_version_right",
            "vid integer",
            f"SELECT c.project_id INTO project FROM {s}.versions v "
            f"JOIN {s}.collections c ON c.id = v.collection_id WHERE v.id = vid",
        ),
        (
            "cairn_run_right",
            "rid text",
            f"SELECT r.project_id INTO project FROM {s}.runs r WHERE r.id = rid",
        ),
    ):
        yield f"""
CREATE FUNCTION {s}.{fn}({arg}, who name) RETURNS integer
LANGUAGE plpgsql {definer} AS $$
DECLARE
  project integer;
BEGIN
  IF NOT pg_has_role(session_user, who, 'MEMBER') THEN RETURN 0; END IF;
  IF {s}.cairn_is_admin(who) THEN RETURN 3; END IF;
  {lookup};
  RETURN {s}.cairn_level(project, who);
END $$"""
    # -1 for a project that does not exist: project names are one namespace, so a name's
    # existence is no secret (docs/ACCESS.md)
    yield f"""
CREATE FUNCTION {s}.cairn_access(pname text, who name) RETURNS integer
LANGUAGE plpgsql {definer} AS $$
DECLARE
  project integer;
BEGIN
  IF NOT pg_has_role(session_user, who, 'MEMBER') THEN RETURN 0; END IF;
  SELECT p.id INTO project FROM {s}.projects p WHERE p.name = pname;
  IF NOT FOUND THEN RETURN -1; END IF;
  IF {s}.cairn_is_admin(who) THEN RETURN 3; END IF;
  RETURN {s}.cairn_level(project, who);
END $$"""
    yield f"""
CREATE FUNCTION {s}.cairn_keep_keys() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  col text;
BEGIN
  FOREACH col IN ARRAY TG_ARGV LOOP
    IF to_jsonb(NEW) -> col IS DISTINCT FROM to_jsonb(OLD) -> col THEN
      RAISE EXCEPTION 'cairn: %.% never changes: it ties the row to its project',
        TG_TABLE_NAME, col USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  RETURN NEW;
END $$"""
    yield f"""
CREATE FUNCTION {s}.cairn_project_created() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s}, pg_temp AS $$
BEGIN
  IF NEW.created_by IS NOT NULL THEN
    INSERT INTO {s}.members (project_id, principal, role, granted_by, created_at)
    VALUES (NEW.id, NEW.created_by, 'admin', NEW.created_by, now())
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$"""
