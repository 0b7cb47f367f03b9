"""The server fixtures give real, working servers (tests/conftest.py, tests/servers.py)."""

import hashlib
import uuid

import gcsfs
import pytest
import s3fs
import servers
from sqlalchemy import create_engine, text

PAYLOAD = b"cairn smoke test\n" * 1000


def test_s3_put_get_ls_etag(s3_endpoint, s3_bucket, tmp_path):
    fs = s3fs.S3FileSystem(**s3_endpoint.storage_options)
    src = tmp_path / "a.bin"
    src.write_bytes(PAYLOAD)

    fs.put(str(src), f"{s3_bucket}/dir/a.bin")
    fs.get(f"{s3_bucket}/dir/a.bin", str(tmp_path / "back.bin"))

    assert (tmp_path / "back.bin").read_bytes() == PAYLOAD
    assert fs.ls(f"{s3_bucket}/dir") == [f"{s3_bucket}/dir/a.bin"]
    etag = fs.info(f"{s3_bucket}/dir/a.bin")["ETag"]
    assert etag.strip('"') == hashlib.md5(PAYLOAD).hexdigest()


def test_s3_buckets_are_fresh_per_test(s3_endpoint, s3_bucket):
    client = s3_endpoint.client()
    assert client.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0


def test_s3_bucket_cleanup_removes_versions(s3_endpoint):
    client = s3_endpoint.client()
    with servers.s3_bucket(s3_endpoint) as bucket:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        client.put_object(Bucket=bucket, Key="k", Body=b"1")
        client.put_object(Bucket=bucket, Key="k", Body=b"2")
        client.delete_object(Bucket=bucket, Key="k")
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert bucket not in names


def test_gcs_put_get_info(gcs_endpoint, gcs_bucket, tmp_path):
    fs = gcsfs.GCSFileSystem(**gcs_endpoint.storage_options)
    src = tmp_path / "a.bin"
    src.write_bytes(PAYLOAD)

    fs.put(str(src), f"{gcs_bucket}/dir/a.bin")
    fs.get(f"{gcs_bucket}/dir/a.bin", str(tmp_path / "back.bin"))

    assert (tmp_path / "back.bin").read_bytes() == PAYLOAD
    info = fs.info(f"{gcs_bucket}/dir/a.bin")
    assert info["size"] == len(PAYLOAD)
    assert info["generation"]


def test_gcs_bucket_is_deleted_afterwards(gcs_endpoint):
    fs = gcs_endpoint.filesystem()
    with servers.gcs_bucket(gcs_endpoint) as bucket:
        fs.pipe(f"{bucket}/x", b"x")
    fs.invalidate_cache()
    assert not fs.exists(bucket)


def test_postgres_answers(postgres_url):
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select version()")).scalar().startswith("PostgreSQL")
            assert conn.execute(text("select current_database()")).scalar() == "cairn"
    finally:
        engine.dispose()


def test_fresh_postgres_database_is_empty_and_private(postgres_url, fresh_postgres_url):
    table = f"t_{uuid.uuid4().hex[:8]}"
    engine = create_engine(fresh_postgres_url)
    try:
        with engine.begin() as conn:
            tables = text("select count(*) from pg_tables where schemaname = 'public'")
            assert conn.execute(tables).scalar() == 0
            conn.execute(text(f"create table {table} (x int)"))
    finally:
        engine.dispose()

    shared = create_engine(postgres_url)
    try:
        with shared.connect() as conn:
            assert conn.execute(text("select to_regclass(:t)"), {"t": table}).scalar() is None
    finally:
        shared.dispose()


def test_fresh_postgres_database_is_dropped_even_with_open_connections(postgres_url):
    with servers.fresh_database(postgres_url) as url:
        leaked_engine = create_engine(url)
        leaked = leaked_engine.connect()  # still open when the database is dropped
        name = leaked.execute(text("select current_database()")).scalar()
    leaked.invalidate()  # its server session is gone: discard it without a rollback
    leaked_engine.dispose()

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("select count(*) from pg_database where datname = :n"), {"n": name}
            ).scalar()
    finally:
        engine.dispose()
    assert count == 0


def test_server_that_dies_on_startup_reports_its_log(tmp_path):
    argv = ["sh", "-c", "echo boom; exit 3"]
    with (
        pytest.raises(servers.ServerError, match="exited with status 3") as failure,
        servers.running("broken", argv, tmp_path / "log", lambda: False),
    ):
        pass
    assert "boom" in str(failure.value)
