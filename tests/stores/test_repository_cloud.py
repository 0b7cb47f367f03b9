"""Repositories whose store is S3 (moto) or GCS (emulator), end to end, beside the local store.

Every test runs on the three stores (`repo_store_url`); the S3 ones also count what went
over the wire through FaultProxy (no faults), to show existence checks and uploads are
batched: thousands of small files cost a pack's PUT and a handful of listings.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

import pytest
from backends import empty_bucket
from fault_proxy import FaultProxy

from cairn import Artifact, Repository
from cairn.engine.objects import read_index
from cairn.foundation.layout import OBJECTS, PACKS, digest_of_pack_key, namespace_prefix
from cairn.storage import RetryingStore


@pytest.fixture
def cloud_repo(repo_store_url, tmp_path, monkeypatch):
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_STORAGE_OPTIONS", "CAIRN_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    url, options = repo_store_url
    repo = Repository.open(
        catalog=f"sqlite:///{tmp_path}/catalog.db",
        store=url,
        storage_options=options,
        home=str(tmp_path / "home"),
    )
    yield repo
    repo.close()


@contextmanager
def _s3_repo_through_proxy(
    s3_endpoint, bucket, tmp_path
) -> Iterator[tuple[FaultProxy, Repository]]:
    """A repository on s3://bucket/repo whose every store request goes through a FaultProxy."""
    with FaultProxy(s3_endpoint.endpoint_url) as proxy:
        options = {**s3_endpoint.storage_options, "client_kwargs": {"endpoint_url": proxy.url}}
        with Repository.open(
            catalog=f"sqlite:///{tmp_path}/c.db",
            store=f"s3://{bucket}/repo",
            storage_options=options,
            home=str(tmp_path / "home"),
        ) as repo:
            yield proxy, repo


def _stored(repo: Repository, prefix: str = "") -> int:
    """How many objects the namespace at `prefix` holds: loose ones and those in packs,
    as the packs' own indexes list them."""
    loose = len(list(repo.store.list(prefix + OBJECTS)))
    packs = [o.key for o in repo.store.list(prefix + PACKS)]
    return loose + sum(len(read_index(digest_of_pack_key(k)[1], repo.store.get(k))) for k in packs)


def _tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_log_download_draft_diff_verify_gc(cloud_repo, tmp_path):
    repo = cloud_repo
    files = {f"d/{i:03d}.txt": f"file {i}\n".encode() for i in range(200)}
    files["big.bin"] = os.urandom(20 << 20)  # above the 8 MiB threshold: chunked
    _tree(tmp_path / "src", files)

    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
    assert v0.version == "v0" and v0.last_log.objects_sent > 200
    out = v0.download(tmp_path / "out0")
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    with v0.open("big.bin") as f:
        f.seek(12345)
        assert f.read(100) == files["big.bin"][12345:12445]

    # the same content again: no new version, nothing sent
    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
    assert again.version == "v0" and again.last_log.objects_sent == 0

    draft = v0.new_draft()
    draft.remove("d/000.txt")
    (tmp_path / "new.txt").write_text("new")
    draft.add_file(tmp_path / "new.txt", name="d/new.txt")
    v1 = repo.log_artifact(draft, project="p")
    assert v1.last_log.objects_sent == 1
    diff = repo.diff(v0.ref, v1.ref)
    assert diff.added == ("d/new.txt",) and diff.removed == ("d/000.txt",)

    assert repo.verify().ok
    v0.delete()
    report = repo.gc(grace=0)
    # d/000.txt ("file 0\n"): only v0 had it; it stays in its pack, which is mostly live
    assert (report.objects_deleted, report.dead_in_packs, report.dead_bytes_in_packs) == (0, 1, 7)
    assert "not freed yet: 1 object (7 bytes) that no version needs, inside packs" in str(report)
    assert repo.verify().ok
    out1 = v1.download(tmp_path / "out1")
    assert (out1 / "d/new.txt").read_text() == "new"
    assert (out1 / "big.bin").read_bytes() == files["big.bin"]


