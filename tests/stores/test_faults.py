"""Transient failures: logs and reads complete and verify while requests fail around them.

Two layers are exercised: FlakyStore fails calls inside the process on every backend
(retries are then RetryingStore's alone), and FaultProxy sits between s3fs and the moto
server, answering 503 SlowDown or dropping connections, with s3fs's and botocore's own
retries turned off so that every fault reaches cairn.
"""

from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from backends import make_store
from fault_proxy import FaultProxy
from flaky_store import FlakyStore

from cairn import Artifact, Repository
from cairn.catalog import Catalog
from cairn.storage import RetryingStore, open_store

SMALL_CHUNKS = {"threshold": 65536, "avg": 16384, "min": 4096, "max": 65536}


def _data(root) -> dict[str, bytes]:
    files = {f"small/{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(150)}
    files["big.bin"] = os.urandom(1 << 20)  # ~64 chunks of ~16 KiB
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _repository(store, tmp_path) -> Repository:
    return Repository(
        Catalog(f"sqlite:///{tmp_path}/catalog.db"), store, home=str(tmp_path / "home")
    )


def _log_verify_download(store, tmp_path) -> None:
    """Log a folder through `store`, then verify it and download it intact."""
    src, out = tmp_path / "src", tmp_path / "out"
    files = _data(src)
    repo = _repository(store, tmp_path)
    try:
        v = repo.log_artifact(Artifact("ds").add_dir(src), project="p")
        assert v.last_log.objects_sent > 0
        report = repo.verify(v.ref)
        assert report.ok, str(report)
        target = v.download(out, link=False)
        for rel, data in files.items():
            assert (target / rel).read_bytes() == data
    finally:
        repo.close()


@pytest.mark.parametrize("backend", ["memory", "local", "s3", "gcs"])
def test_flaky_store_log_download_and_verify_complete(request, backend, tmp_path):
    inner = make_store(request, backend, tmp_path)
    if isinstance(inner, RetryingStore):
        inner = inner.inner  # only the retries under test
    inner.put("config.json", json.dumps({"format": 1, "chunking": SMALL_CHUNKS}).encode())
    flaky = FlakyStore(inner, rate=0.3, seed=7)
    store = RetryingStore(flaky, attempts=12, base_delay=0.001, max_delay=0.01)
    _log_verify_download(store, tmp_path)
    assert flaky.failures > 10
    assert store.retries > 0


def test_without_the_retrying_wrapper_the_same_faults_fail_the_log(tmp_path):
    (tmp_path / "src").mkdir()
    for i in range(50):
        (tmp_path / "src" / f"{i}.txt").write_text(str(i))
    store = FlakyStore(make_store(None, "memory", tmp_path), rate=0.3, seed=7)
    with pytest.raises(ConnectionResetError):  # noqa: PT012 - any step may be the one to fail
        repo = _repository(store, tmp_path)
        repo.log_artifact(Artifact("ds").add_dir(tmp_path / "src"), project="p")


def _bare_s3_options(endpoint_url: str) -> dict:
    """s3fs options with s3fs's and botocore's own retries off: faults reach cairn."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint_url},
        "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
    }


def test_s3_through_a_proxy_that_throttles_and_drops_requests(s3_endpoint, s3_bucket, tmp_path):
    s3_endpoint.client().put_object(
        Bucket=s3_bucket,
        Key="repo/config.json",
        Body=json.dumps({"format": 1, "chunking": SMALL_CHUNKS}).encode(),
    )
    with FaultProxy(s3_endpoint.endpoint_url, fail_rate=0.15, reset_rate=0.05, seed=3) as proxy:
        store = open_store(f"s3://{s3_bucket}/repo", _bare_s3_options(proxy.url))
        assert isinstance(store, RetryingStore)
        store.inner.fs.retries = 1  # s3fs's own retry loop: off too
        store.base_delay, store.max_delay = 0.005, 0.05
        _log_verify_download(store, tmp_path)
        assert proxy.faults > 20, proxy.faults
        faulted = [(r.method, r.path, r.status) for r in proxy.requests() if r.status != 200]
        assert store.retries > 0, f"{proxy.faults} faults, none retried by cairn: {faulted[:30]}"
        answered = [r for r in proxy.requests() if r.status is not None]
        assert any(r.status == 200 for r in answered)


def test_the_proxy_stores_nothing_of_a_put_whose_client_died_mid_body(s3_endpoint, s3_bucket):
    """S3 refuses a body shorter than its Content-Length; the proxy must too, or the
    deploy tests' killed writers would leave truncated objects no real store keeps."""
    with FaultProxy(s3_endpoint.endpoint_url) as proxy:
        url = urlsplit(proxy.url)
        with socket.create_connection((url.hostname, url.port)) as sock:
            sock.sendall(
                f"PUT /{s3_bucket}/short HTTP/1.1\r\nHost: {url.netloc}\r\n"
                "Content-Length: 100\r\n\r\n".encode()
                + b"x" * 10
            )
            sock.shutdown(socket.SHUT_WR)  # the writer is gone after 10 of 100 bytes
            sock.settimeout(10)
            assert sock.recv(1024) == b""  # no answer: the connection is dropped
        time.sleep(0.2)
        assert [(r.method, r.status) for r in proxy.requests("PUT")] == [("PUT", None)]
    listed = s3_endpoint.client().list_objects_v2(Bucket=s3_bucket, Prefix="short")
    assert listed.get("KeyCount", 0) == 0
