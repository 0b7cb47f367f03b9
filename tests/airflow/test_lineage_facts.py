"""Lineage facts of versions (cairn_airflow.lineage.facts), without running DAGs: dataset
naming, reference grouping, table schemas, and the JSON an asset's extra carries."""

from __future__ import annotations

import pytest

from cairn import Artifact, Repository
from cairn_airflow.hooks.cairn import options_from_extras
from cairn_airflow.lineage import facts as F


@pytest.mark.parametrize(
    "uri, namespace, name",
    [
        ("s3://lake/raw/2024/a.csv", "s3://lake", "raw/2024/a.csv"),
        ("s3a://lake/raw/a.csv", "s3://lake", "raw/a.csv"),
        ("gs://bucket/x/y.parquet", "gs://bucket", "x/y.parquet"),
        ("gcs://bucket/x", "gs://bucket", "x"),
        ("file:///data/raw.csv", "file", "/data/raw.csv"),
        ("https://example.org/files/a.csv?sig=1", "https://example.org", "files/a.csv"),
    ],
)
def test_referenced_objects_are_named_as_openlineage_names_them(uri, namespace, name):
    assert F.object_dataset(uri) == F.Dataset(namespace, name)


def test_many_references_are_reported_by_folder_and_capped():
    few = [f"s3://lake/raw/{i}.csv" for i in range(F.MAX_REFERENCE_DATASETS)]
    assert len(F.reference_datasets(few)) == F.MAX_REFERENCE_DATASETS
    many = [f"s3://lake/raw/day={d}/{i}.csv" for d in range(3) for i in range(50)]
    assert F.reference_datasets(many) == tuple(
        F.Dataset("s3://lake", f"raw/day={d}") for d in range(3)
    )
    folders = [f"gs://b/{d}/{i}" for d in range(150) for i in range(2)]
    assert len(F.reference_datasets(folders)) == F.MAX_REFERENCE_DATASETS


def test_the_namespace_is_the_store_as_every_worker_names_it(tmp_path, monkeypatch):
    for var in ("CAIRN_STORE", "CAIRN_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "home"))
    with Repository.open() as repo:  # the embedded default
        assert F.namespace_of(repo) == f"cairn://{tmp_path}/home/store"
        assert F.repository_namespace(F.store_location({})) == F.namespace_of(repo)
    extras = {"store": f"file://{tmp_path}/elsewhere/", "catalog": f"sqlite:///{tmp_path}/c.db"}
    options = options_from_extras(extras, "cairn_default")
    with Repository.open(**options) as repo:
        assert F.namespace_of(repo) == f"cairn://{tmp_path}/elsewhere"
        assert F.repository_namespace(F.store_location(options)) == F.namespace_of(repo)
    assert F.repository_namespace("s3://lake/cairn/") == "cairn://s3://lake/cairn"


def test_facts_of_a_table_version_and_their_json(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for i in range(2):
        pq.write_table(pa.table({"id": [i], "tag": ["x"]}), tmp_path / f"part-{i}.parquet")
    (tmp_path / "rows.csv").write_text("id,tag\n1,x\n")
    (tmp_path / "notes.txt").write_text("no table\n")
    with Repository.open(home=str(tmp_path / "home")) as repo:
        table = repo.log_artifact(
            Artifact("t")
            .add_file(tmp_path / "part-0.parquet", name="parts/part-0.parquet")
            .add_file(tmp_path / "part-1.parquet", name="parts/part-1.parquet"),
            project="demo",
            aliases=["best"],
        )
        facts = F.version_facts(table, "cairn://x")
        assert facts.schema == (F.Field("id", "int64"), F.Field("tag", "string"))
        assert (facts.ref, facts.file_count, facts.aliases) == ("demo/t:v0", 2, ("best", "latest"))
        assert F.VersionFacts.from_json(facts.to_json()) == facts

        csv = repo.log_artifact(Artifact("c").add_file(tmp_path / "rows.csv"), project="demo")
        assert F.version_facts(csv, "cairn://x").schema == (F.Field("id"), F.Field("tag"))
        mixed = Artifact("m").add_file(tmp_path / "rows.csv").add_file(tmp_path / "notes.txt")
        assert F.version_facts(repo.log_artifact(mixed, project="demo"), "ns").schema is None
        pending = repo.upsert_artifact(
            Artifact("p").add_file(tmp_path / "notes.txt"),
            project="demo",
            distributed_id="d1",
            writer_id="w1",
        )
        facts = F.version_facts(pending, "ns")
        assert (facts.version, facts.digest, facts.extra) == (None, None, {"distributed_id": "d1"})


def test_an_unreadable_parquet_part_gives_no_schema_not_an_error(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with Repository.open(home=str(tmp_path / "home")) as repo:
        v = repo.log_artifact(Artifact("b").add_file(tmp_path / "bad.parquet"), project="demo")
        assert F.version_facts(v, "ns").schema is None
