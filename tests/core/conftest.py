"""Fixtures for engine tests: a fresh repository per test, on each catalog and store."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from cairn import Repository
from cairn.engine.objects import read_index
from cairn.foundation.layout import (
    OBJECTS,
    PACKS,
    PROJECTS,
    digest_of_object_key,
    digest_of_pack_key,
)


def write(path, data: bytes | str) -> str:
    """Create a file (and its folders) and return its path as a string."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)
    return path


def random_files(root, n: int, *, seed: int = 0, size: int = 1000) -> dict[str, bytes]:
    """Write n files of random bytes under root (f/0000.bin, ...); return path -> bytes."""
    rnd = random.Random(seed)
    out = {f"f/{i:04d}.bin": rnd.randbytes(size) for i in range(n)}
    for name, data in out.items():
        write(root / name, data)
    return out


def stored_objects(repo: Repository) -> dict[str, int]:
    """Key -> size of every object in the store, in every namespace; an object inside a
    pack is `<pack key>#<digest>`, as the pack's own index lists it."""
    listing = [*repo.store.list(OBJECTS), *repo.store.list(PACKS), *repo.store.list(PROJECTS)]
    out = {o.key: o.size for o in listing if digest_of_object_key(o.key) is not None}
    for o in listing:
        pack = digest_of_pack_key(o.key)
        if pack is not None:
            members = read_index(pack[1], repo.store.get(o.key))
            out.update((f"{o.key}#{m.digest}", m.size) for m in members)
    return out


def migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) the catalog at `url` to an Alembic revision of cairn's."""
    from alembic import command
    from alembic.config import Config

    import cairn.catalog.engine as engine_module

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engine_module.__file__).parent / "migrations"))
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()
    engine.dispose()


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("CAIRN_HOME", str(h))
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_STORAGE_OPTIONS", "CAIRN_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request, home):
    """Every catalog test runs on the embedded SQLite catalog and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{home}/catalog.db"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def repo(home, catalog_url):
    r = Repository.open(catalog=catalog_url, home=str(home))
    yield r
    r.close()


@pytest.fixture
def small_chunks(home, catalog_url):
    """A repository whose store cuts files above 64 KiB into ~16 KiB chunks."""
    import json

    store = home / "store"
    store.mkdir(parents=True)
    (store / "config.json").write_text(
        json.dumps(
            {
                "format": 1,
                "chunking": {"threshold": 65536, "avg": 16384, "min": 4096, "max": 65536},
            }
        )
    )
    r = Repository.open(catalog=catalog_url, home=str(home))
    yield r
    r.close()


@pytest.fixture(params=["local", "s3"])
def store(request, home):
    """(store URL, storage options) of an empty store, local and on S3 (the store log's tests)."""
    if request.param == "local":
        return str(home / "store"), None
    s3 = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/store", s3.storage_options


@pytest.fixture
def local(home):
    """A repository on the SQLite catalog (checkout rules do not depend on the catalog)."""
    r = Repository.open(catalog=f"sqlite:///{home}/catalog.db", home=str(home))
    yield r
    r.close()
