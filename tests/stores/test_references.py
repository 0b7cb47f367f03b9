"""Reference entries (Artifact.add_reference) on S3 (moto), GCS (emulator), file:// and http://.

Each source: a single object and a prefix are recorded with their pins and never copied
into the store; reading fetches from the source; a changed source raises ReferenceChanged
(DESIGN invariant 9); checksum=False records the URI alone. The GCS emulator ignores
`generation=` on reads, so fetching an overwritten object's pinned version is tested on
moto's versioned buckets; on GCS the md5 check is what catches the change.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cairn import Artifact, CairnError, ReferenceChanged, Repository
from cairn.engine.references import check, check_all
from cairn.foundation.layout import OBJECTS, namespace_prefix

# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path, monkeypatch):
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_STORAGE_OPTIONS", "CAIRN_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    r = Repository.open(home=str(tmp_path / "home"))
    yield r
    r.close()


@pytest.fixture
def s3(s3_endpoint, s3_bucket, monkeypatch):
    """(boto3 client, bucket); s3:// references without options reach moto (env endpoint)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint.endpoint_url)
    return s3_endpoint.client(), s3_bucket


@pytest.fixture
def versioned_s3(s3):
    client, bucket = s3
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return client, bucket


@pytest.fixture
def gcs(gcs_endpoint, gcs_bucket):
    """(gcsfs filesystem, bucket); the fixture's STORAGE_EMULATOR_HOST points gcsfs at it."""
    return gcs_endpoint.filesystem(), gcs_bucket


class _Handler(SimpleHTTPRequestHandler):
    validators = True

    def log_message(self, *args: object) -> None:
        pass

    def send_header(self, keyword: str, value: str) -> None:
        if keyword == "Last-Modified" and not self.validators:
            return
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        path = self.translate_path(self.path)
        if self.validators and os.path.isfile(path):
            with open(path, "rb") as f:
                self.send_header("ETag", f'"{hashlib.md5(f.read()).hexdigest()}"')
        super().end_headers()


class _NoValidators(_Handler):
    validators = False


def _serve(root, handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=root))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def http_root(tmp_path):
    """(folder served, base URL) of a plain http.server on 127.0.0.1 sending ETags."""
    root = tmp_path / "www"
    root.mkdir()
    server = _serve(str(root), _Handler)
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _read(version, path: str) -> bytes:
    """A file of a version, streamed from wherever it lives."""
    with version.open(path) as f:
        return f.read()


def _stored_objects(repo) -> list[str]:
    """Object keys of project p (private: its own namespace)."""
    return [i.key for i in repo.store.list(namespace_prefix("p") + OBJECTS)]


# -- S3 ---------------------------------------------------------------------------------------


def test_s3_prefix_is_recorded_not_copied_and_read_from_the_source(repo, s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"a,b\n1,2\n")
    client.put_object(Bucket=bucket, Key="raw/sub/b.bin", Body=b"\x00" * 1000)
    client.put_object(Bucket=bucket, Key="rawish/not-me", Body=b"x")

    art = Artifact("raw").add_reference(f"s3://{bucket}/raw", name="data")
    v = repo.log_artifact(art, project="p")

    files = {e.path: e for e in v.files()}
    assert set(files) == {"data/a.csv", "data/sub/b.bin"}
    a = files["data/a.csv"]
    assert a.ref == f"s3://{bucket}/raw/a.csv"
    assert a.size == 8 and a.digest is None
    md5 = hashlib.md5(b"a,b\n1,2\n").hexdigest()
    assert a.pin["etag"] == f'"{md5}"'
    assert "version_id" not in a.pin  # the bucket keeps no versions
    assert _stored_objects(repo) == []  # nothing copied into the store

    assert _read(v, "data/a.csv") == b"a,b\n1,2\n"
    with v.open("data/sub/b.bin") as f:
        f.seek(10)
        assert f.read(5) == b"\x00" * 5
    assert check_all(v.files(), sources=repo.reference_sources) == {}


def test_s3_single_object_named_by_its_file_name_or_name(repo, s3):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="models/m.pt", Body=b"weights")
    art = Artifact("m", type="model").add_reference(f"s3://{bucket}/models/m.pt")
    art.add_reference(f"s3://{bucket}/models/m.pt", name="copy/renamed.pt")
    assert sorted(art.entries) == ["copy/renamed.pt", "m.pt"]


