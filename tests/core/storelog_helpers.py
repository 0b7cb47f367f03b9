"""Shared by the store-log tests: a repository with some history, deleting its catalog, and
the comparison that lists every difference between two catalogs."""

from __future__ import annotations

import os
from pathlib import Path

import servers
from sqlalchemy.engine import make_url

from cairn import Artifact, Repository
from cairn.catalog.dump import dump
from cairn.engine.recover import differences


def open_repo(home: Path, catalog_url: str, store: str, options: dict | None) -> Repository:
    return Repository.open(
        catalog=catalog_url, store=store, storage_options=options, home=str(home)
    )


def populate(repo: Repository, data: Path) -> None:
    """Versions, aliases, edits, a deletion, runs with config and summary, lineage, projects
    with visibility and members, retention policies (one replaced, one removed): everything
    the catalog holds that the log must keep."""
    data.mkdir(exist_ok=True)
    (data / "many").mkdir(exist_ok=True)
    for i in range(24):  # enough small files to be sent as a pack
        (data / "many" / f"{i}.txt").write_text(f"small file {i}")
    repo.create_project("demo", visibility="public")
    with repo.run(project="demo", name="prep", job_type="etl", group="g1", config={"k": 1}) as run:
        for i in range(4):
            (data / "a.txt").write_text(f"content {i}")
            (data / f"extra-{i}.bin").write_bytes(os.urandom(300))
            art = Artifact("ds", type="dataset", description=f"take {i}", metadata={"i": i})
            art.add_dir(str(data))
            run.log_artifact(art, aliases=["production"] if i == 2 else [])
        run.log_summary({"rows": 4, "loss": 0.25})
    with repo.run(project="demo", name="train", job_type="train", config={"lr": 0.1}) as run:
        run.use_artifact("demo/ds:production")
        run.use_artifact("demo/ds:v1")
        model = Artifact("model", type="model", metadata={"acc": 0.9})
        model.add_dir(str(data))
        run.log_artifact(model, aliases=["best"])
        run.log_summary({"acc": 0.93})
    v = repo.artifact("demo/ds:v3")
    v.description = "edited later"
    v.metadata["checked"] = True
    v.aliases = ["staging"]
    v.save()
    repo.artifact("demo/ds:v0").delete()
    repo.create_project("secret", visibility="private")
    (data / "s.txt").write_text("private bytes")
    art = Artifact("notes", type="text")
    art.add_file(str(data / "s.txt"))
    repo.log_artifact(art, project="secret", aliases=["kept"])
    repo.set_visibility("secret", "open")
    repo.set_visibility("secret", "private")
    alice, bob = roles(repo)
    repo.grant("secret", alice, "writer")
    repo.grant("secret", bob, "reader")
    repo.revoke("secret", bob)
    repo.set_retention("demo", keep_last=5)
    repo.set_retention("demo", keep_last=2, keep_aliased=True, keep_used="30d")  # replaces
    repo.set_retention("demo/ds", keep_younger="2w", keep_aliased=["best"], protect=["audit"])
    repo.set_retention("demo/model", keep_last=1)
    assert repo.remove_retention("demo/model")
    repo.set_retention("secret", keep_last=3, protect=[])


def roles(repo: Repository) -> tuple[str, str]:
    """Two principals to grant: on PostgreSQL real roles (created here), as the access
    tests make them."""
    if repo.catalog.dialect == "sqlite":
        return "alice", "bob"
    tag = os.urandom(4).hex()
    names = (f"sl_alice_{tag}", f"sl_bob_{tag}")
    url = repo.catalog.engine.url.render_as_string(hide_password=False)
    for name in names:
        servers._admin_execute(url, f"CREATE ROLE {name} NOLOGIN")
    return names


def snapshot(repo: Repository) -> dict:
    with repo.catalog.read() as conn:
        return dump(conn)


def catalog_differences(before: dict, after: dict) -> list[str]:
    """Every difference between two catalogs: versions, numbers, aliases, metadata,
    descriptions, lineage, runs with config and summary, projects, members, visibility,
    retention policies."""
    return differences(before, after)


def delete_catalog(catalog_url: str) -> None:
    """Lose the catalog: the SQLite file, or the whole PostgreSQL database."""
    url = make_url(catalog_url)
    if url.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{url.database}{suffix}")
            if path.exists():
                path.unlink()
        return
    servers._admin_execute(catalog_url, f'DROP DATABASE "{url.database}" WITH (FORCE)')
    servers.create_database(catalog_url)
