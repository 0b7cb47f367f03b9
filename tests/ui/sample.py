"""A repository worth looking at: several projects, versions with metadata and aliases,
files of every kind the UI previews, runs with lineage, a sweep and a distributed version.

    python tests/ui/sample.py HOME     # build it under HOME, then: cairn --home HOME ui
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from typing import Any

from cairn import Artifact, ArtifactVersion, Entry, Repository

#: a description and metadata value a page must show as text, never run
SCRIPT = "<script>document.title='pwned'</script>"
#: the distributed id of the sample's pending version
PENDING_ID = "airflow:features:manual__2024-03-01/part"


def png(width: int = 48, height: int = 32) -> bytes:
    """A small RGB gradient as a PNG (no imaging library needed)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 5 % 256, y * 8 % 256, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def parquet(rows: int = 120) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": list(range(rows)),
            "label": [f"digit-{i % 10}" for i in range(rows)],
            "score": [round(i / rows, 3) for i in range(rows)],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _art(name: str, type: str, files: dict[str, bytes | str], **kw: Any) -> Artifact:
    art = Artifact(name, type=type, **kw)
    for path, data in files.items():
        with art.new_file(path, mode="wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    return art


def build(repo: Repository) -> dict[str, ArtifactVersion]:
    """Log everything; returns the versions the tests look at, by a short name."""
    out: dict[str, ArtifactVersion] = {}
    csv_rows = "id,label,pixels\n" + "".join(f"{i},{i % 10},{i * 7 % 256}\n" for i in range(200))
    with repo.run(project="demo", name="ingest", job_type="etl") as run:
        out["raw"] = run.log_artifact(
            _art("raw", "dataset", {"events.csv": csv_rows, "README.md": "# raw events\n"}),
            aliases=["production"],
        )
    mnist_files: dict[str, bytes | str] = {
        "train/images/0001.png": png(),
        "train/images/0002.png": png(40, 40),
        "train/labels.csv": csv_rows,
        "test/labels.parquet": parquet(),
        "meta/info.json": json.dumps({"classes": list(range(10)), "source": "ingest"}),
        "meta/notes.txt": "".join(f"line {i}: handwritten digits\n" for i in range(300)),
        "blob.bin": bytes(range(256)) * 64,
    }
    with repo.run(project="demo", name="prep", job_type="prep") as run:
        run.use_artifact("raw:production")
        out["mnist_v0"] = run.log_artifact(
            _art(
                "mnist",
                "dataset",
                mnist_files,
                description="Handwritten digits, split into train and test.",
                metadata={"rows": 200, "source": "ingest", "split": {"train": 0.8, "test": 0.2}},
            )
        )
        draft = out["mnist_v0"].new_draft()
        with draft.new_file("train/images/0003.png", mode="wb") as f:
            f.write(png(30, 30))
        draft.remove("blob.bin")
        draft.metadata.update(rows=300)
        out["mnist"] = run.log_artifact(draft, aliases=["production"])
    for i, lr in enumerate([0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001, 0.00003]):
        config = {"lr": lr, "epochs": 10 + i, "optimizer": "adam" if i % 2 else "sgd"}
        with repo.run(
            project="demo", name=f"sweep-{i}", job_type="train", group="sweep-1", config=config
        ) as run:
            run.use_artifact("mnist:production")
            acc = round(0.80 + i * 0.02 - (0.03 if i > 5 else 0), 3)
            run.log_summary({"val_acc": acc, "val_loss": round(1.05 - acc, 3)})
            v = run.log_artifact(
                _art("classifier", "model", {"model.bin": f"weights {lr}".encode() * 100}),
                aliases=["best"] if i == 5 else [],
            )
            v.metadata.update(accuracy=acc, lr=lr, epochs=10 + i)
            v.save()
            out[f"model_{i}"] = v
    with repo.run(project="demo", name="evaluate", job_type="eval") as run:
        run.use_artifact("classifier:best")
        run.use_artifact("mnist:production")
        out["report"] = run.log_artifact(
            _art("report", "report", {"report.json": json.dumps({"accuracy": 0.9})}),
        )
    for w in range(3):
        with repo.run(project="demo", name=f"shard-{w}", job_type="upsert", group="preds-1") as run:
            run.use_artifact("classifier:best")
            part = _art(
                "predictions", "dataset", {f"parts/part-{w:03d}.csv": f"id,pred\n{w},{w}\n"}
            )
            run.upsert_artifact(part)
    with repo.run(project="demo", name="commit-preds", job_type="finish", group="preds-1") as run:
        out["predictions"] = run.finish_artifact(
            Artifact("predictions", type="dataset", metadata={"shards": 3}), aliases=["daily"]
        )
    # a distributed version still being written (its id holds a '/', as some run ids do)
    with repo.run(project="demo", name="feature-writer", job_type="upsert") as run:
        part = _art("features", "dataset", {"part-0.csv": "a,b\n1,2\n"})
        out["pending"] = run.upsert_artifact(part, distributed_id=PENDING_ID, writer_id="w0")
    out["xss"] = repo.log_artifact(
        _art(
            "odd-names",
            "dataset",
            {"a b/c&d.txt": "spaces and ampersands", "x.txt": "x"},
            description=SCRIPT,
            metadata={"note": SCRIPT, SCRIPT: 1},
        ),
        project="demo",
    )
    repo.create_project("vision", visibility="public")
    out["vision"] = repo.log_artifact(
        _art("faces", "dataset", {"faces.csv": "id,name\n1,a\n"}, metadata={"license": "cc-by"}),
        project="vision",
    )
    # links and an empty folder (a manifest of format 2)
    linked = _art("linked", "dataset", {"data/table.csv": "a,b\n1,2\n"})
    linked.add_entry(Entry.link("current.csv", "data/table.csv"))
    linked.add_entry(Entry.link("broken", "data/gone.csv"))
    linked.add_entry(Entry.folder("empty"))
    out["linked"] = repo.log_artifact(linked, project="vision")
    return out


if __name__ == "__main__":
    with Repository.open(home=sys.argv[1]) as r:
        for key, v in build(r).items():
            print(f"{key:12} {v.ref}")