def test_s3_changed_source_raises_reference_changed_naming_the_entry(repo, s3):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"v1")
    v = repo.log_artifact(Artifact("raw").add_reference(f"s3://{bucket}/raw/a.csv"), project="p")
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"v2, longer")

    with pytest.raises(ReferenceChanged, match="a.csv"):
        v.get_path("a.csv")
    with pytest.raises(ReferenceChanged, match="changed since it was logged"), v.open("a.csv") as f:
        f.read()
    problem = check(v.entry("a.csv"), sources=repo.reference_sources)
    assert problem and "etag" in problem

    client.delete_object(Bucket=bucket, Key="raw/a.csv")
    with pytest.raises(ReferenceChanged, match="no longer exists"):
        v.get_path("a.csv")
    assert "no longer exists" in check(v.entry("a.csv"), sources=repo.reference_sources)


def test_s3_versioned_bucket_reads_the_pinned_version_after_an_overwrite(repo, versioned_s3):
    client, bucket = versioned_s3
    first = client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"version one")
    v = repo.log_artifact(Artifact("raw").add_reference(f"s3://{bucket}/raw/"), project="p")
    assert v.entry("a.csv").pin["version_id"] == first["VersionId"]

    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"version two!")
    assert _read(v, "a.csv") == b"version one"
    with v.open("a.csv") as f:
        assert f.read() == b"version one"
    assert check(v.entry("a.csv"), sources=repo.reference_sources) is None

    client.delete_object(Bucket=bucket, Key="raw/a.csv", VersionId=first["VersionId"])
    with pytest.raises(ReferenceChanged, match="pinned version no longer exists"):
        v.get_path("a.csv")
    assert "pinned version" in check(v.entry("a.csv"), sources=repo.reference_sources)


def test_s3_references_on_an_s3_store_use_the_store_options(s3_endpoint, s3_bucket, tmp_path):
    """No endpoint in the environment: the store's storage options reach the references."""
    client = s3_endpoint.client()
    client.put_object(Bucket=s3_bucket, Key="raw/a.csv", Body=b"from the store's bucket")
    with Repository.open(
        catalog=f"sqlite:///{tmp_path}/c.db",
        store=f"s3://{s3_bucket}/repo",
        storage_options=s3_endpoint.storage_options,
        home=str(tmp_path / "home"),
    ) as repo:
        art = Artifact("raw").add_reference(
            f"s3://{s3_bucket}/raw/a.csv", storage_options=s3_endpoint.storage_options
        )
        v = repo.log_artifact(art, project="p")
        assert _read(v, "a.csv") == b"from the store's bucket"
        assert repo.verify(v.ref).ok


# -- GCS --------------------------------------------------------------------------------------


def test_gcs_prefix_pins_generation_and_hashes_and_reads_from_the_source(repo, gcs):
    fs, bucket = gcs
    fs.pipe(f"{bucket}/raw/a.csv", b"hello")
    fs.pipe(f"{bucket}/raw/sub/b.csv", b"world!")
    v = repo.log_artifact(Artifact("raw").add_reference(f"gs://{bucket}/raw/"), project="p")

    a = v.entry("a.csv")
    assert a.ref == f"gs://{bucket}/raw/a.csv" and a.size == 5
    assert a.pin["generation"] and a.pin["md5"] and a.pin["crc32c"]
    assert _read(v, "sub/b.csv") == b"world!"
    with v.open("a.csv") as f:
        assert f.read() == b"hello"
    assert _stored_objects(repo) == []

    fs.pipe(f"{bucket}/raw/a.csv", b"HELLO")  # same size, new content and generation
    with pytest.raises(ReferenceChanged, match="a.csv"):
        v.get_path("a.csv")
    with pytest.raises(ReferenceChanged), v.open("a.csv") as f:
        f.read()
    assert check(v.entry("a.csv"), sources=repo.reference_sources)


