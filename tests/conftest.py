"""Fixtures giving tests real servers: PostgreSQL, S3 (moto) and GCS (gcp-storage-emulator).

Each server starts on first use, once per session, and stops when the session ends; see
servers.py. Per-test fixtures hand out an empty database or bucket of their own:

    def test_x(fresh_postgres_url, s3_endpoint, s3_bucket): ...

CAIRN_TEST_POSTGRES_URL=postgresql+psycopg://... uses an existing PostgreSQL server instead.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import TypeVar

import pytest
import servers

# gcsfs probes every bucket for hierarchical namespaces over gRPC, which the emulator cannot
# answer (each lookup then waits 60 s). gcsfs reads this when first imported: set it first.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

T = TypeVar("T")


def _start(server: contextlib.AbstractContextManager[T], stack: contextlib.ExitStack) -> T:
    """Enter a server's context manager on stack; fail (not skip) the test if it cannot start."""
    try:
        return stack.enter_context(server)
    except servers.ServerError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database `cairn` on a PostgreSQL server for this session."""
    external = os.environ.get("CAIRN_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    with contextlib.ExitStack() as stack:
        url = f"{_start(servers.postgres_server(), stack)}/cairn"
        servers.create_database(url)
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """URL of a new empty database for this test only, on the session's server."""
    with servers.fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[servers.S3Endpoint]:
    """moto S3 server: .endpoint_url, .storage_options (s3fs), .client() (boto3)."""
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        s3 = _start(servers.moto_s3(), stack)
        for name, value in s3.environ.items():
            env.setenv(name, value)
        yield s3


@pytest.fixture
def s3_bucket(s3_endpoint: servers.S3Endpoint) -> Iterator[str]:
    """Name of a new bucket for this test only."""
    with servers.s3_bucket(s3_endpoint) as name:
        yield name


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[servers.GCSEndpoint]:
    """GCS emulator: .endpoint_url, .storage_options (gcsfs), .filesystem()."""
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        gcs = _start(servers.gcs_emulator(), stack)
        for name, value in gcs.environ.items():
            env.setenv(name, value)
        yield gcs


@pytest.fixture
def gcs_bucket(gcs_endpoint: servers.GCSEndpoint) -> Iterator[str]:
    """Name of a new bucket for this test only."""
    with servers.gcs_bucket(gcs_endpoint) as name:
        yield name
