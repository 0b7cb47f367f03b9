"""The store log's cost: logging with and without it, and `recover` of 10,000 versions.

    python benchmarks/bench_storelog.py                 # 10,000 files, 1,000 versions, 10k recover
    python benchmarks/bench_storelog.py --quick         # 2,000 files, 200 versions, 2k recover
    python benchmarks/bench_storelog.py --json out.json

(a) the first log of 10,000 small files (4 KiB) into a fresh repository, and (b) 1,000
versions of one collection (one file changed each time, `log_artifact` per version), each
with the log on (as shipped) and off (the catalog's journal unset: what cairn did before),
alternating on/off in the same run so that the ratio means something on a loaded machine.
(c) `recover` of a log of 10,000 committed versions into an empty SQLite catalog, on a
local store and on S3 (moto server, tests/servers.py), from the records as written and
again after `compact-log`. The versions are committed through the catalog-write layer
(records.commit: the same record per transaction a log writes) without uploading files,
into the local store; its log objects are then copied into the bucket. Recover reads what
a real log holds: one record per version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import servers  # noqa: E402  (tests/servers.py: the moto server the test suite uses)

from cairn import Artifact, Repository  # noqa: E402
from cairn.catalog import Catalog, records  # noqa: E402
from cairn.engine.recover import recover  # noqa: E402
from cairn.engine.storelog import StoreLog, compact  # noqa: E402
from cairn.foundation.manifest import Entry, Manifest  # noqa: E402
from cairn.storage import open_store  # noqa: E402

KiB = 1 << 10


def small_files(root: Path, n: int) -> Path:
    for i in range(n):
        folder = root / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(os.urandom(4 * KiB))
    return root


#: seconds spent writing records (StoreLog.flush and the compactions after commits),
#: summed over a scenario's runs with the log: its cost measured directly, which a
#: loaded machine disturbs less than the difference of two wall times
LOG_SECONDS = [0.0]


class TimedLog(StoreLog):
    def flush(self, conn, entries):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        super().flush(conn, entries)
        LOG_SECONDS[0] += time.perf_counter() - start

    def committed(self) -> None:
        start = time.perf_counter()
        super().committed()
        LOG_SECONDS[0] += time.perf_counter() - start


def open_repo(home: Path, *, log: bool) -> Repository:
    repo = Repository.open(home=str(home))
    # the baseline writes no record; the other writes them, timed
    repo.catalog.journal = TimedLog(repo.store) if log else None
    return repo


def first_log(work: Path, data: Path, *, log: bool) -> float:
    home = work / f"first-{log}-{time.monotonic_ns()}"
    repo = open_repo(home, log=log)
    art = Artifact("files", type="dataset").add_dir(str(data))
    start = time.perf_counter()
    repo.log_artifact(art, project="bench")
    took = time.perf_counter() - start
    repo.close()
    shutil.rmtree(home)
    return took


def many_versions(work: Path, n: int, *, log: bool) -> float:
    home = work / f"versions-{log}-{time.monotonic_ns()}"
    data = work / f"vdata-{log}"
    data.mkdir(exist_ok=True)
    (data / "fixed.bin").write_bytes(b"x" * 4 * KiB)
    repo = open_repo(home, log=log)
    start = time.perf_counter()
    for i in range(n):
        (data / "changing.txt").write_text(f"version {i}")
        art = Artifact("model", type="model", metadata={"step": i}).add_dir(str(data))
        repo.log_artifact(art, project="bench")
    took = time.perf_counter() - start
    repo.close()
    shutil.rmtree(home)
    shutil.rmtree(data)
    return took


def paired(label: str, repeat: int, run: Callable[..., float], *args: object) -> dict[str, object]:
    """Median of `repeat` runs each way, alternating on and off."""
    on: list[float] = []
    off: list[float] = []
    LOG_SECONDS[0] = 0.0
    for _ in range(repeat):
        off.append(run(*args, log=False))
        on.append(run(*args, log=True))
    spent = LOG_SECONDS[0] / sum(on)
    row = {
        "scenario": label,
        "without log s": statistics.median(off),
        "with log s": statistics.median(on),
        "runs": repeat,
    }
    row["ratio"] = row["with log s"] / row["without log s"]  # type: ignore[operator]
    row["share writing the log"] = spent
    print(
        f"{label}: without {row['without log s']:.3f}s, with {row['with log s']:.3f}s, "
        f"ratio {row['ratio']:.3f}; {spent:.2%} of the time with the log spent writing it",
        flush=True,
    )
    return row


def build_log(store_url: str, options: dict | None, catalog_url: str, n: int) -> None:
    """n committed versions of one collection, each its own transaction and record."""
    store = open_store(store_url, options)
    catalog = Catalog(catalog_url)
    catalog.journal = StoreLog(store)
    for i in range(n):
        digest = os.urandom(32).hex()
        manifest = Manifest([Entry(path=f"f{i}.bin", size=4096, digest=digest)])
        with catalog.write() as conn:
            coll = records.collection(conn, "bench", "model", type="model", create=True)
            records.save_manifest(conn, manifest, coll.project_id)
            records.commit(
                conn,
                coll,
                manifest,
                description=f"version {i}",
                metadata={"step": i, "loss": 1 / (i + 1)},
                run_id=None,
                namespace="bench",
            )
    catalog.close()
    store.close()


def timed_recover(store_url: str, options: dict | None, target: str) -> float:
    store = open_store(store_url, options)
    catalog = Catalog(target)
    start = time.perf_counter()
    report = recover(store, catalog)
    took = time.perf_counter() - start
    assert report.versions > 0, report
    catalog.close()
    store.close()
    return took


def recover_rows(work: Path, n: int, s3: servers.S3Endpoint | None, bucket: str) -> list:
    """recover of n versions from a local store's log, then from the same log in S3."""
    local = str(work / "store-local")
    start = time.perf_counter()
    build_log(local, None, f"sqlite:///{work}/source.db", n)
    print(f"built a log of {n} versions in {time.perf_counter() - start:.1f}s", flush=True)
    stores: list[tuple[str, str, dict | None]] = [("local", local, None)]
    if s3 is not None:
        # the same log objects in a bucket (sent in batches: setup, not measured)
        remote = f"s3://{bucket}/store"
        source, target = open_store(local), open_store(remote, s3.storage_options)
        keys = [i.key for i in source.list("")]
        for i in range(0, len(keys), 500):
            got = source.get_many(keys[i : i + 500])
            target.put_many(got.ok).raise_first()
        source.close()
        target.close()
        stores.append(("s3 (moto)", remote, s3.storage_options))
    rows = []
    for where, url, options in stores:
        took = timed_recover(url, options, f"sqlite:///{work}/r1-{where[:2]}.db")
        rows.append({"store": where, "log": f"{n} records", "recover s": took})
        print(f"recover {n} versions from {n} records on {where}: {took:.2f}s", flush=True)
    for where, url, options in stores:
        store = open_store(url, options)
        start = time.perf_counter()
        compact(store)
        compact_s = time.perf_counter() - start
        store.close()
        took = timed_recover(url, options, f"sqlite:///{work}/r2-{where[:2]}.db")
        rows.append(
            {"store": where, "log": "1 snapshot", "recover s": took, "compact s": compact_s}
        )
        print(
            f"compact-log {compact_s:.2f}s; recover from its snapshot on {where}: {took:.2f}s",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--versions", type=int, help="versions in scenario (b)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", default="first,versions,recover")
    args = parser.parse_args()
    files, versions, recovered = (2000, 200, 2000) if args.quick else (10_000, 1000, 10_000)
    only = set(args.only.split(","))
    versions = args.versions or versions
    out: dict[str, object] = {"load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-storelog-") as tmp:
        work = Path(tmp)
        os.environ["CAIRN_HOME"] = str(work / "home")
        paired_rows = []
        if "first" in only:
            data = small_files(work / "small", files)
            paired_rows.append(
                paired(f"first log of {files} files of 4 KiB", args.repeat, first_log, work, data)
            )
        if "versions" in only:
            paired_rows.append(
                paired(
                    f"{versions} versions of one collection",
                    args.repeat,
                    many_versions,
                    work,
                    versions,
                )
            )
        out["log"] = paired_rows
        if "recover" in only:
            with servers.moto_s3() as s3, servers.s3_bucket(s3) as bucket:
                os.environ.update(s3.environ)
                out["recover"] = recover_rows(work, recovered, s3, bucket)
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