def test_gcs_single_object_via_gcs_scheme(repo, gcs):
    fs, bucket = gcs
    fs.pipe(f"{bucket}/m/model.bin", b"w" * 100)
    art = Artifact("m").add_reference(f"gcs://{bucket}/m/model.bin")
    assert art.entries["model.bin"].ref == f"gs://{bucket}/m/model.bin"


# -- file:// ----------------------------------------------------------------------------------


def test_file_references_pin_mtime_size_and_digest(repo, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "d" / "b.txt").write_bytes(b"beta")
    art = Artifact("local").add_reference(f"file://{src}")
    art.add_reference(str(src / "a.txt"), name="single.txt")  # a plain path works too
    v = repo.log_artifact(art, project="p")

    a = v.entry("a.txt")
    assert a.ref == f"file://{src}/a.txt"
    assert a.digest and a.pin["mtime_ns"] == os.stat(src / "a.txt").st_mtime_ns
    assert v.get_path("d/b.txt").read_bytes() == b"beta"
    assert _stored_objects(repo) == []

    os.utime(src / "a.txt")  # touched, not changed: still good
    assert check(v.entry("a.txt")) is None
    assert v.get_path("single.txt").read_bytes() == b"alpha"

    time.sleep(0.01)
    (src / "a.txt").write_bytes(b"ALPHA")
    with pytest.raises(ReferenceChanged, match="a.txt"):
        v.get_path("a.txt")
    with pytest.raises(ReferenceChanged), v.open("a.txt") as f:
        f.read()
    assert "digest" in check(v.entry("a.txt"))

    (src / "d" / "b.txt").unlink()
    with pytest.raises(ReferenceChanged, match="no longer exists"):
        v.get_path("d/b.txt")


# -- http:// ----------------------------------------------------------------------------------


def test_http_reference_pins_etag_and_last_modified(repo, http_root):
    root, url = http_root
    (root / "data.csv").write_bytes(b"x,y\n" * 1000)
    v = repo.log_artifact(Artifact("web").add_reference(f"{url}/data.csv"), project="p")
    e = v.entry("data.csv")
    assert e.size == 4000 and e.pin["etag"] and e.pin["last_modified"]
    assert _read(v, "data.csv") == b"x,y\n" * 1000
    with v.open("data.csv") as f:
        f.seek(3996)
        assert f.read() == b"x,y\n"

    (root / "data.csv").write_bytes(b"changed\n")
    with pytest.raises(ReferenceChanged, match="data.csv"):
        v.get_path("data.csv")
    assert check(e, sources=repo.reference_sources)


def test_http_without_validators_pins_the_digest(repo, tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    (root / "f.txt").write_bytes(b"no etag here")
    server = _serve(str(root), _NoValidators)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/f.txt"
        v = repo.log_artifact(Artifact("web").add_reference(url), project="p")
        assert v.entry("f.txt").pin == {} and v.entry("f.txt").digest
        assert v.get_path("f.txt").read_bytes() == b"no etag here"
        (root / "f.txt").write_bytes(b"no etag HERE")
        with pytest.raises(ReferenceChanged, match="digest"):
            v.get_path("f.txt")
    finally:
        server.shutdown()
        server.server_close()


def test_http_cannot_list_a_prefix(http_root):
    _, url = http_root
    with pytest.raises(CairnError, match="reference each file"):
        Artifact("web").add_reference(f"{url}/")


# -- behaviours shared by every source --------------------------------------------------------


def test_checksum_false_records_the_uri_alone(repo, s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"v1")
    (tmp_path / "f.txt").write_bytes(b"local v1")
    art = Artifact("raw").add_reference(f"s3://{bucket}/raw/a.csv", checksum=False)
    art.add_reference(str(tmp_path / "f.txt"), checksum=False)
    v = repo.log_artifact(art, project="p")
    for e in v.files():
        assert e.pin == {} and e.digest is None and e.ref

    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"v2 is longer")
    (tmp_path / "f.txt").write_bytes(b"local v2")
    assert _read(v, "a.csv") == b"v2 is longer"
    with v.open("f.txt") as f:
        assert f.read() == b"local v2"
    assert check_all(v.files()) == {}