def test_corruption_in_the_store_is_found_by_verify_and_refused_by_download(cloud_repo, tmp_path):
    repo = cloud_repo
    (tmp_path / "a.txt").write_bytes(b"precious")
    v = repo.log_artifact(Artifact("ds").add_file(tmp_path / "a.txt"), project="p")
    [key] = [i.key for i in repo.store.list(namespace_prefix(v.namespace) + OBJECTS)]
    repo.store.put(key, b"rotten")
    report = repo.verify(v.ref)
    assert not report.ok and len(report.corrupt) == 1
    with pytest.raises(Exception, match="a.txt"):
        v.download(tmp_path / "out")


def test_private_and_public_projects_keep_their_bytes_apart(cloud_repo, tmp_path):
    """The same files in a public and a private project: two copies, in objects/ and
    projects/vision/; gc of the public version takes only the shared copy."""
    repo = cloud_repo
    files = {f"d/{i}.txt": f"file {i}\n".encode() for i in range(20)}
    _tree(tmp_path / "src", files)
    repo.create_project("pub", visibility="public")
    public = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="pub")
    private = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="vision")
    assert (public.namespace, private.namespace) == ("", "vision")
    assert private.last_log.objects_sent == 20
    assert (_stored(repo), _stored(repo, "projects/vision/")) == (20, 20)
    public.delete()
    report = repo.gc(grace=0)
    assert (report.objects_deleted, report.manifests_deleted, report.packs_deleted) == (20, 1, 1)
    assert _stored(repo) == 0 and list(repo.store.list("manifests/")) == []
    assert repo.verify().ok
    out = private.download(tmp_path / "out")
    assert all((out / rel).read_bytes() == data for rel, data in files.items())


def test_a_private_writer_on_s3_sends_every_request_inside_its_prefix(
    s3_endpoint, s3_bucket, tmp_path
):
    """Existence checks (listings, HEADs), uploads and reads of a private project name only
    repo/projects/vision/: whoever holds the shared copy stays unknown to it."""
    files = {f"f/{i:03d}.txt": f"small file {i}\n".encode() for i in range(100)}
    _tree(tmp_path / "src", files)
    with _s3_repo_through_proxy(s3_endpoint, s3_bucket, tmp_path) as (proxy, repo):
        repo.create_project("pub", visibility="public")
        repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="pub")
        proxy.clear()
        v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="vision")
        assert v.last_log.objects_sent == 100
        out = v.download(tmp_path / "out")
        assert (out / "f/099.txt").read_bytes() == files["f/099.txt"]
        paths = [unquote(r.path) for r in proxy.requests()]
        # the pack's PUT and a ranged GET of it at least
        assert sum("/packs/" in p for p in paths) >= 2
        outside = [p for p in paths if "repo/projects/vision/" not in p]
        # but the store log's marker that lets `cairn recover` find the project's log
        # (under log/, which every cairn user may write: docs/ACCESS.md)
        assert [p.split("/repo/", 1)[1] for p in outside] == ["log/namespaces/vision"]
        assert (_stored(repo), _stored(repo, "projects/vision/")) == (100, 100)
    listed = s3_endpoint.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    keys = [o["Key"] for o in listed]
    assert sum(k.startswith("repo/projects/vision/packs/") for k in keys) == 1
    assert sum(k.startswith("repo/packs/") for k in keys) == 1


def test_remote_stores_retry_by_default(cloud_repo):
    if "://" in cloud_repo.store.url:
        assert isinstance(cloud_repo.store, RetryingStore)


def test_concurrency_reaches_the_store(repo_store_url, tmp_path):
    url, options = repo_store_url
    with Repository.open(
        catalog=f"sqlite:///{tmp_path}/c.db",
        store=url,
        storage_options=options,
        home=str(tmp_path / "home"),
        concurrency=5,
    ) as repo:
        assert repo.store.concurrency == 5


