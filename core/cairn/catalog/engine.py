"""Connecting to the catalog database: SQLite (WAL) or PostgreSQL, schema via Alembic.

Write transactions are serialised where version numbers are handed out: on SQLite every
write transaction is BEGIN IMMEDIATE; on PostgreSQL the collection row is locked
FOR UPDATE. The GC guard keeps garbage collection and writers' existence checks apart.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, pool, text
from sqlalchemy.exc import DBAPIError

from ..foundation.errors import CairnError
from ..foundation.files import use_wal
from . import journal as journals
from .jsondoc import dumps
from .roles import refused
from .schema import metadata

# Alembic revision this code expects; bump with every migration.
SCHEMA_HEAD = "0008"
_GC_LOCK_KEY = 0x0CA1_2600
_MIGRATION_LOCK_KEY = 0x0CA1_2601
_MIGRATION_LOCK = threading.Lock()


class Catalog:
    """A handle on the catalog database."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self.engine = _create_engine(url)
        # a forked child (Airflow's LocalExecutor, multiprocessing) must not share the
        # parent's pooled connections: it opens its own
        engine_ref = weakref.ref(self.engine)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(engine_ref))
        self.dialect = self.engine.dialect.name
        #: called before every write transaction that does not opt out: the repository
        #: checks there that store and catalog belong together (cairn.identity)
        self.before_write: Callable[[], object] | None = None
        #: where each write transaction's record goes before it commits (the store log);
        #: None writes none (a catalog opened without its store)
        self.journal: journals.Journal | None = None
        if migrate:
            ensure_schema(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, _refusals(conn), conn.begin():
            yield conn

    @contextmanager
    def write(self, *, check: bool = True, record: bool = True) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on any error.

        `before_write` runs first unless `check` is False (the binding itself). What the
        transaction changed goes to the journal as one record before the commit
        (docs/FORMAT.md "Store log": record first, then commit); `record=False` is for
        writes that put the log's own content back (recover).
        """
        if check and self.before_write is not None:
            self.before_write()
        with self.engine.connect() as conn:
            conn = conn.execution_options(cairn_write=True)
            entries = journals.begin(conn) if record and self.journal is not None else None
            try:
                with _refusals(conn), conn.begin():
                    yield conn
                    if entries and self.journal is not None:
                        self.journal.flush(conn, entries)
            finally:
                journals.end(conn)
            if entries and self.journal is not None:
                self.journal.committed()

    def gc_guard(self, conn: Connection, *, exclusive: bool) -> None:
        """Take the GC lock inside `conn`'s transaction (released when it ends).

        Writers take it shared while they record the objects they rely on and check
        which exist; GC takes it exclusive while it computes the live set and deletes.
        On SQLite every write transaction is already exclusive.
        """
        if self.dialect == "postgresql":
            fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            conn.execute(text(f"SELECT {fn}(:k)"), {"k": _GC_LOCK_KEY})

    def lock_row(self, conn: Connection, table: Any, row_id: int) -> None:
        """Lock one row until the transaction ends (a no-op on SQLite, already serial)."""
        if self.dialect == "postgresql":
            conn.execute(table.select().where(table.c.id == row_id).with_for_update())

    def display_url(self) -> str:
        """The catalog's URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def _refusals(conn: Connection) -> Iterator[None]:
    """A statement the database refused (row-level security) -> PermissionDenied."""
    try:
        yield
    except DBAPIError as exc:
        denied = refused(conn, exc)
        if denied is None:
            raise
        raise denied from exc


def _dispose_in_child(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def sqlite_url(home: str) -> str:
    return f"sqlite:///{os.path.join(home, 'catalog.db')}"


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # pooled: opening a SQLite connection per transaction costs ~20 ms in WAL mode,
        # and a log runs a transaction per batch of objects it leases
        engine = create_engine(
            url,
            poolclass=pool.QueuePool,
            pool_size=4,
            max_overflow=16,
            connect_args={"timeout": 300, "check_same_thread": False},
            json_serializer=dumps,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return create_engine(
            url, pool_pre_ping=True, pool_size=4, max_overflow=8, json_serializer=dumps
        )
    except ImportError as exc:
        raise CairnError(
            f"cannot open catalog {url.split('@')[-1]!r}: driver missing ({exc}); "
            "install cairn[postgres]"
        ) from exc


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own is too late)
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    use_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=300000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("cairn_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the schema with Alembic, unless it is already at head."""
    try:
        _upgrade(engine)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        with engine.connect() as conn:
            role = conn.exec_driver_sql("SELECT current_user").scalar()
        # only the catalog's owner may change its tables (docs/ACCESS.md)
        raise CairnError(
            f"role {role} may not read or upgrade this catalog's schema (this cairn needs "
            f"revision {SCHEMA_HEAD}): run any cairn command once as the role that owns "
            "the catalog"
        ) from exc


def _upgrade(engine: Engine) -> None:
    with engine.connect() as conn:
        current = _current_revision(conn)
    if current == SCHEMA_HEAD:
        return
    if current is not None and current.isdigit() and int(current) > int(SCHEMA_HEAD):
        raise CairnError(
            f"the catalog's schema is at revision {current}, newer than this cairn knows "
            f"({SCHEMA_HEAD}): a newer cairn has upgraded it; upgrade cairn to use it"
        )
    from alembic import command
    from alembic.config import Config

    here = Path(__file__).resolve().parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    # Alembic's migration context is global to the process: one upgrade at a time per
    # process, and per database an advisory lock (SQLite: the write lock) across processes.
    # The whole upgrade is one transaction begun here: Alembic then neither reads the
    # current revision outside it nor commits between revisions (it would on SQLite), so
    # a process that opens a new catalog beside another finds it at head or untouched,
    # never half way ("table ... already exists").
    with _MIGRATION_LOCK, engine.connect() as conn:
        conn = conn.execution_options(cairn_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


def _current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    conn.rollback()
    return row[0] if row else None


__all__ = ["Catalog", "metadata", "sqlite_url", "ensure_schema"]
