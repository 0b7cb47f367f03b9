"""Dataframe engines over `cairn://` against the same bytes read without cairn.

    python benchmarks/bench_fs.py --quick              # 256 MiB dataset, 32 MiB frame
    python benchmarks/bench_fs.py                      # 1 GiB dataset (S3: 256 MiB), 100 MiB frame
    python benchmarks/bench_fs.py --only local,write --json out.json

Generates a hive-partitioned Parquet dataset (8 partitions x 4 files, 20 float64 columns,
row groups of DuckDB's default 122,880 rows, or 8 per file with `--small-row-groups`) and
logs it as one version, then measures, with ratios taken in the same run:
- local: DuckDB `SELECT sum(c0)` over `cairn://bench/ds/*/*.parquet` (registered with
  `register_filesystem`) against the same query over the plain files on disk. First query
  (cairn's object cache empty and no block index yet; the files are in the page cache
  either way) and warm (median of `--repeat`). Target: warm within 1.3x.
- projection: the bytes cairn fetched from the store for that query (1 column of 20) on a
  fresh filesystem, against the compressed size of that column's chunks plus the footers.
  Target: only that column's bytes (<= 1.05x: reads are checked in 16 KiB blocks, so a
  column chunk costs the blocks around it). Measured with the block indexes the first
  query recorded (docs/FS.md "Integrity of ranged reads"), and, as information, on objects
  never read before (each object holding the column fetched whole and checked against
  its digest, which records the index).
- dvc: the same query through DVC's fsspec filesystem (`dvc.api.DVCFileSystem`, DVC 3.67.1),
  in DVC's own virtualenv with DuckDB added (`--dvc-python`, default
  benchmarks/.venv-dvc-duckdb from setup_baselines.sh), on the dataset tracked with
  `dvc add` and read from DVC's cache (`_dvc_fs.py`); its ratio is to the plain files timed
  in that process. lakeFS, the other engine-readable baseline of the issue (through its S3
  gateway), is not measured: it is a server with its own metadata database that cannot be
  installed on this machine.
- s3: the same query over a moto S3 server: cairn:// on an s3:// store against DuckDB
  with s3fs registered, reading the plain files uploaded to the same server (`--s3-mib`,
  256 by default; 1024 for the issue's 1 GiB). First query of each, then `--repeat` warm
  runs of the two alternating, so a change in the machine's load falls on both. Target
  1.2x (warm medians).
- write: pandas `to_parquet` of a random frame into `cairn://bench/w/part.parquet` (one
  version) against `to_parquet` to a local file plus logging it with `log_artifact` (what
  `cairn put` does). Target: within 1.5x.
Every measurement uses a fresh repository where content would otherwise be deduplicated.
Prints a markdown table with PASS/FAIL per target; the machine's load shows in the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import servers  # noqa: E402  (tests/servers.py: the moto server the test suite uses)

from cairn import Artifact, Repository  # noqa: E402
from cairn.engine import blocks  # noqa: E402
from cairn.fs import CairnFileSystem  # noqa: E402

MiB = 1 << 20
COLUMNS = 20
PARTITIONS, FILES = 8, 4
QUERY = "SELECT sum(c0) FROM read_parquet('{}/*/*.parquet', hive_partitioning = true)"


def make_dataset(root: Path, total: int, group_rows: int = 122_880) -> Path:
    """~`total` bytes of Parquet: region=0..7 / part-0..3.parquet, in row groups of
    `group_rows` rows (DuckDB's default size, 122,880, unless `--small-row-groups`)."""
    rng = np.random.default_rng(0)
    rows = max(8, total // (PARTITIONS * FILES * COLUMNS * 8))
    for region in range(PARTITIONS):
        folder = root / f"region={region}"
        folder.mkdir(parents=True)
        for part in range(FILES):
            table = pa.table({f"c{i}": rng.random(rows) for i in range(COLUMNS)})
            pq.write_table(
                table, folder / f"part-{part}.parquet", row_group_size=group_rows, compression=None
            )
    return root


def column_bytes(root: Path) -> int:
    """Compressed bytes of column c0 in every file, plus every footer: what a reader of
    that one column needs."""
    total = 0
    for path in root.rglob("*.parquet"):
        meta = pq.ParquetFile(path).metadata
        total += sum(
            meta.row_group(i).column(0).total_compressed_size for i in range(meta.num_row_groups)
        )
        total += meta.serialized_size + 8
    return total


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(first run's seconds, median of the next `repeat`, the result)."""
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return first, statistics.median(runs), result


def same(a: object, b: object) -> bool:
    """The same sum, up to the order floats were added in."""
    x, y = float(a[0]), float(b[0])  # type: ignore[index]
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1.0)


def query(con: duckdb.DuckDBPyConnection, where: str) -> Callable[[], object]:
    return lambda: con.execute(QUERY.format(where)).fetchone()


def bench_local(data: Path, work: Path, repeat: int) -> dict[str, object]:
    repo = Repository.open(catalog=f"sqlite:///{work}/local.db", home=str(work / "home-local"))
    repo.log_artifact(Artifact("ds").add_dir(data), project="bench")
    # the store lets go of the pages of what it writes; the plain files were just written:
    # read the store once so both sides start from the page cache
    for path in Path(repo.store.url).rglob("*"):
        if path.is_file():
            path.read_bytes()
    plain = duckdb.connect()
    p_first, p_warm, p_sum = timed(query(plain, str(data)), repeat)
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
    con = duckdb.connect()
    con.register_filesystem(fs)
    c_first, c_warm, c_sum = timed(query(con, "cairn://bench/ds"), repeat)
    assert same(c_sum, p_sum), (c_sum, p_sum)
    # projection: a fresh filesystem (empty object cache) runs the query once, first
    # without the block indexes (as on a machine that never read these objects: each
    # object holding the column is fetched whole and checked against its digest), then
    # with them (the blocks around the column's bytes only, each checked)
    fetched = {}
    for case in ("never_read", "indexed"):
        if case == "never_read":
            blocks.settle()  # the first query's indexes, worked out on a thread of their own
            shutil.rmtree(Path(repo.contents.cache_dir) / "blocks", ignore_errors=True)
        fresh = CairnFileSystem(repository=repo, skip_instance_cache=True)
        con2 = duckdb.connect()
        con2.register_filesystem(fresh)
        query(con2, "cairn://bench/ds")()
        fetched[case] = fresh.objects_cache.fetched
    need = column_bytes(data)
    repo.close()
    return {
        "plain_first_s": p_first,
        "plain_warm_s": p_warm,
        "cairn_first_s": c_first,
        "cairn_warm_s": c_warm,
        "ratio_first": c_first / p_first,
        "ratio_warm": c_warm / p_warm,
        "fetched_bytes": fetched["indexed"],
        "fetched_bytes_never_read": fetched["never_read"],
        "column_bytes": need,
        "dataset_bytes": sum(p.stat().st_size for p in data.rglob("*.parquet")),
        "projection_ratio": fetched["indexed"] / need,
        "projection_ratio_never_read": fetched["never_read"] / need,
    }


def bench_dvc(data: Path, work: Path, repeat: int, python: Path) -> dict[str, object]:
    """The same query over DVC's filesystem, in DVC's own virtualenv (`_dvc_fs.py`),
    with the plain files timed again in that process for its ratio."""
    proc = subprocess.run(
        [str(python), str(HERE / "_dvc_fs.py"), "--data", str(data), "--work", str(work / "dvc")]
        + ["--repeat", str(repeat)],
        capture_output=True,
        text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} _dvc_fs.py failed:\n{proc.stderr[-3000:]}")
    r: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert same([r["dvc_sum"]], [r["plain_sum"]]), r
    r["ratio_warm"] = float(r["dvc_warm_s"]) / float(r["plain_warm_s"])  # type: ignore[arg-type]
    r["ratio_first"] = float(r["dvc_first_s"]) / float(r["plain_first_s"])  # type: ignore[arg-type]
    return r


def bench_s3(data: Path, work: Path, repeat: int) -> dict[str, object]:
    import s3fs

    with servers.moto_s3() as s3:
        os.environ.update(s3.environ)
        with servers.s3_bucket(s3) as bucket:
            plain_fs = s3fs.S3FileSystem(**s3.storage_options)
            plain_fs.put(str(data) + "/", f"{bucket}/plain/", recursive=True)
            repo = Repository.open(
                catalog=f"sqlite:///{work}/s3.db",
                store=f"s3://{bucket}/cairn",
                storage_options=s3.storage_options,
                home=str(work / "home-s3"),
            )
            repo.log_artifact(Artifact("ds").add_dir(data), project="bench")
            plain = duckdb.connect()
            plain.register_filesystem(plain_fs)
            con = duckdb.connect()
            con.register_filesystem(CairnFileSystem(repository=repo, skip_instance_cache=True))
            sides = {
                "plain": query(plain, f"s3://{bucket}/plain"),
                "cairn": query(con, "cairn://bench/ds"),
            }
            first, sums = {}, {}
            for side, run in sides.items():
                t = time.perf_counter()
                sums[side] = run()
                first[side] = time.perf_counter() - t
            assert same(sums["cairn"], sums["plain"]), sums
            # warm runs alternate (plain, cairn, then cairn, plain, ...): a change in the
            # machine's load falls on both sides alike
            warm: dict[str, list[float]] = {"plain": [], "cairn": []}
            for i in range(repeat):
                for side in sorted(sides, reverse=i % 2 == 1):
                    t = time.perf_counter()
                    sides[side]()
                    warm[side].append(time.perf_counter() - t)
            repo.close()
    p_warm, c_warm = statistics.median(warm["plain"]), statistics.median(warm["cairn"])
    return {
        "plain_first_s": first["plain"],
        "plain_warm_s": p_warm,
        "cairn_first_s": first["cairn"],
        "cairn_warm_s": c_warm,
        "ratio_first": first["cairn"] / first["plain"],
        "ratio_warm": c_warm / p_warm,
        "warm_runs": warm,
    }


def bench_write(work: Path, frame_bytes: int, repeat: int) -> dict[str, object]:
    rng = np.random.default_rng(1)
    rows = frame_bytes // (5 * 8)
    plain_runs, cairn_runs = [], []
    for i in range(repeat):
        df = pd.DataFrame({f"f{j}": rng.random(rows) for j in range(5)})
        # plain: to_parquet to a local file, then log it (what `cairn put` does)
        home = work / f"write-plain-{i}"
        repo = Repository.open(catalog=f"sqlite:///{home}.db", home=str(home))
        t = time.perf_counter()
        df.to_parquet(work / f"part-{i}.parquet")
        repo.log_artifact(Artifact("w").add_file(work / f"part-{i}.parquet"), project="bench")
        plain_runs.append(time.perf_counter() - t)
        repo.close()
        # cairn: to_parquet straight into cairn://, one version
        home = work / f"write-cairn-{i}"
        options = {"catalog": f"sqlite:///{home}.db", "home": str(home)}
        Repository.open(**options).close()  # the catalog exists, as for the plain side
        t = time.perf_counter()
        df.to_parquet("cairn://bench/w/part.parquet", storage_options=options)
        cairn_runs.append(time.perf_counter() - t)
    plain, cairn = statistics.median(plain_runs), statistics.median(cairn_runs)
    return {"plain_s": plain, "cairn_s": cairn, "ratio": cairn / plain, "frame_bytes": frame_bytes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="local,dvc,s3,write")
    ap.add_argument(
        "--dvc-python",
        default=str(HERE / ".venv-dvc-duckdb" / "bin" / "python"),
        help="interpreter with dvc and duckdb (setup_baselines.sh makes it)",
    )
    ap.add_argument("--s3-mib", type=int, default=256)
    ap.add_argument(
        "--small-row-groups",
        action="store_true",
        help="8 row groups per file (column chunks of ~1/8 of a file's rows): a projection "
        "then costs the store chunks around many small pages",
    )
    ap.add_argument("--json")
    args = ap.parse_args()
    total = (256 if args.quick else 1024) * MiB
    frame = (32 if args.quick else 100) * MiB
    only = set(args.only.split(","))
    out: dict[str, object] = {"dataset_mib": total // MiB, "cpus": os.cpu_count()}
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-fs-") as tmp:
        work = Path(tmp)
        if only & {"local", "projection"}:
            per_file = total // (PARTITIONS * FILES * COLUMNS * 8)
            group = max(1, per_file // 8) if args.small_row_groups else 122_880
            out["row_group_rows"] = group
            data = make_dataset(work / "data", total, group)
            r = bench_local(data, work, args.repeat)
            out["local"] = r
            print("local:", json.dumps(r), flush=True)
            rows.append(("DuckDB sum, local, warm", r["ratio_warm"], 1.3, "x plain files"))
            rows.append(("DuckDB sum, local, first query", r["ratio_first"], 0, "x plain files"))
            rows.append(
                ("projection 1 of 20 columns", r["projection_ratio"], 1.05, "x column bytes")
            )
            rows.append(
                (
                    "projection, objects never read before",
                    r["projection_ratio_never_read"],
                    0,
                    "x column bytes",
                )
            )
            if "dvc" in only:
                d = bench_dvc(data, work, args.repeat, Path(args.dvc_python))
                out["dvc"] = d
                print("dvc:", json.dumps(d), flush=True)
                rows.append(
                    ("DuckDB sum, DVCFileSystem, warm", d["ratio_warm"], 0, "x plain files")
                )
                rows.append(
                    ("DuckDB sum, DVCFileSystem, first query", d["ratio_first"], 0, "x plain files")
                )
                rows.append(
                    (
                        "cairn:// warm / DVCFileSystem warm",
                        float(r["cairn_warm_s"]) / float(d["dvc_warm_s"]),
                        0,
                        "x",
                    )
                )
        if "s3" in only:
            small = min(total, args.s3_mib * MiB)
            per_file = small // (PARTITIONS * FILES * COLUMNS * 8)
            group = max(1, per_file // 8) if args.small_row_groups else 122_880
            data = make_dataset(work / "data-s3", small, group)
            r = bench_s3(data, work, args.repeat)
            out["s3"] = r
            print("s3:", json.dumps(r), flush=True)
            rows.append(("DuckDB sum, S3, warm", r["ratio_warm"], 1.2, "x s3fs"))
            rows.append(("DuckDB sum, S3, first query", r["ratio_first"], 0, "x s3fs"))
        if "write" in only:
            r = bench_write(work, frame, max(1, args.repeat // 2))
            out["write"] = r
            rows.append(("pandas to_parquet", r["ratio"], 1.5, "x to_parquet + log"))
    print("| measurement | ratio | target | |\n|---|---|---|---|")
    failed = False
    for name, ratio, target, unit in rows:
        verdict = "" if not target else ("PASS" if ratio <= target else "FAIL")
        failed |= verdict == "FAIL"
        shown = f"<= {target}" if target else "(info)"
        print(f"| {name} | {ratio:.2f} {unit} | {shown} | {verdict} |")
    print(json.dumps(out, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
