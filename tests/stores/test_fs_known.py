"""What a cairn:// filesystem keeps per instance (cairn.fs.known): each file's info and
range reader, worked out once per version, so an engine's many calls per file make no
catalog query and no store request once the bytes are cached; and the staleness rule
for paths without a pinned version (docs/FS.md "What a filesystem keeps")."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cairn import Artifact, Repository
from cairn.engine.objects import Objects
from cairn.fs import CairnFileSystem
from cairn.fs.known import Known


@pytest.fixture
def repo(repo_store_url, tmp_path):
    """A repository on each store with `p/ds:v0` (a.bin, b/c.txt) logged."""
    url, options = repo_store_url
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(300_000))
    (src / "b" / "c.txt").write_text("version 0")
    repo = Repository.open(
        catalog=f"sqlite:///{tmp_path}/c.db",
        store=url,
        storage_options=options,
        home=str(tmp_path / "home"),
    )
    repo.log_artifact(Artifact("ds").add_dir(src), project="p")
    yield repo
    repo.close()


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: Any, names: list[str]) -> Counter[str]:
    """Count calls of `obj`'s methods (a class's: of all its instances), still calling
    the real ones."""
    calls: Counter[str] = Counter()
    for name in names:
        real = getattr(obj, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(obj, name, counted)
    return calls


def new_version(repo: Repository, tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    """Log `p/ds:vN+1` with b/c.txt holding `text` (another size than before)."""
    (tmp_path / "c.txt").write_text(text)
    draft = repo.artifact("p/ds").new_draft()
    draft.remove("b/c.txt")
    draft.add_file(tmp_path / "c.txt", name="b/c.txt")
    repo.log_artifact(draft, project="p")


def test_an_engines_calls_per_file_ask_the_catalog_and_store_nothing_once_warm(repo, monkeypatch):
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True, ref_ttl=3600)
    data = fs.cat_file("p/ds/a.bin")  # warms the object cache
    catalog = count_calls(monkeypatch, repo, ["artifact", "projects", "collections"])
    store = count_calls(monkeypatch, Objects, ["get_many", "locate"])
    ranged = count_calls(monkeypatch, type(repo.store), ["get_range"])
    for _ in range(20):  # what DuckDB does per file and query: info, size, modified, open
        info = fs.info("cairn://p/ds/a.bin")
        assert info["size"] == 300_000 and info["type"] == "file"
        info["size"] = -1  # a caller changing its copy changes nothing kept
        assert fs.size("p/ds/a.bin") == 300_000
        assert fs.modified("p/ds/a.bin") == repo.artifact("p/ds:v0").created_at
        with fs.open("p/ds/a.bin") as f:
            f.seek(-100, 2)
            assert f.read() == data[-100:]
            f.seek(1000)
            assert f.read(70_000) == data[1000:71_000]
        assert fs.cat_file("p/ds/a.bin", 5, 10) == data[5:10]
    assert fs.ls("p/ds/b", detail=False) == ["p/ds/b/c.txt"]
    assert catalog == Counter({"artifact": 20})  # only the test's own `modified` check
    assert not store and not ranged


def test_a_path_without_a_pinned_version_sees_a_new_latest_in_a_new_instance_or_after_invalidate(
    repo, tmp_path
):
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True, ref_ttl=3600)
    pinned = "p/ds:v0/b/c.txt"
    assert fs.cat_file("p/ds/b/c.txt") == b"version 0"
    assert fs.info("p/ds/b/c.txt")["size"] == 9
    new_version(repo, tmp_path, "version one")
    # within ref_ttl this instance still answers for v0, consistently
    assert fs.info("p/ds/b/c.txt")["version"] == "p/ds:v0"
    assert fs.cat_file("p/ds/b/c.txt") == b"version 0"
    # a new instance sees v1 at once
    other = CairnFileSystem(repository=repo, skip_instance_cache=True, ref_ttl=3600)
    assert other.info("p/ds/b/c.txt")["size"] == 11
    assert other.cat_file("p/ds/b/c.txt") == b"version one"
    # and so does this one after invalidate_cache(): info, size, open and reads agree
    fs.invalidate_cache()
    info = fs.info("p/ds/b/c.txt")
    assert (info["size"], info["version"]) == (11, "p/ds:v1")
    assert fs.size("cairn://p/ds:latest/b/c.txt") == 11
    with fs.open("p/ds/b/c.txt") as f:
        assert f.read() == b"version one"
    # pinned versions never change: what was kept for them still holds
    assert fs.info(pinned)["size"] == 9 and fs.cat_file(pinned) == b"version 0"


def test_an_alias_moves_after_ref_ttl_and_a_write_through_the_filesystem_is_seen_at_once(
    repo, tmp_path
):
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True, ref_ttl=0)
    assert fs.info("p/ds/b/c.txt")["size"] == 9
    new_version(repo, tmp_path, "version one")
    assert fs.info("p/ds/b/c.txt")["size"] == 11  # ref_ttl=0: asked on every call
    cached = CairnFileSystem(repository=repo, skip_instance_cache=True, ref_ttl=3600)
    assert cached.cat_file("p/ds/b/c.txt") == b"version one"
    cached.pipe("p/ds/b/c.txt", b"written through cairn://")  # commits p/ds:v2
    assert cached.info("p/ds/b/c.txt")["version"] == "p/ds:v2"
    assert cached.cat_file("p/ds/b/c.txt") == b"written through cairn://"


def test_threads_finding_an_alias_expired_together_ask_the_catalog_once(repo, monkeypatch):
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True, ref_ttl=3600)
    assert fs.info("p/ds/a.bin")["size"] == 300_000
    fs.invalidate_cache()  # as when ref_ttl runs out in the middle of a query
    real, asked = repo.artifact, []

    def slow(ref: str) -> Any:  # a loaded catalog: every thread arrives while it answers
        asked.append(ref)
        time.sleep(0.3)
        return real(ref)

    monkeypatch.setattr(repo, "artifact", slow)
    barrier = threading.Barrier(8)

    def engine_thread(_: int) -> int:
        barrier.wait()
        return int(fs.info("cairn://p/ds/a.bin")["size"])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(engine_thread, range(8))) == [300_000] * 8
    assert asked == ["p/ds"]


def test_what_is_kept_is_bounded():
    known = Known(max_items=3)
    made: list[int] = []

    def make(i: int) -> dict[str, int]:
        made.append(i)
        return {"n": i}

    for i in [0, 1, 2, 0, 1, 2]:
        assert known.info(i, lambda i=i: make(i)) == {"n": i}  # type: ignore[misc]
    assert made == [0, 1, 2]  # each worked out once
    known.info(3, lambda: make(3))  # past the bound: the others are forgotten
    known.info(0, lambda: make(0))
    assert made == [0, 1, 2, 3, 0]
    assert known.reader("r", lambda: "reader") == known.reader("r", lambda: "other")
