"""The store backends the suite runs on, built the way open_store builds them for users."""

from __future__ import annotations

import uuid

import pytest

from cairn.stores import LocalStore, MemoryStore, Store, open_store

BACKENDS = ["memory", "local", "fsspec-memory", "s3", "gcs"]


def make_store(request: pytest.FixtureRequest, backend: str, tmp_path) -> Store:
    if backend == "memory":
        return MemoryStore(uuid.uuid4().hex)
    if backend == "local":
        return LocalStore(str(tmp_path / "store"))
    if backend == "fsspec-memory":
        return open_store(f"memory://cairn-{uuid.uuid4().hex}/store")
    if backend == "s3":
        s3 = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        return open_store(f"s3://{bucket}/store", s3.storage_options)
    if backend == "gcs":
        gcs = request.getfixturevalue("gcs_endpoint")
        bucket = request.getfixturevalue("gcs_bucket")
        return open_store(f"gs://{bucket}/store", gcs.storage_options)
    raise AssertionError(backend)
