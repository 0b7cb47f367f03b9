"""Partitioned tables upserted by many writers and read back as one pyarrow Table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cairn import Artifact, CairnError, NotFound


def test_parts_from_many_writers_read_as_one_table(repo, tmp_path):
    for w in range(3):
        path = tmp_path / f"part-{w}.parquet"
        pq.write_table(pa.table({"writer": [w] * 4, "x": list(range(4))}), path)
        part = Artifact("preds").add_file(path, name=f"parts/part-{w}.parquet")
        repo.upsert_artifact(part, project="p", distributed_id="d", writer_id=str(w))
    v = repo.finish_artifact(Artifact("preds"), project="p", distributed_id="d")
    table = v.read_table("parts")
    assert table.num_rows == 12
    assert table.column("writer").to_pylist() == [0] * 4 + [1] * 4 + [2] * 4
    assert table.to_pandas()["x"].sum() == 18


def test_csv_parts_and_clear_errors(repo, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("k,v\n1,2\n")
    b = tmp_path / "b.csv"
    b.write_text("other\nx\n")
    v = repo.log_artifact(
        Artifact("t").add_file(a, name="rows/a.csv").add_file(b, name="bad/b.csv"), project="p"
    )
    assert v.read_table("rows").to_pydict() == {"k": [1], "v": [2]}
    with pytest.raises(NotFound):
        v.read_table("nothing")
    c = tmp_path / "c.csv"
    c.write_text("k,v\n3,4\n")
    v2 = repo.log_artifact(
        v.new_draft().add_file(b, name="rows/b.csv").add_file(c, name="rows/c.csv"), project="p"
    )
    with pytest.raises(CairnError, match="schema"):
        v2.read_table("rows")
