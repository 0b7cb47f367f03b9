"""The cairn:// fsspec filesystem: any file of any version, read without downloading it."""

from __future__ import annotations

import json
import os
import re
import time

import fsspec
import pandas as pd
import pytest
from fault_proxy import FaultProxy

from cairn import Artifact, Repository
from cairn.fs import CairnFileSystem

SMALL_CHUNKS = {"threshold": 65536, "avg": 16384, "min": 4096, "max": 65536}


@pytest.fixture
def env_repo(repo_store_url, tmp_path, monkeypatch):
    """A repository on each store, named by CAIRN_* variables, with a small dataset logged."""
    url, options = repo_store_url
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAIRN_CATALOG", f"sqlite:///{tmp_path}/catalog.db")
    monkeypatch.setenv("CAIRN_STORE", url)
    if options:
        monkeypatch.setenv("CAIRN_STORAGE_OPTIONS", json.dumps(options))
    else:
        monkeypatch.delenv("CAIRN_STORAGE_OPTIONS", raising=False)
    monkeypatch.delenv("CAIRN_PROJECT", raising=False)
    src = tmp_path / "src"
    (src / "images" / "cats").mkdir(parents=True)
    pd.DataFrame({"x": range(100), "y": [f"r{i}" for i in range(100)]}).to_parquet(
        src / "part-0.parquet"
    )
    (src / "images" / "cats" / "1.png").write_bytes(b"png-1")
    (src / "images" / "2.png").write_bytes(b"png-2")
    repo = Repository.open()
    v = repo.log_artifact(Artifact("mnist").add_dir(src), project="demo", aliases=["production"])
    yield repo, v
    repo.close()


def test_pandas_reads_a_file_of_a_version(env_repo):
    _, v = env_repo
    for ref in ("demo/mnist:v0", "demo/mnist:production", "demo/mnist", "demo/mnist:latest"):
        df = pd.read_parquet(f"cairn://{ref}/part-0.parquet")
        assert list(df.columns) == ["x", "y"] and len(df) == 100


def test_listing_and_info(env_repo):
    _, v = env_repo
    fs = fsspec.filesystem("cairn")
    assert isinstance(fs, CairnFileSystem)
    assert fs.ls("cairn://", detail=False) == ["demo"]
    assert fs.ls("demo", detail=False) == ["demo/mnist"]
    assert fs.ls("demo/mnist:v0", detail=False) == [
        "demo/mnist:v0/images",
        "demo/mnist:v0/part-0.parquet",
    ]
    assert fs.ls("demo/mnist:v0/images", detail=False) == [
        "demo/mnist:v0/images/2.png",
        "demo/mnist:v0/images/cats",
    ]
    info = fs.info("cairn://demo/mnist:v0/images/cats/1.png")
    assert info["type"] == "file" and info["size"] == 5 and info["version"] == "demo/mnist:v0"
    assert fs.info("demo/mnist:v0/images")["type"] == "directory"
    assert fs.isdir("demo/mnist:v0/images/cats") and fs.isfile("demo/mnist:v0/images/2.png")
    assert not fs.exists("demo/mnist:v0/nope") and not fs.exists("demo/nope:v0/x")
    assert not fs.exists("nope")
    assert sorted(fs.find("demo/mnist:production/images")) == [
        "demo/mnist:production/images/2.png",
        "demo/mnist:production/images/cats/1.png",
    ]
    assert fs.glob("demo/mnist:v0/images/*.png") == ["demo/mnist:v0/images/2.png"]
    with pytest.raises(FileNotFoundError):
        fs.ls("demo/mnist:v9")


def test_cat_and_open_with_ranges(env_repo):
    fs = fsspec.filesystem("cairn")
    assert fs.cat_file("demo/mnist:v0/images/2.png") == b"png-2"
    assert fs.cat_file("demo/mnist:v0/images/2.png", start=1, end=3) == b"ng"
    assert fs.cat_file("demo/mnist:v0/images/2.png", start=-2) == b"-2"
    with fsspec.open("cairn://demo/mnist:v0/images/cats/1.png", "rb") as f:
        f.seek(4)
        assert f.read() == b"1"
    with pytest.raises(PermissionError, match="immutable"):
        fs.open("demo/mnist:v0/new.txt", "wb")
    with pytest.raises(PermissionError, match="immutable"):
        fs.rm("demo/mnist:v0/images/2.png")
    assert fs.cat_ranges(
        ["demo/mnist:v0/images/2.png", "demo/mnist:v0/images/cats/1.png", "demo/mnist:v0/x"],
        [0, 2, 0],
        [3, 5, 1],
    )[:2] == [b"png", b"g-1"]
    assert isinstance(fs.cat_ranges(["demo/mnist:v0/x"], [0], [1])[0], FileNotFoundError)


def test_info_has_times_and_checksums_from_the_digest(env_repo):
    _, v = env_repo
    fs = fsspec.filesystem("cairn")
    info = fs.info("demo/mnist:v0/part-0.parquet")
    entry = v.entry("part-0.parquet")
    assert info["size"] == entry.size and info["digest"] == info["ukey"] == entry.digest
    assert info["created"] == info["mtime"] == v.created_at.timestamp()
    assert info["modified"] == fs.modified("demo/mnist:v0/part-0.parquet") == v.created_at
    assert fs.created("demo/mnist:production/part-0.parquet") == v.created_at
    assert fs.ukey("demo/mnist:v0/part-0.parquet") == entry.digest
    # fsspec's checksum() is an int: info's agrees with it, for every ref of the file
    assert isinstance(info["checksum"], int)
    assert info["checksum"] == fs.checksum("demo/mnist:v0/part-0.parquet")
    assert fs.checksum("demo/mnist:v0/part-0.parquet") == fs.checksum(
        "demo/mnist:latest/part-0.parquet"
    )
    with pytest.raises(FileNotFoundError, match="demo/mnist:v7"):
        fs.info("demo/mnist:v7/part-0.parquet")
    with pytest.raises(FileNotFoundError, match="nope"):
        fs.open("demo/nope/part-0.parquet")


