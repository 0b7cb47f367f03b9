"""Retention beside writers: `retain` and `gc` in a loop while 8 writers log, use and
draft, on SQLite and PostgreSQL; and a `cairn retain` process SIGKILLed halfway.

What "loses nothing needed" means here: every log, use, download and draft of the
writers succeeds; a version a writer drafts from is still there when it logs the draft,
which holds its parent's bytes; everything left verifies; and the policy did delete
versions meanwhile (the loop was not idle).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.pool import NullPool

from cairn import Artifact, Repository
from cairn.catalog.schema import aliases, collections, versions

WRITERS = 8
ROUNDS = 4


def _art(name: str, files: dict[str, str]) -> Artifact:
    art = Artifact(name, "dataset")
    for path, text in files.items():
        with art.new_file(path) as f:
            f.write(text)
    return art


def _writer(catalog: str, store: str, home: Path, i: int, errors: list[BaseException]) -> None:
    try:
        with Repository.open(catalog=catalog, store=store, home=str(home)) as repo:
            for r in range(ROUNDS):
                repo.log_artifact(_art("shared", {f"w{i}.txt": f"{i}/{r}"}), project="p")
                mine = repo.log_artifact(_art(f"w{i}", {"base.txt": f"base {i}/{r}"}), project="p")
                with repo.run(project="p", name=f"reader-{i}") as run:
                    used = run.use_artifact("p/shared:latest")
                    folder = used.download(root=home / f"use-{r}")
                    assert any(folder.iterdir())
                draft = mine.new_draft()  # holds `mine` until the draft is logged
                # a newer version: `mine` is no longer the newest, retention may want it
                repo.log_artifact(_art(f"w{i}", {"base.txt": f"newer {i}/{r}"}), project="p")
                time.sleep(0.05)
                assert repo.artifact(mine.ref).state == "COMMITTED"  # kept while drafted
                with draft.new_file("extra.txt") as f:
                    f.write(f"extra {i}/{r}")
                logged = repo.log_artifact(draft, project="p")
                assert logged.get_path("base.txt").read_text() == f"base {i}/{r}"
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_retain_and_gc_beside_eight_writers_lose_nothing_needed(home, catalog_url, tmp_path):
    store = str(tmp_path / "store")
    with Repository.open(catalog=catalog_url, store=store, home=str(home)) as repo:
        repo.log_artifact(_art("shared", {"seed.txt": "seed"}), project="p")
        repo.set_retention("p", keep_last=1)
        errors: list[BaseException] = []
        writers = [
            threading.Thread(
                target=_writer, args=(catalog_url, store, tmp_path / f"w{i}", i, errors)
            )
            for i in range(WRITERS)
        ]
        for t in writers:
            t.start()
        deleted = sweeps = 0
        while any(t.is_alive() for t in writers) or sweeps == 0:
            deleted += len(repo.retain().deleted)
            repo.gc(grace=0)
            sweeps += 1
        for t in writers:
            t.join()

        assert errors == [], errors
        assert deleted > 0, "retain deleted nothing while the writers ran"
        final = repo.retain()
        repo.gc(grace=0)
        report = repo.verify()
        assert report.ok, str(report)
        # keep_last=1, and what runs used in the last minutes (the writers' reads)
        for name in ["shared", *(f"w{i}" for i in range(WRITERS))]:
            left = repo.versions(f"p/{name}")
            assert {v.ref for v in left[1:]} == {r for r in final.in_use if f"/{name}:" in r}
            assert "latest" in left[0].aliases
            assert left[0].download(root=tmp_path / "final" / name).exists()
        assert all("/shared:" in r for r in final.in_use)
        w0 = repo.artifact("p/w0:latest")
        assert w0.get_path("extra.txt").read_text() == f"extra 0/{ROUNDS - 1}"


# -- a retention run killed halfway ------------------------------------------------------------

COLLECTIONS = 100


def _deleted(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(versions.c.state == "DELETED")) or 0)


def test_a_retention_run_killed_halfway_leaves_a_consistent_catalog(home, catalog_url):
    with Repository.open(catalog=catalog_url, home=str(home)) as repo:
        for c in range(COLLECTIONS):
            for v in range(3):
                repo.log_artifact(_art(f"c{c:03d}", {"a.txt": f"{c}/{v}"}), project="p")
        protected = repo.artifact("p/c000:v0")
        protected.aliases.append("production")
        protected.save()
        repo.set_retention("p", keep_last=1)
    probe = create_engine(catalog_url, poolclass=NullPool)
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_CATALOG": catalog_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn", "retain"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        seen = _deleted(probe)
        if seen >= 10:  # a good way in, far from done (2 per collection)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    halfway = _deleted(probe)
    probe.dispose()
    assert 10 <= halfway < 2 * COLLECTIONS - 1, halfway  # killed halfway indeed

    with Repository.open(catalog=catalog_url, home=str(home)) as repo:
        _consistent(repo)
        with repo.catalog.read() as conn:
            per = dict(
                conn.execute(
                    select(collections.c.name, func.count())
                    .join(versions, versions.c.collection_id == collections.c.id)
                    .where(versions.c.state == "DELETED")
                    .group_by(collections.c.name)
                ).all()
            )
        # a collection is done whole or not at all: one transaction each
        assert all(n == (1 if name == "c000" else 2) for name, n in per.items()), per
        report = repo.retain()  # running it again finishes the work
        assert len(report.deleted) == 2 * COLLECTIONS - 1 - halfway
        _consistent(repo)
        assert [v.version for v in repo.versions("p/c000")] == ["v2", "v0"]  # production
        assert all(len(repo.versions(f"p/c{c:03d}")) == 1 for c in range(1, COLLECTIONS))
        repo.gc(grace=0)
        assert repo.verify().ok
    if catalog_url.startswith("sqlite"):
        with sqlite3.connect(catalog_url.split("///", 1)[1]) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _consistent(repo: Repository) -> None:
    """`latest` names each collection's newest committed version, and no alias names a
    deleted one."""
    with repo.catalog.read() as conn:
        newest = dict(
            conn.execute(
                select(versions.c.collection_id, func.max(versions.c.idx))
                .where(versions.c.state == "COMMITTED")
                .group_by(versions.c.collection_id)
            ).all()
        )
        rows = conn.execute(
            select(aliases.c.collection_id, aliases.c.name, versions.c.idx, versions.c.state).join(
                versions, versions.c.id == aliases.c.version_id
            )
        ).all()
    assert all(state == "COMMITTED" for *_, state in rows), rows
    latest = {cid: idx for cid, name, idx, _ in rows if name == "latest"}
    assert latest == newest
