"""The store backends the suite runs on, built the way open_store builds them for users."""

from __future__ import annotations

import uuid

import pytest

from cairn.storage import LocalStore, MemoryStore, Store, open_store

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


def empty_bucket(client, bucket: str) -> None:
    """Delete every object of an S3 bucket, listing it whole first.

    tests/servers.py's cleanup deletes while it paginates, and moto then skips objects
    of later pages: a bucket of more than 1,000 objects is left non-empty. Tests that
    make that many call this first.
    """
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    for i in range(0, len(keys), 1000):
        client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
        )
