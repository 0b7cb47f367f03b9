"""The store log (docs/FORMAT.md "Store log"): a lost catalog comes back from the store
alone, identical; `verify --catalog` lists every difference; compaction keeps the log
short and loses nothing. On SQLite and PostgreSQL catalogs, local and S3 (moto) stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import cairn
from cairn import Artifact, CairnError, Repository, RetentionPolicy
from cairn.engine.storelog import read
from cairn.engine.storelog.format import STARTED_KEY

from .storelog_helpers import (
    catalog_differences,
    delete_catalog,
    open_repo,
    populate,
    snapshot,
)


def test_recover_rebuilds_the_lost_catalog_identical_then_logging_continues(
    home, catalog_url, store, tmp_path
):
    url, options = store
    repo = open_repo(home, catalog_url, url, options)
    populate(repo, tmp_path / "data")
    before = snapshot(repo)
    assert any(k.startswith("usage:") for k in before) and any(
        k.startswith("alias:demo/ds:staging") for k in before
    )
    # the compared catalog holds the policies (the removed one, demo/model, not)
    assert {k for k in before if k.startswith("policy:")} == {
        "policy:demo",
        "policy:demo/ds",
        "policy:secret",
    }
    repo.close()

    delete_catalog(catalog_url)
    lost = open_repo(home, catalog_url, url, options)
    with pytest.raises(CairnError, match="cairn recover"):  # an empty catalog may not write
        lost.log_artifact(Artifact("x", type="t").add_dir(str(tmp_path / "data")), project="o")
    lost.close()
    report = cairn.recover(store=url, catalog=catalog_url, storage_options=options)
    assert report.versions == 6 and not report.reconciled, str(report)
    assert report.packed >= 20  # the pack index is rebuilt from the packs themselves

    repo = open_repo(home, catalog_url, url, options)
    assert catalog_differences(before, snapshot(repo)) == []
    assert repo.verify_catalog().ok
    # the bytes read back through the recovered catalog
    assert Path(repo.artifact("demo/ds:staging").get_path("a.txt")).read_text() == "content 3"
    assert Path(repo.artifact("secret/notes:kept").get_path("s.txt")).read_text() == "private bytes"
    repo.cache.cleanup(max_bytes=0)
    assert repo.verify().ok  # every object, packed ones included, read back
    assert repo.artifact("demo/model:best").logged_by().summary == {"acc": 0.93}
    # the policies came back as declared, and apply
    assert repo.retention("demo") == RetentionPolicy(
        keep_last=2, keep_aliased=True, keep_used=timedelta(days=30)
    )
    assert repo.retention("demo/ds") == RetentionPolicy(
        keep_younger=timedelta(weeks=2), keep_aliased=("best",), protect=("audit",)
    )
    assert repo.retention("demo/model") is None
    assert repo.protected_aliases("demo/ds") == ("audit",)
    assert repo.protected_aliases("secret/notes") == ()
    # logging continues: the next number follows the recovered ones (v0 deleted, kept spent)
    (tmp_path / "data" / "a.txt").write_text("after recovery")
    art = Artifact("ds", type="dataset").add_dir(str(tmp_path / "data"))
    assert repo.log_artifact(art, project="demo").version == "v4"
    assert repo.verify_catalog().ok
    repo.close()


def test_recover_from_the_command_line_into_another_catalog(home, catalog_url, tmp_path):
    repo = Repository.open(catalog=catalog_url, home=str(home))
    populate(repo, tmp_path / "data")
    before = snapshot(repo)
    repo.close()
    target = f"sqlite:///{tmp_path}/rebuilt.db"
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_CATALOG": catalog_url}
    cmd = [sys.executable, "-m", "cairn", "recover", "--into", target]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("recovered 2 projects, 3 collections, 6 versions")
    rebuilt = Repository.open(catalog=target, home=str(home))
    after = snapshot(rebuilt)
    rebuilt.close()
    if catalog_url.startswith("postgresql"):
        # SQLite records no role: the project creators and grantors are the only difference
        assert all(
            "created_by" in d or "granted_by" in d or "members" in d
            for d in catalog_differences(before, after)
        )
    else:
        assert catalog_differences(before, after) == []


def test_recover_refuses_a_catalog_of_another_repository(home, catalog_url, tmp_path):
    repo = Repository.open(catalog=catalog_url, home=str(home))
    populate(repo, tmp_path / "data")
    repo.close()
    other = Repository.open(
        catalog=f"sqlite:///{tmp_path}/other.db", store=str(tmp_path / "other"), home=str(home)
    )
    other.log_artifact(Artifact("x", type="t").add_dir(str(tmp_path / "data")), project="o")
    other.close()
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_CATALOG": catalog_url}
    cmd = [sys.executable, "-m", "cairn", "recover", "--into", f"sqlite:///{tmp_path}/other.db"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("cairn: error: catalog sqlite:///")
    assert "is not empty and belongs to repository " in done.stderr and done.stderr.count("\n") == 1


def test_verify_catalog_lists_every_difference_and_reconcile_applies_the_log(
    home, catalog_url, tmp_path
):
    repo = Repository.open(catalog=catalog_url, home=str(home))
    populate(repo, tmp_path / "data")
    # change the catalog behind the log's back
    with repo.catalog.write(record=False) as conn:
        conn.exec_driver_sql("UPDATE versions SET description = 'tampered' WHERE idx = 1")
        conn.exec_driver_sql("DELETE FROM aliases WHERE name = 'best'")
        conn.exec_driver_sql("UPDATE runs SET summary = '{}' WHERE name = 'train'")
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_CATALOG": catalog_url}
    check = [sys.executable, "-m", "cairn", "verify", "--catalog"]
    done = subprocess.run(check, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == "3 difference(s) between the catalog and the store log:"
    assert any(x.startswith('version demo/ds:v1: description is "tampered"') for x in lines)
    assert "alias demo/model:best: in the store log, not in the catalog" in lines
    assert any(x.startswith("run ") and "summary" in x for x in lines)
    done = subprocess.run([*check, "--reconcile"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert (
        done.stdout.strip() == "catalog and store log agree; applied 3 change(s) from the store log"
    )
    assert repo.artifact("demo/ds:v1").description == "take 1"
    assert repo.artifact("demo/model:best").version == "v0"
    repo.close()


def test_verify_catalog_reports_a_policy_changed_behind_the_logs_back(home, catalog_url, tmp_path):
    from cairn.catalog import records
    from cairn.catalog import retention as retention_rows

    repo = Repository.open(catalog=catalog_url, home=str(home))
    populate(repo, tmp_path / "data")
    with repo.catalog.write(record=False) as conn:
        conn.exec_driver_sql(
            "UPDATE retention_policies SET keep_last = 99 WHERE collection_id IS NULL "
            "AND keep_last = 2"
        )
        conn.exec_driver_sql("DELETE FROM retention_policies WHERE collection_id IS NOT NULL")
        model = records.collection(conn, "demo", "model")
        retention_rows.put(conn, model.project_id, model.id, RetentionPolicy(keep_last=7))
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_CATALOG": catalog_url}
    check = [sys.executable, "-m", "cairn", "verify", "--catalog"]
    done = subprocess.run(check, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines() == [
        "3 difference(s) between the catalog and the store log:",
        "policy demo: keep_last is 99 in the catalog, 2 in the store log",
        "policy demo/ds: in the store log, not in the catalog",
        "policy demo/model: in the catalog, not in the store log",
    ]
    done = subprocess.run([*check, "--reconcile"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "applied 3 change(s)" in done.stdout
    assert repo.retention("demo") is not None and repo.retention("demo").keep_last == 2
    assert repo.retention("demo/ds") is not None
    assert repo.retention("demo/model") is None
    assert repo.verify_catalog().ok
    repo.close()


def test_compaction_folds_records_into_snapshots_and_loses_nothing(home, catalog_url, tmp_path):
    repo = Repository.open(catalog=catalog_url, home=str(home))
    populate(repo, tmp_path / "data")
    before = read(repo.store).state().rows()
    assert len(read(repo.store).records) > 10
    report = repo.compact_log()
    assert report.records > 10
    log = read(repo.store)
    assert log.records == [] and len(log.snapshots) == 2  # shared, and secret's own
    assert log.state().rows() == before
    # records written after the compaction are read on top of its snapshot
    repo.artifact("demo/ds:v1").delete()
    assert repo.verify_catalog().ok
    assert len(read(repo.store).records) == 1
    repo.close()


def test_compaction_never_deletes_a_record_its_snapshot_lacks(home, tmp_path, monkeypatch):
    """A record written while a compaction runs (after it listed the log) stays."""
    from cairn.engine.storelog import reader

    repo = Repository.open(home=str(home))
    populate(repo, tmp_path / "data")
    real_read = reader.read

    def read_then_write(store, namespace_list=None):
        log = real_read(store, namespace_list)
        if namespace_list == [""]:
            repo.artifact("demo/ds:v1").delete()  # a writer, between listing and deleting
        return log

    monkeypatch.setattr(reader, "read", read_then_write)
    repo.compact_log()
    monkeypatch.setattr(reader, "read", real_read)
    assert len(read(repo.store).records) == 1
    assert repo.verify_catalog().ok
    repo.close()


def test_a_private_projects_records_stay_in_its_namespace(home, tmp_path):
    repo = Repository.open(home=str(home))
    populate(repo, tmp_path / "data")
    shared = [i.key for i in repo.store.list("log/records/")]
    private = [i.key for i in repo.store.list("projects/secret/log/records/")]
    assert private and shared
    leaked = []
    for key in shared:
        for entry in json.loads(repo.store.get(key))["entries"]:
            if entry["project"] == "secret":
                leaked.append((entry["kind"], entry["value"]["visibility"]))
    # only what happened while the project was open is in the shared log
    assert leaked == [("project.visibility", "open")]
    repo.close()


def test_a_catalog_from_before_the_log_is_written_to_it_first(home, catalog_url, tmp_path):
    """Genesis: an older repository's versions, logged without a store log, come back."""
    repo = Repository.open(catalog=catalog_url, home=str(home))
    repo.catalog.journal = None  # as a cairn without the log wrote it
    populate(repo, tmp_path / "data")
    repo.close()
    assert not os.path.exists(home / "store" / STARTED_KEY)
    repo = Repository.open(catalog=catalog_url, home=str(home))
    (tmp_path / "data" / "new.txt").write_text("first write with the log")
    repo.log_artifact(
        Artifact("ds", type="dataset").add_dir(str(tmp_path / "data")), project="demo"
    )
    before = snapshot(repo)
    assert json.loads((home / "store" / STARTED_KEY).read_text())["genesis"] is True
    repo.close()
    delete_catalog(catalog_url)
    cairn.recover(store=str(home / "store"), catalog=catalog_url)
    repo = Repository.open(catalog=catalog_url, home=str(home))
    assert catalog_differences(before, snapshot(repo)) == []
    repo.close()


