"""Fixtures for the store conformance suite: every backend, each on a fresh root.

    def test_x(store): ...        # runs on memory, local, fsspec memory://, S3 (moto), GCS

S3 and GCS stores talk to the real servers of tests/conftest.py, as open_store builds
them for users (retrying wrapper included).
"""

from __future__ import annotations

import pytest
from backends import BACKENDS, make_store


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = make_store(request, request.param, tmp_path)
    yield s
    s.close()


@pytest.fixture(params=["local", "s3", "gcs"])
def repo_store_url(request, tmp_path):
    """(store URL, storage options) for end-to-end Repository tests on each real backend."""
    if request.param == "local":
        return str(tmp_path / "store"), None
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_endpoint")
        return f"s3://{request.getfixturevalue('s3_bucket')}/repo", s3.storage_options
    gcs = request.getfixturevalue("gcs_endpoint")
    return f"gs://{request.getfixturevalue('gcs_bucket')}/repo", gcs.storage_options
