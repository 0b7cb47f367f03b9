"""Every dataframe engine reads and writes versions through cairn:// (docs/FS.md):
DuckDB, Polars, pandas, pyarrow and Dask, on a local store and on S3 (moto)."""

from __future__ import annotations

import json

import dask.dataframe as dd
import duckdb
import fsspec
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cairn import Artifact, Repository


@pytest.fixture(params=["local", "s3"])
def sales(request, tmp_path, monkeypatch):
    """demo/sales:v0 (alias production): a hive-partitioned Parquet dataset, 4 files of
    several row groups, in a repository named by CAIRN_* variables."""
    if request.param == "local":
        url, options = str(tmp_path / "store"), None
    else:
        s3 = request.getfixturevalue("s3_endpoint")
        url, options = f"s3://{request.getfixturevalue('s3_bucket')}/repo", s3.storage_options
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAIRN_CATALOG", f"sqlite:///{tmp_path}/catalog.db")
    monkeypatch.setenv("CAIRN_STORE", url)
    if options:
        monkeypatch.setenv("CAIRN_STORAGE_OPTIONS", json.dumps(options))
    else:
        monkeypatch.delenv("CAIRN_STORAGE_OPTIONS", raising=False)
    monkeypatch.delenv("CAIRN_PROJECT", raising=False)
    src = tmp_path / "src"
    for year in (2023, 2024):
        for part in range(2):
            (src / f"year={year}").mkdir(parents=True, exist_ok=True)
            n = 1000
            table = pa.table({"amount": [year * 10 + part] * n, "id": list(range(n))})
            pq.write_table(table, src / f"year={year}" / f"part-{part}.parquet", row_group_size=250)
    repo = Repository.open()
    repo.log_artifact(Artifact("sales").add_dir(src), project="demo", aliases=["production"])
    yield repo
    repo.close()


TOTAL = 1000 * (20230 + 20231 + 20240 + 20241)


def test_duckdb_reads_globs_and_hive_partitions_of_any_version(sales):
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("cairn"))
    for ref in ("demo/sales", "demo/sales:v0", "demo/sales:production"):
        q = f"SELECT sum(amount) FROM read_parquet('cairn://{ref}/*/*.parquet')"
        assert con.execute(q).fetchone() == (TOTAL,)
    by_year = con.execute(
        "SELECT year, count(*) FROM read_parquet('cairn://demo/sales/**/*.parquet', "
        "hive_partitioning = true) GROUP BY year ORDER BY year"
    ).fetchall()
    assert by_year == [(2023, 2000), (2024, 2000)]


def test_duckdb_copy_to_cairn_commits_a_version(sales):
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("cairn"))
    con.execute(
        "COPY (SELECT 1 AS amount, 2025 AS year) TO "
        "'cairn://demo/sales/year=2025/part-0.parquet' (FORMAT parquet)"
    )
    assert sales.artifact("demo/sales").version == "v1"
    q = "SELECT sum(amount) FROM read_parquet('cairn://demo/sales/*/*.parquet')"
    assert con.execute(q).fetchone() == (TOTAL + 1,)
    v0 = "SELECT sum(amount) FROM read_parquet('cairn://demo/sales:v0/*/*.parquet')"
    assert con.execute(v0).fetchone() == (TOTAL,)


def test_polars_reads_through_fsspec_and_writes_through_a_file(sales):
    fs = fsspec.filesystem("cairn")
    df = pl.read_parquet("cairn://demo/sales/year=2023/part-0.parquet", use_pyarrow=True)
    assert df.shape == (1000, 2)
    with fs.open("demo/sales:v0/year=2024/part-1.parquet") as f:
        assert pl.read_parquet(f)["amount"][0] == 20241
    with fs.open("demo/sales:v0/year=2024/part-1.parquet") as f:  # lazy, from a file object
        assert pl.scan_parquet(f).select(pl.col("amount").sum()).collect().item() == 20241000
    dataset = ds.dataset("demo/sales", filesystem=fs, format="parquet", partitioning="hive")
    lazy = pl.scan_pyarrow_dataset(dataset).filter(pl.col("year") == 2024)
    assert lazy.select(pl.col("amount").sum()).collect().item() == 1000 * (20240 + 20241)
    with fs.open("demo/sales/polars/out.parquet", "wb") as f:
        pl.DataFrame({"amount": [5]}).write_parquet(f)
    assert sales.artifact("demo/sales").version == "v1"
    assert pl.read_parquet(fs.open("demo/sales/polars/out.parquet"))["amount"].to_list() == [5]


