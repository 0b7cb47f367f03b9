"""Distributed versions: upsert parts from many writers, finish once (invariant 7)."""

from __future__ import annotations

import pytest

from cairn import Artifact, CairnError, Conflict, Finalized, NotFound

from .conftest import write


def _part(tmp_path, name: str, content: bytes, path: str | None = None) -> Artifact:
    f = write(tmp_path / "src" / name, content)
    return Artifact("preds", type="dataset").add_file(f, name=path or name)


def test_invariant_7_writers_assemble_one_version_and_finish_commits_it(repo, tmp_path):
    for w in range(3):
        repo.upsert_artifact(
            _part(tmp_path, f"part-{w}.csv", b"x" * (w + 1)),
            project="p",
            distributed_id="run-1",
            writer_id=str(w),
        )
    pending = repo.versions("p/preds")
    assert [(v.state, v.version) for v in pending] == [("PENDING", "pending")]
    with pytest.raises(NotFound):
        repo.artifact("p/preds:latest")
    v = repo.finish_artifact(
        Artifact("preds", type="dataset", metadata={"rows": 3}),
        project="p",
        distributed_id="run-1",
        aliases=["candidate"],
    )
    assert v.version == "v0" and v.state == "COMMITTED"
    assert [e.path for e in v.files()] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert v.metadata == {"rows": 3}
    assert set(v.aliases) == {"latest", "candidate"}
    with pytest.raises(Finalized, match="already finished"):
        repo.upsert_artifact(
            _part(tmp_path, "late.csv", b"late"), project="p", distributed_id="run-1", writer_id="9"
        )
    # a retried finish step gets the version it committed; one with new files is refused
    again = repo.finish_artifact(
        Artifact("preds", type="dataset"), project="p", distributed_id="run-1"
    )
    assert again.id == v.id
    assert repo.artifact("p/preds@run-1").id == v.id
    with pytest.raises(Finalized):
        repo.finish_artifact(
            _part(tmp_path, "more.csv", b"more"), project="p", distributed_id="run-1"
        )


def test_invariant_7_retried_writer_replaces_its_own_part(repo, tmp_path):
    kw = {"project": "p", "distributed_id": "d", "writer_id": "3"}
    repo.upsert_artifact(_part(tmp_path, "a.csv", b"first try"), **kw)
    repo.upsert_artifact(_part(tmp_path, "b.csv", b"second try"), **kw)
    v = repo.finish_artifact(Artifact("preds", type="dataset"), project="p", distributed_id="d")
    assert [e.path for e in v.files()] == ["b.csv"]
    assert v.get_path("b.csv").read_bytes() == b"second try"


def test_invariant_7_two_writers_one_path_different_content_is_a_conflict(repo, tmp_path):
    repo.upsert_artifact(
        _part(tmp_path, "x1", b"one", path="same.csv"),
        project="p",
        distributed_id="d",
        writer_id="a",
    )
    with pytest.raises(Conflict, match="same.csv"):
        repo.upsert_artifact(
            _part(tmp_path, "x2", b"two", path="same.csv"),
            project="p",
            distributed_id="d",
            writer_id="b",
        )
    # identical content from another writer is fine
    repo.upsert_artifact(
        _part(tmp_path, "x3", b"one", path="same.csv"),
        project="p",
        distributed_id="d",
        writer_id="c",
    )
    v = repo.finish_artifact(Artifact("preds", type="dataset"), project="p", distributed_id="d")
    assert [e.path for e in v.files()] == ["same.csv"]


def test_finish_may_add_files_of_its_own(repo, tmp_path):
    repo.upsert_artifact(_part(tmp_path, "a", b"a"), project="p", distributed_id="d", writer_id="0")
    final = Artifact("preds", type="dataset")
    with final.new_file("_SUCCESS") as f:
        f.write("")
    v = repo.finish_artifact(final, project="p", distributed_id="d")
    assert [e.path for e in v.files()] == ["_SUCCESS", "a"]


def test_finish_with_no_parts_is_a_clear_error(repo, tmp_path):
    with pytest.raises(CairnError, match="no writer upserted"):
        repo.finish_artifact(Artifact("preds", type="dataset"), project="p", distributed_id="d")
    # the collection exists but this distributed id has no parts
    repo.upsert_artifact(_part(tmp_path, "a", b"a"), project="p", distributed_id="d", writer_id="0")
    with pytest.raises(CairnError, match="no writer upserted"):
        repo.finish_artifact(Artifact("preds", type="dataset"), project="p", distributed_id="other")