def test_max_objects_guards_huge_prefixes_before_anything_is_added(repo, s3):
    client, bucket = s3
    for i in range(12):
        client.put_object(Bucket=bucket, Key=f"many/{i:02d}", Body=b"x")
    art = Artifact("many")
    with pytest.raises(CairnError, match="more than max_objects=10"):
        art.add_reference(f"s3://{bucket}/many/", max_objects=10)
    assert art.entries == {}
    art.add_reference(f"s3://{bucket}/many/", max_objects=12)
    assert len(art.entries) == 12


def test_nothing_at_the_uri_is_a_clear_error(s3, tmp_path):
    _, bucket = s3
    with pytest.raises(CairnError, match="nothing to reference"):
        Artifact("x").add_reference(f"s3://{bucket}/missing/")
    with pytest.raises(CairnError, match="nothing to reference"):
        Artifact("x").add_reference(str(tmp_path / "missing"))
    with pytest.raises(CairnError, match="supported schemes"):
        Artifact("x").add_reference("ftp://host/file")


def test_gc_keeps_nothing_for_references_and_they_still_read(repo, s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"ref bytes")
    (tmp_path / "own.txt").write_bytes(b"stored bytes")
    art = Artifact("mixed").add_reference(f"s3://{bucket}/raw/a.csv").add_file(tmp_path / "own.txt")
    v = repo.log_artifact(art, project="p")
    assert len(_stored_objects(repo)) == 1  # only the stored file
    report = repo.gc(grace=0)
    assert report.objects_deleted == 0
    assert _read(v, "a.csv") == b"ref bytes"
    assert _read(v, "own.txt") == b"stored bytes"


def test_a_draft_keeps_references_and_a_new_log_of_changed_source_is_a_new_version(repo, s3):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"v1")
    v0 = repo.log_artifact(Artifact("raw").add_reference(f"s3://{bucket}/raw/"), project="p")
    again = repo.log_artifact(Artifact("raw").add_reference(f"s3://{bucket}/raw/"), project="p")
    assert again.version == v0.version  # same pins: same content
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"v2")
    v1 = repo.log_artifact(Artifact("raw").add_reference(f"s3://{bucket}/raw/"), project="p")
    assert v1.version == "v1"
    assert _read(v1, "a.csv") == b"v2"
    # same size, no digest (S3 pins the ETag): the pin alone says the content changed
    assert repo.diff("p/raw:v0", "p/raw:v1").modified == ("a.csv",)
    draft = v1.new_draft()
    client.put_object(Bucket=bucket, Key="other.txt", Body=b"o")
    draft.add_reference(f"s3://{bucket}/other.txt")
    v2 = repo.log_artifact(draft, project="p")
    assert sorted(e.path for e in v2.files()) == ["a.csv", "other.txt"]


def test_download_of_a_version_with_references_and_files(repo, s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"A")
    client.put_object(Bucket=bucket, Key="raw/b.csv", Body=b"B")
    (tmp_path / "own.txt").write_bytes(b"stored")
    art = Artifact("mixed").add_reference(f"s3://{bucket}/raw/", name="raw")
    v = repo.log_artifact(art.add_file(tmp_path / "own.txt"), project="p")
    out = v.download(tmp_path / "out")
    assert (out / "raw/a.csv").read_bytes() == b"A"
    assert (out / "raw/b.csv").read_bytes() == b"B"
    assert (out / "own.txt").read_bytes() == b"stored"
    client.put_object(Bucket=bucket, Key="raw/b.csv", Body=b"B2")
    with pytest.raises(ReferenceChanged, match="raw/b.csv"):
        v.download(tmp_path / "out2")


def test_get_path_of_references_without_digest(repo, s3, gcs, http_root):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="a.csv", Body=b"from s3")
    fs, gbucket = gcs
    fs.pipe(f"{gbucket}/b.csv", b"from gcs")
    root, url = http_root
    (root / "c.csv").write_bytes(b"from http")
    art = Artifact("refs").add_reference(f"s3://{bucket}/a.csv")
    art.add_reference(f"gs://{gbucket}/b.csv").add_reference(f"{url}/c.csv")
    v = repo.log_artifact(art, project="p")
    assert v.get_path("a.csv").read_bytes() == b"from s3"
    assert v.get_path("b.csv").read_bytes() == b"from gcs"
    assert v.get_path("c.csv").read_bytes() == b"from http"
