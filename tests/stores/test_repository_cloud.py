"""Repositories whose store is S3 (moto) or GCS (emulator), end to end, beside the local store.

Every test runs on the three stores (`repo_store_url`); the S3 ones also count what went
over the wire through FaultProxy (no faults), to show existence checks and uploads are
batched: thousands of small files cost one PUT each and a handful of listings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

import pytest
from backends import empty_bucket
from fault_proxy import FaultProxy

from cairn import Artifact, Repository
from cairn.layout import OBJECTS, namespace_prefix
from cairn.stores import RetryingStore


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
    report = repo.gc()
    assert report.objects_deleted == 1  # d/000.txt: only v0 had it
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
    assert len(list(repo.store.list(OBJECTS))) == 20
    assert len(list(repo.store.list("projects/vision/objects/"))) == 20
    public.delete()
    report = repo.gc()
    assert (report.objects_deleted, report.manifests_deleted) == (20, 1)
    assert list(repo.store.list(OBJECTS)) == [] and list(repo.store.list("manifests/")) == []
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
        assert len(paths) >= 200  # 100 PUTs and 100 GETs at least
        outside = [p for p in paths if "repo/projects/vision/" not in p]
        assert outside == []
    listed = s3_endpoint.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    keys = [o["Key"] for o in listed]
    assert sum(k.startswith("repo/projects/vision/objects/") for k in keys) == 100
    assert sum(k.startswith("repo/objects/") for k in keys) == 100


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


def test_many_small_files_on_s3_cost_one_put_each_and_few_other_requests(
    s3_endpoint, big_s3_bucket, tmp_path
):
    s3_bucket = big_s3_bucket
    files = {f"f/{i:05d}.txt": f"small file {i}\n".encode() for i in range(3000)}
    _tree(tmp_path / "src", files)
    with _s3_repo_through_proxy(s3_endpoint, s3_bucket, tmp_path) as (proxy, repo):
        proxy.clear()
        v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
        puts = proxy.requests("PUT", "/objects/")
        others = [r for r in proxy.requests() if r not in puts]
        assert len(puts) == 3000
        # existence: one listing of objects/ per batch of 4,096 files (a new store has
        # no objects/xx/ folders to look into); then the manifest's HEAD and PUT
        assert len(others) <= 10, [(r.method, r.path) for r in others]

        # a second log of the same files (new statcache): existence checks only,
        # one listing per objects/xx/ folder instead of a HEAD per file
        repo._statcache.close()
        os.remove(tmp_path / "home" / "statcache.db")
        from cairn.statcache import StatCache

        repo._statcache = StatCache(str(tmp_path / "home" / "statcache.db"), "x")
        proxy.clear()
        again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
        assert again.version == v.version
        assert proxy.requests("PUT", "/objects/") == []
        heads, gets = proxy.requests("HEAD"), proxy.requests("GET")
        # a HEAD only for the odd folder holding fewer than 4 of the keys
        assert len(heads) <= 20, len(heads)
        assert len(gets) <= 257 + 2, len(gets)

        # downloading 3,000 files: one GET each, overlapped
        proxy.clear()
        out = v.download(tmp_path / "out")
        assert len(proxy.requests("GET", "/objects/")) == 3000
        assert (out / "f/02999.txt").read_bytes() == files["f/02999.txt"]