def test_pending_version_can_be_abandoned_and_its_parts_are_protected_until_then(repo, tmp_path):
    repo.upsert_artifact(
        _part(tmp_path, "a", b"pending bytes"), project="p", distributed_id="d", writer_id="0"
    )
    assert repo.gc(grace=0).objects_deleted == 0  # pending parts are live
    (pending,) = repo.versions("p/preds")
    pending.delete()
    assert repo.gc(grace=0).objects_deleted == 1
    # the distributed id is free for a new attempt
    repo.upsert_artifact(_part(tmp_path, "b", b"b"), project="p", distributed_id="d", writer_id="0")
    v = repo.finish_artifact(Artifact("preds", type="dataset"), project="p", distributed_id="d")
    assert [e.path for e in v.files()] == ["b"]


def test_run_upserts_default_to_the_group_and_record_contributors(repo, tmp_path):
    runs = []
    for w in range(2):
        with repo.run(project="p", name=f"shard-{w}", group="g1") as run:
            run.upsert_artifact(_part(tmp_path, f"s{w}", bytes([w])), writer_id=str(w))
            runs.append(run)
    with repo.run(project="p", name="commit", group="g1") as closer:
        v = closer.finish_artifact(Artifact("preds", type="dataset"))
    assert v.logged_by() == closer
    assert {r.name for r in v.contributors()} == {"shard-0", "shard-1"}
    assert closer.logged_artifacts() == [v]


def test_finish_identical_to_existing_version_returns_it(repo, tmp_path):
    for did in ("d1", "d2"):
        repo.upsert_artifact(
            _part(tmp_path, "a", b"same"), project="p", distributed_id=did, writer_id="0"
        )
        v = repo.finish_artifact(Artifact("preds", type="dataset"), project="p", distributed_id=did)
        assert v.version == "v0"
    assert [x.version for x in repo.versions("p/preds")] == ["v0"]
    # the second id stands for the version its content matched
    assert repo.artifact("p/preds@d2").version == "v0"
    assert repo.finish_artifact(Artifact("preds"), project="p", distributed_id="d2").version == "v0"


def test_pending_version_is_named_by_its_distributed_id_in_the_api_and_the_cli(
    repo, tmp_path, catalog_url, home
):
    from typer.testing import CliRunner

    from cairn.cli import app

    did = "manual__2026-11-23T08:00:00+00:00"
    repo.upsert_artifact(_part(tmp_path, "a", b"a"), project="p", distributed_id=did, writer_id="0")
    pending = repo.artifact(f"p/preds@{did}")
    assert (pending.state, pending.ref) == ("PENDING", f"p/preds@{did}")
    cli = CliRunner()
    opts = ["--catalog", catalog_url, "--home", str(home)]
    listed = cli.invoke(app, [*opts, "ls", "p/preds"])
    assert listed.exit_code == 0 and "PENDING" in listed.output
    shown = cli.invoke(app, [*opts, "show", f"p/preds@{did}", "--json"])
    assert shown.exit_code == 0 and '"PENDING"' in shown.output
    removed = cli.invoke(app, [*opts, "rm", f"p/preds@{did}"])
    assert removed.exit_code == 0, removed.output
    with pytest.raises(NotFound):
        repo.artifact(f"p/preds@{did}")


def test_retried_finish_of_the_same_run_returns_its_version_and_upsert_reports_stats(
    repo, tmp_path
):
    with repo.run(project="p", name="writer", group="g") as w:
        part = w.upsert_artifact(_part(tmp_path, "a", b"abc"), writer_id="0")
    assert part.last_log.bytes_sent == 3
    closer = repo.run(project="p", name="closer", group="g", run_id="closer-1")
    extra = _part(tmp_path, "SUCCESS", b"")
    v = closer.finish_artifact(extra)
    retry = repo.run(project="p", name="closer", group="g", run_id="closer-1")
    assert retry.finish_artifact(_part(tmp_path, "SUCCESS", b"")).id == v.id
    other = repo.run(project="p", name="someone else", group="g")
    with pytest.raises(Finalized):
        other.finish_artifact(_part(tmp_path, "SUCCESS", b""))