def test_recover_into_the_same_catalog_reconciles_and_a_bad_log_is_refused(home, tmp_path):
    repo = Repository.open(home=str(home))
    populate(repo, tmp_path / "data")
    assert repo.recover().reconciled
    key = next(i.key for i in repo.store.list("log/records/"))
    repo.store.put(key, b'{"format": 9}')
    with pytest.raises(CairnError, match="format 9; this cairn reads 1: upgrade cairn"):
        repo.verify_catalog()
    repo.close()


def _commit(n: int, digest: str) -> dict:
    return {
        "kind": "version.committed",
        "key": f"version:p/c:{n}",
        "project": "p",
        "value": {"version": n, "digest": digest, "state": "COMMITTED", "metadata": {}},
    }


def test_folding_is_last_writer_wins_and_order_free():
    from cairn.engine.storelog.state import State

    records = [
        (
            "t1",
            [
                _commit(0, "a"),
                {
                    "kind": "alias.set",
                    "key": "alias:p/c:prod",
                    "project": "p",
                    "value": {"version": 0},
                },
            ],
        ),
        (
            "t2",
            [
                {
                    **_commit(0, "a"),
                    "kind": "version.edited",
                    "value": {
                        "version": 0,
                        "digest": "a",
                        "state": "COMMITTED",
                        "metadata": {"k": 2},
                    },
                }
            ],
        ),
        (
            "t3",
            [
                {
                    "kind": "alias.removed",
                    "key": "alias:p/c:prod",
                    "project": "p",
                    "value": {"version": None},
                }
            ],
        ),
    ]
    forward, backward = State(), State()
    for at, entries in records:
        forward.apply(at, entries)
    for at, entries in reversed(records):
        backward.apply(at, entries)
    assert forward.rows() == backward.rows()
    rows = forward.rows()
    assert rows["version:p/c:0"]["metadata"] == {"k": 2}
    assert "alias:p/c:prod" not in rows and rows["alias:p/c:latest"] == {"version": 0}
    # a record applied twice, or a snapshot merged twice, changes nothing
    again = forward.copy()
    again.apply(*records[1])
    again.merge_state(forward)
    assert again.rows() == rows


def test_a_number_claimed_twice_goes_to_the_later_commit_and_the_other_moves():
    from cairn.engine.storelog.state import State

    state = State()
    state.apply("t1", [_commit(0, "a")])
    # killed before its commit: its record claims 1 with its own alias
    state.apply(
        "t2",
        [
            _commit(1, "orphan"),
            {"kind": "alias.set", "key": "alias:p/c:x", "project": "p", "value": {"version": 1}},
        ],
    )
    state.apply("t3", [_commit(1, "b")])  # the writer that committed 1
    rows = state.rows()
    assert rows["version:p/c:1"]["digest"] == "b"
    assert rows["version:p/c:2"]["digest"] == "orphan" and rows["version:p/c:2"]["version"] == 2
    assert rows["alias:p/c:x"] == {"version": 2}  # its alias followed it
    assert state.next_index("p/c") == 3
