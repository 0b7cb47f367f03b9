"""The DVC side of bench_fs.py: DuckDB's query over DVC's fsspec filesystem.

Runs under the DVC virtualenv with DuckDB added (benchmarks/.venv-dvc-duckdb, made by
setup_baselines.sh; DVC and cairn cannot share one environment). Stdlib, DVC and DuckDB
only. Tracks the dataset with `dvc add` in a fresh `dvc init --no-scm` repository (cache
links are hardlinks, so no byte is copied), removes the workspace copy so every read
goes through DVC's cache as a version not checked out would, and prints one JSON line:
the same query over the plain files and over `dvc.api.DVCFileSystem`, timed in this
process (first query, then the median of `--repeat`), with the sums.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

QUERY = "SELECT sum(c0) FROM read_parquet('{}/*/*.parquet', hive_partitioning = true)"


def timed(fn, repeat: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return first, statistics.median(runs), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import duckdb
    from dvc.api import DVCFileSystem
    from dvc.repo import Repo

    root = Path(args.work) / "dvc-repo"
    root.mkdir(parents=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    Repo.init(str(root), no_scm=True)
    conf = root / ".dvc" / "config"
    conf.write_text(conf.read_text() + "[cache]\n    type = hardlink\n")
    subprocess.run(["cp", "-al", args.data, str(root / "ds")], check=True)  # no byte copied
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "ds"], cwd=root, env=env, check=True)
    add_s = time.perf_counter() - t
    shutil.rmtree(root / "ds")  # read the tracked version from the cache, not the workspace

    class DVCFS(DVCFileSystem):  # type: ignore[misc,valid-type]
        """What DuckDB needs that DVC's filesystem lacks: a protocol (DuckDB routes paths
        by it), sizes of files inside a tracked folder (DVC reports None), and times
        (DVC raises NotImplementedError; a tracked version never changes)."""

        protocol = "dvc"
        sizes: dict[str, int] = {}

        def size(self, path):  # type: ignore[no-untyped-def]
            if path not in self.sizes:
                n = super().size(path)
                if n is None:
                    with self.open(path, "rb") as f:
                        n = f.seek(0, 2)
                self.sizes[path] = n
            return self.sizes[path]

        def modified(self, path):  # type: ignore[no-untyped-def]
            return datetime.fromtimestamp(0, timezone.utc)

    plain = duckdb.connect()
    p_first, p_warm, p_sum = timed(
        lambda: plain.execute(QUERY.format(args.data)).fetchone(), args.repeat
    )
    con = duckdb.connect()
    con.register_filesystem(DVCFS(repo=str(root)))
    d_first, d_warm, d_sum = timed(
        lambda: con.execute(QUERY.format("dvc://ds")).fetchone(), args.repeat
    )
    print(
        json.dumps(
            {
                "plain_first_s": p_first,
                "plain_warm_s": p_warm,
                "dvc_first_s": d_first,
                "dvc_warm_s": d_warm,
                "plain_sum": float(p_sum[0]),  # type: ignore[index]
                "dvc_sum": float(d_sum[0]),  # type: ignore[index]
                "dvc_add_s": add_s,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