def test_pandas_reads_folders_and_writes_files_as_versions(sales):
    df = pd.read_parquet("cairn://demo/sales:production")
    assert int(df["amount"].sum()) == TOTAL and sorted(df["year"].unique()) == [2023, 2024]
    pd.DataFrame({"amount": [7]}).to_parquet("cairn://demo/sales/part-9.parquet")
    pd.DataFrame({"a": [1, 2]}).to_csv("cairn://demo/csv/t.csv", index=False)
    assert sales.artifact("demo/sales").version == "v1"
    assert pd.read_parquet("cairn://demo/sales/part-9.parquet")["amount"].tolist() == [7]
    assert pd.read_csv("cairn://demo/csv/t.csv")["a"].tolist() == [1, 2]


def test_pandas_writes_inside_a_run_are_logged_by_it(sales):
    """`df.to_parquet("cairn://...")` inside `with repo.run(...)`: the version's producer
    is that run (the filesystem pandas opens is another Repository on the same catalog)."""
    frame = pd.DataFrame({"amount": [7]})
    with sales.run(project="demo", name="etl") as run:
        frame.to_parquet("cairn://demo/sales/part-9.parquet")
    frame.to_parquet("cairn://demo/sales/part-10.parquet")  # outside any run
    v1, v2 = sales.artifact("demo/sales:v1"), sales.artifact("demo/sales:v2")
    assert v1.logged_by() == run and v2.logged_by() is None


def test_globs_over_hive_partitions_read_through_dask_pyarrow_and_pandas(sales):
    fs = fsspec.filesystem("cairn")
    glob = "demo/sales:v0/*/*.parquet"
    by_year = {2023: 1000 * (20230 + 20231), 2024: 1000 * (20240 + 20241)}
    df = dd.read_parquet(f"cairn://{glob}", dataset={"partitioning": "hive"})
    assert df.groupby("year")["amount"].sum().compute().to_dict() == by_year
    table = ds.dataset(fs.glob(glob), filesystem=fs, format="parquet", partitioning="hive")
    sums = table.to_table().group_by("year").aggregate([("amount", "sum")]).to_pylist()
    assert {row["year"]: row["amount_sum"] for row in sums} == by_year
    # pandas hands a glob to pyarrow as one path (so on memory:// too): the idioms that
    # work are a folder, or the glob's files with the filesystem (docs/FS.md)
    with pytest.raises(FileNotFoundError):
        pd.read_parquet(f"cairn://{glob}")
    listed = pd.read_parquet(fs.glob("demo/sales:v0/year=2024/*.parquet"), filesystem=fs)
    assert listed.groupby("year")["amount"].sum().to_dict() == {2024: by_year[2024]}
    folder = pd.read_parquet("cairn://demo/sales:v0/year=2023")
    assert int(folder["amount"].sum()) == by_year[2023]


def test_pyarrow_datasets_read_and_write_in_one_transaction(sales):
    fs = fsspec.filesystem("cairn")
    table = ds.dataset("demo/sales:v0", filesystem=fs, partitioning="hive").to_table()
    assert table.num_rows == 4000 and pa.compute.sum(table["amount"]).as_py() == TOTAL
    with fs.transaction:
        ds.write_dataset(
            table,
            "demo/copy",
            filesystem=fs,
            format="parquet",
            partitioning=["year"],
            partitioning_flavor="hive",
        )
    assert [v.version for v in sales.versions("demo/copy")] == ["v0"]
    again = ds.dataset("demo/copy", filesystem=fs, partitioning="hive").to_table()
    assert pa.compute.sum(again["amount"]).as_py() == TOTAL


def test_dask_reads_hive_datasets_and_writes_one_version_per_transaction(sales):
    df = dd.read_parquet("cairn://demo/sales:v0", dataset={"partitioning": "hive"})
    assert int(df["amount"].sum().compute()) == TOTAL
    out = dd.from_pandas(pd.DataFrame({"x": range(100)}), npartitions=4)
    fs = fsspec.filesystem("cairn")
    with fs.transaction:  # parts are written from Dask's worker threads
        out.to_parquet("cairn://demo/dask/out")
    assert [v.version for v in sales.versions("demo/dask")] == ["v0"]
    assert len(fs.ls("demo/dask/out")) == 4
    assert int(dd.read_parquet("cairn://demo/dask/out")["x"].sum().compute()) == 4950
