"""Crashes around the store log: a writer SIGKILLed after its record is in the store but
before its catalog commit, and `recover` SIGKILLed midway. `verify --catalog --reconcile`
and `recover` then bring back everything, on SQLite and PostgreSQL catalogs, local and S3
stores.

Each victim is a real child process that SIGKILLs itself at one precise point (polling
from outside cannot hit the window between a store put and a commit), as
test_crash_matrix.py does; the store, the catalog and the kill are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cairn import Artifact

from .storelog_helpers import (
    catalog_differences,
    delete_catalog,
    open_repo,
    populate,
    snapshot,
)

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    cfg = json.loads(sys.argv[1])
    from cairn import Artifact, Repository
    from cairn.catalog import restore
    from cairn.engine.storelog import writer

    if cfg["mode"] == "log":
        flush = writer.StoreLog.flush
        def flush_then_die(self, conn, entries):
            flush(self, conn, entries)  # the record is durable in the store...
            if any(e["kind"] == "version.committed" for e in entries):
                os.kill(os.getpid(), signal.SIGKILL)  # ...and the catalog never commits
        writer.StoreLog.flush = flush_then_die
    else:
        put = restore.Restorer.put
        calls = [0]
        def put_then_die(self, key, item):
            calls[0] += 1
            if calls[0] == cfg["on_call"]:
                os.kill(os.getpid(), signal.SIGKILL)
            return put(self, key, item)
        restore.Restorer.put = put_then_die
    repo = Repository.open(catalog=cfg["catalog"], store=cfg["store"],
                           storage_options=cfg["options"], home=cfg["home"])
    if cfg["mode"] == "log":
        repo.log_artifact(Artifact("ds", type="dataset").add_dir(cfg["data"]),
                          project="demo", aliases=["fresh"])
    else:
        repo.recover()
    print("survived")
    """
)


def _die(**cfg) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr[-2000:])


def _cli(home, catalog_url, url, options, *args):
    env = {
        **os.environ,
        "CAIRN_HOME": str(home),
        "CAIRN_CATALOG": catalog_url,
        "CAIRN_STORE": url,
        "CAIRN_STORAGE_OPTIONS": json.dumps(options or {}),
    }
    cmd = [sys.executable, "-m", "cairn", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def test_sigkill_between_record_and_commit_is_reconciled_without_loss(
    home, catalog_url, store, tmp_path
):
    url, options = store
    repo = open_repo(home, catalog_url, url, options)
    populate(repo, tmp_path / "data")
    repo.close()
    data = tmp_path / "new"
    data.mkdir()
    (data / "n.txt").write_text("logged by a writer that was killed")
    cfg = dict(catalog=catalog_url, store=url, options=options, home=str(home), data=str(data))
    _die(mode="log", **cfg)

    repo = open_repo(home, catalog_url, url, options)
    assert [v.version for v in repo.versions("demo/ds")] == ["v3", "v2", "v1"]  # not visible
    check = _cli(home, catalog_url, url, options, "verify", "--catalog")
    assert check.returncode == 1
    assert "version demo/ds:v4: in the store log, not in the catalog" in check.stdout
    assert "alias demo/ds:fresh: in the store log, not in the catalog" in check.stdout
    fixed = _cli(home, catalog_url, url, options, "verify", "--catalog", "--reconcile")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    v = repo.artifact("demo/ds:fresh")
    assert v.version == "v4" and repo.artifact("demo/ds:latest").version == "v4"
    assert Path(v.get_path("n.txt")).read_text() == "logged by a writer that was killed"
    (data / "n.txt").write_text("next")
    art = Artifact("ds", type="dataset").add_dir(str(data))
    assert repo.log_artifact(art, project="demo").version == "v5"
    assert repo.verify_catalog().ok
    repo.close()


def test_a_number_taken_after_the_crash_keeps_both_versions(home, catalog_url, tmp_path):
    """The killed writer's record claims v4; another writer commits v4 before anyone
    reconciles. The committed one keeps v4, the killed one's comes back as v5, the same
    whether the catalog is reconciled or rebuilt from scratch."""
    url = str(home / "store")
    repo = open_repo(home, catalog_url, url, None)
    populate(repo, tmp_path / "data")
    data = tmp_path / "new"
    data.mkdir()
    (data / "n.txt").write_text("killed writer")
    cfg = dict(catalog=catalog_url, store=url, options=None, home=str(home), data=str(data))
    _die(mode="log", **cfg)
    (data / "n.txt").write_text("second writer")
    assert (
        repo.log_artifact(Artifact("ds", type="dataset").add_dir(str(data)), project="demo").version
        == "v4"
    )

    rebuilt_url = f"sqlite:///{tmp_path}/rebuilt.db"
    repo.recover(into=rebuilt_url)
    report = repo.verify_catalog(reconcile=True)
    assert report.ok and report.reconciled >= 2, str(report)
    assert Path(repo.artifact("demo/ds:v4").get_path("n.txt")).read_text() == "second writer"
    killed = repo.artifact("demo/ds:fresh")
    assert killed.version == "v5" and Path(killed.get_path("n.txt")).read_text() == "killed writer"
    assert repo.artifact("demo/ds:latest").version == "v5"
    rebuilt = open_repo(home, rebuilt_url, url, None)
    diffs = catalog_differences(snapshot(repo), snapshot(rebuilt))
    if catalog_url.startswith("postgresql"):  # SQLite records no database roles
        diffs = [d for d in diffs if not ("created_by" in d or "members" in d)]
    assert diffs == []
    rebuilt.close()
    repo.close()


def test_sigkill_during_recover_leaves_nothing_half_done(home, catalog_url, store, tmp_path):
    url, options = store
    repo = open_repo(home, catalog_url, url, options)
    populate(repo, tmp_path / "data")
    before = snapshot(repo)
    repo.close()
    delete_catalog(catalog_url)
    cfg = dict(catalog=catalog_url, store=url, options=options, home=str(home), data="")
    _die(mode="recover", on_call=8, **cfg)

    repo = open_repo(home, catalog_url, url, options)
    assert snapshot(repo) == {}  # one transaction: nothing of it was committed
    repo.close()
    done = _cli(home, catalog_url, url, options, "recover")
    assert done.returncode == 0, done.stderr
    repo = open_repo(home, catalog_url, url, options)
    assert catalog_differences(before, snapshot(repo)) == []
    assert repo.verify_catalog().ok
    repo.close()
