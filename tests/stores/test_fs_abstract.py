"""fsspec's own conformance suite (`fsspec.tests.abstract`) run against cairn://.

The suite's fixture hooks (`fs`, `fs_path`, `fs_join`, `supports_empty_directories`)
point it at a folder inside a collection: `suite/data/<test>`. Every write it makes
(`touch`, `makedirs`, `pipe`, `put`, `cp`, `rm`) commits a version of `suite/data`, so
the suite also exercises the write path end to end. The copy, put, pipe and open tests
run on a local store and on S3 (moto); the get tests, which only read cairn://, run on
the local, S3 and GCS (emulator) stores.

Deviations from a plain filesystem, each a decision tested here rather than skipped:

- Empty folders exist (manifests hold folder entries), so `supports_empty_directories`
  stays True and the suite checks them like on a local disk.
- `fsspec.tests.abstract.mv` holds no suite class (only local-disk tests), so `mv` is
  covered by tests/core/test_fs_write.py and `test_mv_is_one_version` below.
- Projects and collections are not folders one can make or remove: `makedirs` of one is
  a no-op, so the suite's paths start inside a collection (the `fs_path` fixture).
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections.abc import Iterator

import pytest
import servers
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

from cairn import Repository
from cairn.fs import CairnFileSystem


@contextlib.contextmanager
def _repo(request, root, kind: str) -> Iterator[Repository]:
    """One repository per suite class (opening one migrates a new catalog: seconds), on
    a bucket of its own; every test works in a folder of its own (`fs_path`)."""
    with contextlib.ExitStack() as stack:
        if kind == "local":
            url, options = str(root / "store"), None
        elif kind == "s3":
            s3 = request.getfixturevalue("s3_endpoint")
            url = f"s3://{stack.enter_context(servers.s3_bucket(s3))}/repo"
            options = s3.storage_options
        else:
            gcs = request.getfixturevalue("gcs_endpoint")
            url = f"gs://{stack.enter_context(servers.gcs_bucket(gcs))}/repo"
            options = gcs.storage_options
        repo = Repository.open(
            catalog=f"sqlite:///{root}/catalog.db",
            store=url,
            storage_options=options,
            home=str(root / "home"),
        )
        yield repo
        repo.close()


class CairnFixtures(AbstractFixtures):
    store_kind = "local"

    @pytest.fixture(scope="class")
    @classmethod
    def cairn_repo(cls, request, tmp_path_factory):
        with _repo(request, tmp_path_factory.mktemp("cairn"), cls.store_kind) as repo:
            yield repo

    @pytest.fixture
    def fs(self, cairn_repo):
        return CairnFileSystem(repository=cairn_repo, skip_instance_cache=True)

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self, request):
        # the test's name, without the glob characters of its parameters
        return f"suite/data/{re.sub(r'[^A-Za-z0-9_-]+', '_', request.node.name)}"

    @pytest.fixture
    def supports_empty_directories(self):
        return True


class TestLocalStore(
    CairnFixtures,
    AbstractCopyTests,
    AbstractGetTests,
    AbstractPutTests,
    AbstractPipeTests,
    AbstractOpenTests,
):
    store_kind = "local"

    def test_mv_is_one_version(self, fs, fs_path):
        fs.pipe({f"{fs_path}/a/1": b"1", f"{fs_path}/a/2": b"2"})
        before = len(fs.repository.versions("suite/data"))
        fs.mv(f"{fs_path}/a", f"{fs_path}/b", recursive=True)
        assert len(fs.repository.versions("suite/data")) == before + 1
        assert sorted(fs.find(fs_path)) == [f"{fs_path}/b/1", f"{fs_path}/b/2"]
        assert fs.cat(f"{fs_path}/b/2") == b"2"


class TestS3Store(
    CairnFixtures,
    AbstractCopyTests,
    AbstractGetTests,
    AbstractPutTests,
    AbstractPipeTests,
    AbstractOpenTests,
):
    store_kind = "s3"


class TestGCSStore(CairnFixtures, AbstractGetTests):
    store_kind = "gcs"