@pytest.fixture
def local_fs(tmp_path):
    """A filesystem on a local repository holding demo/mnist:v0 (a.txt, sub/b.txt)."""
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_bytes(b"a")
    (tmp_path / "src" / "sub" / "b.txt").write_bytes(b"b")
    with Repository.open(
        catalog=f"sqlite:///{tmp_path}/c.db", store=str(tmp_path / "store"), home=str(tmp_path)
    ) as repo:
        repo.log_artifact(Artifact("mnist").add_dir(tmp_path / "src"), project="demo")
        yield CairnFileSystem(repository=repo, skip_instance_cache=True)


@pytest.mark.parametrize(
    "path, named",
    [
        ("nope", "cairn://nope: no such project"),
        ("nope/mnist/a.txt", "project 'nope' not found"),
        ("demo/nope", "cairn://demo/nope: artifact demo/nope not found"),
        ("demo/nope/a.txt", "cairn://demo/nope: artifact demo/nope not found"),
        ("demo/mnist:v7/a.txt", "cairn://demo/mnist:v7: version demo/mnist:v7 not found"),
        ("demo/mnist:v0/nope.txt", "cairn://demo/mnist:v0/nope.txt: demo/mnist:v0 has no"),
        ("demo/mnist/sub/nope.txt", "cairn://demo/mnist/sub/nope.txt: demo/mnist:v0 has no"),
    ],
)
@pytest.mark.parametrize("call", ["open", "cat_file", "info"])
def test_unknown_refs_are_file_not_found_naming_them(local_fs, path, named, call):
    with pytest.raises(FileNotFoundError, match=re.escape(named)):
        getattr(local_fs, call)(f"cairn://{path}")


def test_known_projects_collections_and_folders_are_not_files(local_fs):
    """As on other filesystems, opening a folder is an IsADirectoryError."""
    for path in ("", "demo", "demo/mnist", "demo/mnist:v0", "demo/mnist/sub"):
        with pytest.raises(IsADirectoryError):
            local_fs.open(path)
        with pytest.raises(IsADirectoryError):
            local_fs.cat_file(path)
        assert local_fs.info(path)["type"] == "directory"


def test_aliases_are_followed_as_they_move(env_repo, tmp_path):
    repo, v = env_repo
    fs = fsspec.filesystem("cairn", ref_ttl=0)  # every call asks the catalog
    cached = fsspec.filesystem("cairn")  # asks again at most every second (ref_ttl)
    assert fs.cat_file("demo/mnist:latest/images/2.png") == b"png-2"
    assert cached.cat_file("demo/mnist:latest/images/2.png") == b"png-2"
    draft = v.new_draft()
    (tmp_path / "2.png").write_bytes(b"png-2, v1")
    draft.remove("images/2.png")
    draft.add_file(tmp_path / "2.png", name="images/2.png")
    repo.log_artifact(draft, project="demo")
    assert fs.cat_file("demo/mnist:latest/images/2.png") == b"png-2, v1"
    assert fs.cat_file("demo/mnist:v0/images/2.png") == b"png-2"
    time.sleep(1.05)
    assert cached.cat_file("demo/mnist:latest/images/2.png") == b"png-2, v1"


def test_repository_from_filesystem_options(tmp_path, monkeypatch):
    for var in ("CAIRN_HOME", "CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_STORAGE_OPTIONS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "elsewhere"))
    home = tmp_path / "home"
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with Repository.open(home=str(home), project="demo") as repo:
        repo.log_artifact(Artifact("tbl").add_file(tmp_path / "t.csv"), project="demo")
    opts = {"home": str(home), "project": "demo"}
    df = pd.read_csv("cairn://tbl:v0/t.csv", storage_options=opts)  # default project
    assert df.to_dict("list") == {"a": [1], "b": [2]}
    fs = fsspec.filesystem("cairn", **opts)
    assert fs.ls("demo/tbl:v0", detail=False) == ["demo/tbl:v0/t.csv"]


def test_reading_one_file_does_not_download_the_version(s3_endpoint, s3_bucket, tmp_path):
    """Only the objects holding the bytes asked for are fetched; nothing enters the cache."""
    s3_endpoint.client().put_object(
        Bucket=s3_bucket,
        Key="repo/config.json",
        Body=json.dumps({"format": 1, "chunking": SMALL_CHUNKS}).encode(),
    )
    big = os.urandom(4 << 20)  # ~256 chunks of ~16 KiB
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(big)
    (tmp_path / "src" / "other.bin").write_bytes(os.urandom(1 << 20))
    with FaultProxy(s3_endpoint.endpoint_url) as proxy:
        options = {**s3_endpoint.storage_options, "client_kwargs": {"endpoint_url": proxy.url}}
        home = tmp_path / "home"
        with Repository.open(
            catalog=f"sqlite:///{tmp_path}/c.db",
            store=f"s3://{s3_bucket}/repo",
            storage_options=options,
            home=str(home),
        ) as repo:
            v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")
            fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
            proxy.clear()
            assert (
                fs.cat_file(f"{v.ref}/big.bin", start=2_000_000, end=2_000_100)
                == big[2_000_000:2_000_100]
            )
            gets = proxy.requests("GET", "/objects/")
            assert 1 <= len(gets) <= 2  # the chunk(s) covering the range, of ~256
            assert not (home / "cache" / "files").exists() or not any(
                (home / "cache" / "files").rglob("*")
            )
