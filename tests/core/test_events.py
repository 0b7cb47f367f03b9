"""Events (docs/EVENTS.md): every path that changes a version announces it, after the
commit, with the same names and payload; a failing listener never undoes a write."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest

from cairn import Artifact, CairnError, Event, Repository
from cairn.engine.changes import Changes, NoChanges, track
from cairn.engine.events import ALIAS_MOVED, ALIAS_REMOVED, NAMES, load_plugins

from .conftest import write


class Recorder:
    """Every event a repository announces, as (event, ref, alias, previous)."""

    def __init__(self, repo: Repository):
        self.events: list[Event] = []
        self.unsubscribe = repo.on("*", self.events.append)

    def take(self) -> list[tuple[str, str, str | None, str | None]]:
        out = [(e.event, e.ref, e.alias, e.previous) for e in self.events]
        self.events.clear()
        return out


def _art(tmp_path, name: str, content: str, *, file: str = "a.txt") -> Artifact:
    return Artifact(name, type="model").add_file(write(tmp_path / name / file, content))


def test_log_artifact_announces_the_commit_and_every_alias_it_moves(repo, tmp_path):
    rec = Recorder(repo)
    v0 = repo.log_artifact(_art(tmp_path, "m", "one"), project="demo", aliases=["production"])
    assert rec.take() == [
        ("cairn.version.committed", "demo/m:v0", None, None),
        ("cairn.alias.moved", "demo/m:v0", "latest", None),
        ("cairn.alias.moved", "demo/m:v0", "production", None),
    ]
    # identical content (known to the stat cache): no commit, only the new alias
    repo.log_artifact(_art(tmp_path, "m", "one"), project="demo", aliases=["best"])
    assert rec.take() == [("cairn.alias.moved", "demo/m:v0", "best", None)]
    # a draft of v0 with one more file: a new version, `latest` moves from v0
    draft = v0.new_draft().add_file(write(tmp_path / "extra.txt", "two"))
    repo.log_artifact(draft, project="demo", aliases=["production"])
    assert rec.take() == [
        ("cairn.version.committed", "demo/m:v1", None, None),
        ("cairn.alias.moved", "demo/m:v1", "latest", "demo/m:v0"),
        ("cairn.alias.moved", "demo/m:v1", "production", "demo/m:v0"),
    ]


def test_the_payload_names_the_version_its_digest_aliases_and_run(repo, tmp_path):
    seen: list[Event] = []
    repo.on("cairn.version.committed", seen.append)
    before = datetime.now(timezone.utc)
    with repo.run(project="demo", name="train") as run:
        v = run.log_artifact(
            Artifact("m", type="model", metadata={"acc": 0.9}).add_file(
                write(tmp_path / "w.bin", "weights")
            ),
            aliases=["candidate"],
        )
    (ev,) = seen
    assert (ev.ref, ev.project, ev.name, ev.type, ev.version) == (
        "demo/m:v0",
        "demo",
        "m",
        "model",
        "v0",
    )
    assert (ev.version_id, ev.digest, ev.run) == (v.id, v.digest, run.id)
    assert ev.aliases == ("candidate", "latest") and ev.collection == "demo/m"
    assert before <= ev.occurred_at <= datetime.now(timezone.utc)
    doc = ev.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["metadata"] == {"acc": 0.9} and doc["aliases"] == ["candidate", "latest"]
    assert doc["occurred_at"] == ev.occurred_at.isoformat()
    with pytest.raises(AttributeError):
        ev.ref = "x"  # type: ignore[misc]


def test_a_distributed_commit_is_announced_once_by_finish(repo, tmp_path):
    rec = Recorder(repo)
    for w in range(2):
        part = Artifact("preds", type="dataset").add_file(
            write(tmp_path / f"p{w}.csv", f"{w}"), name=f"p{w}.csv"
        )
        repo.upsert_artifact(part, project="demo", distributed_id="g1", writer_id=str(w))
    assert rec.take() == []  # a pending version is nobody's news
    with repo.run(project="demo", name="finish") as run:
        run.finish_artifact(
            Artifact("preds", type="dataset"), distributed_id="g1", aliases=["production"]
        )
    assert rec.take() == [
        ("cairn.version.committed", "demo/preds:v0", None, None),
        ("cairn.alias.moved", "demo/preds:v0", "latest", None),
        ("cairn.alias.moved", "demo/preds:v0", "production", None),
    ]
    assert rec.events == []


def test_alias_edits_metadata_edits_and_deletes_are_announced(repo, tmp_path):
    v0 = repo.log_artifact(_art(tmp_path, "m", "one"), project="demo")
    v1 = repo.log_artifact(_art(tmp_path, "m", "two"), project="demo")
    rec = Recorder(repo)

    v0.aliases.append("production")
    v0.save()
    v1.aliases.append("production")  # moves it from v0
    v1.save()
    assert rec.take() == [
        ("cairn.alias.moved", "demo/m:v0", "production", None),
        ("cairn.alias.moved", "demo/m:v1", "production", "demo/m:v0"),
    ]
    v1.aliases.remove("production")
    v1.save()
    assert rec.take() == [("cairn.alias.removed", "demo/m:v1", "production", None)]

    v1.metadata["acc"] = 0.93
    v1.save()
    v1.description = "better"
    v1.save()
    v1.save()  # nothing changed: nothing announced
    edits = [(e.event, e.ref, e.changed, dict(e.metadata)) for e in rec.events]
    assert edits == [
        ("cairn.metadata.changed", "demo/m:v1", ("metadata",), {"acc": 0.93}),
        ("cairn.metadata.changed", "demo/m:v1", ("description",), {"acc": 0.93}),
    ]
    rec.take()

    v1.aliases.append("best")
    v1.save()
    rec.take()
    v1.delete(delete_aliases=True)  # its aliases go, `latest` falls back to v0
    assert rec.take() == [
        ("cairn.version.deleted", "demo/m:v1", None, None),
        ("cairn.alias.removed", "demo/m:v1", "best", None),
        ("cairn.alias.moved", "demo/m:v0", "latest", "demo/m:v1"),
    ]
    assert repo.artifact("demo/m:v0").aliases == ["latest"]


def test_prune_announces_each_deleted_version(repo, tmp_path):
    for i in range(4):
        repo.log_artifact(_art(tmp_path, "m", f"content {i}"), project="demo")
    rec = Recorder(repo)
    assert repo.prune("demo/m", keep=2, dry_run=True) and rec.take() == []
    repo.prune("demo/m", keep=2)
    assert rec.take() == [
        ("cairn.version.deleted", "demo/m:v1", None, None),
        ("cairn.version.deleted", "demo/m:v0", None, None),
    ]


def test_retain_announces_each_version_it_deletes(repo, tmp_path):
    for i in range(4):
        repo.log_artifact(_art(tmp_path, "m", f"content {i}"), project="demo")
    repo.set_retention("demo", keep_last=2)
    rec = Recorder(repo)
    assert repo.retain(dry_run=True).deleted and rec.take() == []
    repo.retain()
    assert rec.take() == [
        ("cairn.version.deleted", "demo/m:v0", None, None),
        ("cairn.version.deleted", "demo/m:v1", None, None),
    ]


def test_a_failing_listener_is_logged_and_the_write_stands(repo, tmp_path, caplog):
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("webhook down")

    repo.on("cairn.version.committed", broken)
    repo.on("cairn.version.committed", lambda e: seen.append(e.ref))
    with caplog.at_level(logging.ERROR, logger="cairn.events"):
        v = repo.log_artifact(_art(tmp_path, "m", "one"), project="demo")
    assert v.version == "v0" and repo.artifact("demo/m:latest") == v
    assert seen == ["demo/m:v0"]  # the next listener still ran
    (record,) = caplog.records
    assert "failed on demo/m:v0" in record.getMessage()
    assert "webhook down" in record.exc_text


def test_listeners_hear_only_after_the_commit_is_visible(repo, tmp_path):
    """A listener reads the catalog from its own connection: the change is there."""
    seen: list[list[str]] = []
    repo.on(ALIAS_MOVED, lambda e: seen.append(repo.artifact(e.ref).aliases))
    repo.log_artifact(_art(tmp_path, "m", "one"), project="demo", aliases=["production"])
    assert seen == [["latest", "production"]] * 2


def test_unsubscribing_stops_the_callbacks(repo, tmp_path):
    rec = Recorder(repo)
    removed: list[Event] = []
    handle = repo.on(ALIAS_REMOVED, removed.append)
    rec.unsubscribe()
    rec.unsubscribe()  # idempotent
    handle.close()
    v = repo.log_artifact(_art(tmp_path, "m", "one"), project="demo", aliases=["x"])
    v.aliases.remove("x")
    v.save()
    assert rec.events == [] and removed == []


def test_an_unknown_event_or_a_non_callable_is_refused(repo):
    with pytest.raises(CairnError, match="unknown event 'cairn.version.created'"):
        repo.on("cairn.version.created", print)
    with pytest.raises(CairnError, match="not callable"):
        repo.on("cairn.alias.moved", "http://hook")  # type: ignore[arg-type]
    assert NAMES == (
        "cairn.version.committed",
        "cairn.version.deleted",
        "cairn.metadata.changed",
        "cairn.alias.removed",
        "cairn.alias.moved",
    )


def test_plugins_can_be_switched_off(home, monkeypatch):
    monkeypatch.setenv("CAIRN_EVENT_PLUGINS", "none")
    with Repository.open(home=str(home)) as repo:
        assert load_plugins(repo) == []


def test_a_write_nobody_listens_to_gathers_nothing(home):
    with Repository.open(home=str(home), plugins=False) as repo:
        assert isinstance(track(repo.listeners), NoChanges)
        stop = repo.on("cairn.version.deleted", print)
        assert type(track(repo.listeners)) is Changes
        stop()
        assert isinstance(track(repo.listeners), NoChanges)