@pytest.fixture
def big_s3_bucket(s3_endpoint, s3_bucket):
    yield s3_bucket
    empty_bucket(s3_endpoint.client(), s3_bucket)


def test_many_small_files_on_s3_go_in_one_pack_with_few_other_requests(
    s3_endpoint, big_s3_bucket, tmp_path
):
    s3_bucket = big_s3_bucket
    files = {f"f/{i:05d}.txt": f"small file {i}\n".encode() for i in range(3000)}
    _tree(tmp_path / "src", files)
    with _s3_repo_through_proxy(s3_endpoint, s3_bucket, tmp_path) as (proxy, repo):
        proxy.clear()
        v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
        assert v.last_log.objects_sent == 3000
        puts = proxy.requests("PUT", "/packs/")
        # the store log: its first record, and the markers of a log's start and namespace
        logged = [r for r in proxy.requests() if "/repo/log/" in r.path]
        assert len(logged) <= 3, [(r.method, r.path) for r in logged]
        others = [r for r in proxy.requests() if r not in puts and r not in logged]
        assert len(puts) == 1 and proxy.requests("PUT", "/objects/") == []
        # existence: one listing of objects/ per batch (a new store has no objects/xx/
        # folders to look into); then the manifest's HEAD and PUT
        assert len(others) <= 10, [(r.method, r.path) for r in others]

        # a second log of the same files (new statcache): the catalog's pack index
        # answers for them all, the store is not asked
        repo.statcache.close()
        os.remove(tmp_path / "home" / "statcache.db")
        from cairn.engine.statcache import StatCache

        repo.statcache = StatCache(str(tmp_path / "home" / "statcache.db"), "x")
        proxy.clear()
        again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
        assert again.version == v.version
        assert proxy.requests("PUT") == []
        assert len(proxy.requests()) <= 2, [(r.method, r.path) for r in proxy.requests()]

        # downloading 3,000 files: a few ranged GETs of the pack, overlapped
        proxy.clear()
        out = v.download(tmp_path / "out")
        gets = proxy.requests("GET", "/packs/")
        assert 1 <= len(gets) <= 3 and proxy.requests("GET", "/objects/") == []
        assert all((out / rel).read_bytes() == data for rel, data in files.items())


def test_a_get_of_many_small_files_on_s3_reads_pack_ranges_not_files(
    s3_endpoint, big_s3_bucket, tmp_path
):
    """Several packs' worth of small files: a cold get is a few ranged GETs per pack
    (no object GET, no request per file), a warm get none at all."""
    rnd = random.Random(7)
    files = {f"big/{i:03d}.bin": rnd.randbytes(200 << 10) for i in range(120)}  # ~23 MiB
    files.update({f"tiny/{i % 30:02d}/{i:05d}.txt": f"tiny {i}\n".encode() for i in range(4000)})
    _tree(tmp_path / "src", files)
    with _s3_repo_through_proxy(s3_endpoint, big_s3_bucket, tmp_path) as (proxy, repo):
        v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
        packs = {r.path for r in proxy.requests("PUT", "/packs/")}
        assert len(packs) >= 2, "the files should fill more than one pack"

        proxy.clear()
        out = v.download(tmp_path / "cold")
        gets = proxy.requests("GET", "/packs/")
        assert proxy.requests("GET", "/objects/") == []
        # one ranged read per span of a pack (16 MiB at most, 1,024 small objects at most)
        assert len({r.path for r in gets}) == len(packs)
        assert len(gets) <= 4 * len(packs) + 4000 // 1024 + 1, len(gets)
        assert all((out / rel).read_bytes() == data for rel, data in files.items())

        proxy.clear()
        again = v.download(tmp_path / "warm")  # the cache holds every file
        assert proxy.requests("GET", "/packs/") == [] and proxy.requests("GET", "/objects/") == []
        assert all((again / rel).read_bytes() == data for rel, data in files.items())
