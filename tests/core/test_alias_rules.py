"""Aliases and timestamps as users see them: `latest` is cairn's alone, saved edits stay
saved, and every view agrees on which version is the newest. On both catalogs."""

from __future__ import annotations

import json

import fsspec
import pytest
from typer.testing import CliRunner

from cairn import Artifact, InvalidName, NotFound
from cairn import lineage as graphs
from cairn.cli import app

from .conftest import write

LATEST_IS_CAIRNS = "'latest' is cairn's own alias"


def _art(tmp_path, content: str, name: str = "ds") -> Artifact:
    return Artifact(name).add_file(
        write(tmp_path / "in" / content / "f.txt", content), name="f.txt"
    )


def test_an_alias_removed_after_an_earlier_save_stays_removed(repo, tmp_path):
    v = repo.log_artifact(_art(tmp_path, "a"), project="p")
    v.aliases.append("best")
    v.save()
    v.aliases.remove("best")  # the same handle, edited again after its first save
    v.save()
    assert repo.artifact("p/ds:v0").aliases == ["latest"]
    with pytest.raises(NotFound):
        repo.artifact("p/ds:best")
    v.aliases.append("gold")
    v.aliases.remove("gold")
    v.save()  # an edit undone before saving changes nothing
    assert repo.artifact("p/ds:v0").aliases == ["latest"]


def test_latest_is_refused_wherever_a_user_would_set_it(repo, tmp_path, catalog_url, home):
    with pytest.raises(InvalidName, match=LATEST_IS_CAIRNS):
        repo.log_artifact(_art(tmp_path, "a"), project="p", aliases=["latest"])
    v0 = repo.log_artifact(_art(tmp_path, "a"), project="p")
    repo.log_artifact(_art(tmp_path, "b"), project="p")
    v0 = repo.artifact("p/ds:v0")
    v0.aliases.append("latest")
    with pytest.raises(InvalidName, match=LATEST_IS_CAIRNS):
        v0.save()
    v1 = repo.artifact("p/ds:v1")
    v1.aliases = ["best"]  # leaving latest out does not take it away
    assert v1.save().aliases == ["best", "latest"]

    base = ["--catalog", catalog_url, "--home", str(home)]
    runner = CliRunner()
    for args in (
        ["put", str(tmp_path / "in"), "-n", "p/ds", "-a", "latest"],
        ["alias", "add", "p/ds:v0", "latest"],
        ["alias", "rm", "p/ds:v1", "latest"],
    ):
        r = runner.invoke(app, [*base, *args])
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert (
            r.stderr.startswith(f"cairn: error: {LATEST_IS_CAIRNS}")
            and len(r.stderr.splitlines()) == 1
        )
    assert repo.artifact("p/ds:latest").version == "v1"


def test_every_view_moves_latest_to_the_newest_version(repo, tmp_path, catalog_url, home):
    with repo.run(project="p", name="first") as run:
        run.log_artifact(_art(tmp_path, "a"))
    with repo.run(project="p", name="second") as run:
        run.use_artifact("ds:v0")
        run.upsert_artifact(_art(tmp_path, "b"), distributed_id="g1")
        run.finish_artifact(Artifact("ds"), distributed_id="g1")

    assert [(v.version, v.aliases) for v in repo.versions("p/ds")] == [
        ("v1", ["latest"]),
        ("v0", []),
    ]
    assert repo.artifact("p/ds:v0").aliases == []
    base = ["--catalog", catalog_url, "--home", str(home)]
    shown = CliRunner().invoke(app, [*base, "show", "p/ds:v0", "--json"])
    assert json.loads(shown.stdout)["aliases"] == []
    listed = CliRunner().invoke(app, [*base, "ls", "p/ds"]).stdout.splitlines()
    assert [line.split()[0] for line in listed if "latest" in line] == ["v1"]
    for ref in ("p/ds:v0", "p/ds:v1"):
        graph = graphs.build(repo.artifact(ref))
        details = {n.label: n.detail for n in graph.nodes.values() if n.kind == "version"}
        assert details == {"p/ds:v0": "dataset", "p/ds:v1": "dataset · latest"}
    fs = fsspec.filesystem("cairn", repository=repo, skip_instance_cache=True)
    assert fs.info("p/ds/f.txt")["version"] == "p/ds:v1"
    assert fs.cat_file("p/ds:latest/f.txt") == b"b"


def test_a_version_is_committed_no_earlier_than_it_was_created(repo, tmp_path):
    v0 = repo.log_artifact(_art(tmp_path, "a"), project="p")
    repo.upsert_artifact(_art(tmp_path, "b"), project="p", distributed_id="g", writer_id="w")
    v1 = repo.finish_artifact(Artifact("ds"), project="p", distributed_id="g")
    for v in (v0, v1):
        assert v.committed_at >= v.created_at, v.ref
    assert v0.committed_at == v0.created_at  # one reading of one clock


def test_a_writer_with_a_fast_clock_cannot_make_a_version_commit_before_it_began(
    fresh_postgres_url, home, tmp_path, monkeypatch
):
    """On PostgreSQL the server's clock stamps both: an upserting machine an hour ahead
    and a finishing machine on time still give committed_at >= created_at."""
    import sys
    from datetime import timedelta

    from cairn import Repository
    from cairn.catalog import sql

    real = sql.now
    # every module of cairn that reads this machine's clock, as it imported it
    readers = [
        m
        for n, m in sys.modules.items()
        if n.startswith("cairn") and getattr(m, "now", None) is real
    ]
    with Repository.open(catalog=fresh_postgres_url, home=str(home)) as repo:
        with monkeypatch.context() as ahead:
            for module in readers:
                ahead.setattr(module, "now", lambda: real() + timedelta(hours=1))
            repo.upsert_artifact(
                _art(tmp_path, "b"), project="p", distributed_id="g", writer_id="w"
            )
        v = repo.finish_artifact(Artifact("ds"), project="p", distributed_id="g")
        assert v.created_at <= v.committed_at
