"""docs/ACCESS.md's PostgreSQL setup, run as written, on a server that asks for passwords.

Each SQL block of the section "Who may run the setup" runs as the role its first line
names, on a fresh PostgreSQL cluster (scram-sha-256 over TCP, like a real server). Then
the catalog's owner runs cairn first (it creates the tables and their row-level
security), a user logs a version and `cairn gc` runs as the maintenance role; every
role finds its password in a password file or a service file, never in the URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from cairn import Artifact, CairnError, PermissionDenied, Repository

from .conftest import write

DOC = Path(__file__).resolve().parents[2] / "docs" / "ACCESS.md"
PASSWORD = "correct-horse-battery"
SUPERUSER = "-- as a superuser"
ADMIN = "-- as an admin with CREATEROLE and CREATEDB"


def setup_block(first_line: str) -> list[str]:
    """The statements of the ```sql block of docs/ACCESS.md whose first line starts so,
    with the doc's `'...'` passwords filled in."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    body = "\n".join(line.split("--")[0] for line in block.splitlines())
    return [s.strip() for s in body.replace("'...'", f"'{PASSWORD}'").split(";") if s.strip()]


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh cluster whose TCP connections need a password; yields host:port. Every
    role's password is in a password file that PGPASSFILE names (mode 0600)."""
    with servers.postgres_server(password=PASSWORD) as url:
        where = make_url(url)
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"{where.host}:{where.port}:*:*:{PASSWORD}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
        for var in ("PGPASSWORD", "PGSERVICEFILE", "PGSERVICE", "CAIRN_CATALOG"):
            monkeypatch.delenv(var, raising=False)
        yield f"{where.host}:{where.port}"


def url(server: str, role: str, db: str = "cairn") -> str:
    """A catalog URL with no password: libpq finds it in the password file."""
    return f"postgresql+psycopg://{role}@{server}/{db}"


def run_as(server: str, role: str, statements: list[str]) -> None:
    engine = create_engine(url(server, role, "postgres"), poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def refused(server: str, role: str, statement: str) -> str:
    with pytest.raises(DBAPIError) as info:
        run_as(server, role, [statement])
    return str(info.value.orig)


def check_the_catalog_works(server: str, tmp_path: Path) -> None:
    """The owner's first run makes the schema; a user logs; gc runs as cairn_gc."""
    with Repository.open(catalog=url(server, "cairn_owner"), home=str(tmp_path / "owner")) as repo:
        assert repo.projects() == []
    engine = create_engine(url(server, "cairn_owner"), poolclass=NullPool)
    with engine.connect() as conn:
        owners = conn.execute(
            text(
                "SELECT DISTINCT pg_get_userbyid(relowner), relforcerowsecurity FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
                "AND relname <> 'alembic_version'"
            )
        ).all()
    engine.dispose()
    assert owners == [("cairn_owner", True)]  # its tables, row-level security forced

    store = str(tmp_path / "store")
    with Repository.open(
        catalog=url(server, "alice"), store=store, home=str(tmp_path / "alice")
    ) as alice:
        art = Artifact("faces").add_file(write(tmp_path / "a.txt", "alpha"))
        v = alice.log_artifact(art, project="vision")
        assert (v.ref, alice.project("vision").access) == ("vision/faces:v0", "admin")
        v.delete()
        with pytest.raises(PermissionDenied):
            alice.gc(grace=0)  # maintenance is not hers
    with Repository.open(
        catalog=url(server, "cairn_gc"), store=store, home=str(tmp_path / "gc")
    ) as gc:
        assert gc.gc(grace=0).objects_deleted == 1  # it sees every project: alice's bytes go


def test_the_superuser_setup_as_written(server, tmp_path):
    run_as(server, "postgres", setup_block(SUPERUSER))
    check_the_catalog_works(server, tmp_path)


def test_the_createrole_createdb_setup_as_written(server, tmp_path):
    run_as(server, "postgres", [f"CREATE ROLE dba LOGIN PASSWORD '{PASSWORD}' CREATEROLE CREATEDB"])
    # why the superuser's block is not for this admin: PostgreSQL refuses two statements
    run_as(server, "dba", ["CREATE ROLE cairn_probe LOGIN"])
    message = refused(server, "dba", "CREATE DATABASE probe OWNER cairn_probe")
    assert "must be member of role" in message
    assert "must be superuser" in refused(server, "dba", "CREATE ROLE probe BYPASSRLS")

    run_as(server, "dba", setup_block(ADMIN))
    check_the_catalog_works(server, tmp_path)


def test_only_the_databases_owner_can_set_up_the_tables_and_their_policies(server, tmp_path):
    run_as(server, "postgres", setup_block(SUPERUSER))
    with pytest.raises(CairnError, match="may not read or upgrade this catalog's schema"):
        Repository.open(catalog=url(server, "alice"), home=str(tmp_path / "alice"))
    check_the_catalog_works(server, tmp_path)  # and the owner still can, afterwards


def test_a_role_connects_through_a_password_file_or_a_service_file(server, tmp_path, monkeypatch):
    run_as(server, "postgres", setup_block(SUPERUSER))
    with Repository.open(catalog=url(server, "cairn_owner"), home=str(tmp_path / "owner")):
        pass
    host, port = server.rsplit(":", 1)

    # the password file as docs/ACCESS.md shows it: one line for alice, mode 0600
    pgpass = tmp_path / "alice.pgpass"
    pgpass.write_text(
        f"# hostname:port:database:username:password\n{server}:cairn:alice:{PASSWORD}\n"
    )
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    with Repository.open(catalog=url(server, "alice"), home=str(tmp_path / "a")) as repo:
        repo.create_project("vision")
        assert repo.project("vision").members[0].principal == "alice"

    # a service file names the connection; the URL holds nothing but its name
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[cairn]\nhost={host}\nport={port}\ndbname=cairn\nuser=alice\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    catalog = "postgresql+psycopg:///?service=cairn"
    with Repository.open(catalog=catalog, home=str(tmp_path / "b")) as repo:
        assert repo.projects() == ["vision"]
        with repo.catalog.read() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "alice"

    # no password found: the server refuses, and says so
    pgpass.write_text(f"{server}:cairn:someone-else:{PASSWORD}\n")
    with pytest.raises((CairnError, OperationalError), match="password"):
        Repository.open(catalog=url(server, "alice"), home=str(tmp_path / "c"))
    # libpq ignores a password file that others may read
    pgpass.write_text(f"{server}:cairn:alice:{PASSWORD}\n")
    pgpass.chmod(0o644)
    with pytest.raises((CairnError, OperationalError), match="password"):
        Repository.open(catalog=url(server, "alice"), home=str(tmp_path / "d"))
