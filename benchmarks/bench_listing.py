"""Listing a store on S3: cairn's streamed listing against plain fsspec `find`, one moto server.

    python benchmarks/bench_listing.py                      # 20,000 objects, 256 folders
    python benchmarks/bench_listing.py --objects 100000 --latency-ms 10

What `cairn gc`, `verify --catalog` and `recover` do first: list every object under
`objects/`. The store keeps objects in 256 folders `objects/xx/`. Both sides list the same
bucket prefix in the same process, alternately, `--repeat` times:
- fsspec: `fs.find(prefix, detail=True)` sorted by key, what cairn did before (the whole
  listing is one dict in memory before the first object is seen);
- cairn: `open_store(...).list("objects/")` (a folder at a time, up to 16 folders listed
  at once ahead of the walk, each folder's entries dropped once walked).
Peak memory is Python's own allocations while listing (tracemalloc), time the median
wall-clock. `--latency-ms` puts a relay in front of the server that holds each reply
(tests/servers.py has no real round trip on loopback). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
import servers  # noqa: E402  (tests/servers.py: the moto server the test suite uses)
from bench_cloud import latency_relay  # noqa: E402


def fill(client, bucket: str, count: int) -> None:  # type: ignore[no-untyped-def]
    """`count` empty objects under objects/xx/ (xx: 256 folders), many requests at once."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"objects/{i % 256:02x}/{i:062x}" for i in range(count)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b""), keys))


def measure(run: Callable[[], Iterable[object]]) -> tuple[float, float, int]:
    """(seconds, peak MiB allocated while listing, objects listed)."""
    tracemalloc.start()
    started = time.perf_counter()
    n = sum(1 for _ in run())
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
    tracemalloc.stop()
    return seconds, peak, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()

    import s3fs

    from cairn.storage import open_store

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(servers.moto_s3())
        bucket = "cairn-bench-listing"
        server.client().create_bucket(Bucket=bucket)
        print(f"putting {args.objects:,} objects ...", flush=True)
        fill(server.client(), bucket, args.objects)
        s3 = server
        if args.latency_ms:
            s3 = servers.S3Endpoint(
                stack.enter_context(latency_relay(server.endpoint_url, args.latency_ms / 1000))
            )
        options = dict(s3.storage_options, use_listings_cache=False)
        fs = s3fs.S3FileSystem(**options)
        store = open_store(f"s3://{bucket}", s3.storage_options)

        def plain() -> Iterable[object]:
            return sorted(fs.find(f"{bucket}/objects", detail=True).items())

        def cairn() -> Iterable[object]:
            return store.list("objects/")

        samples: dict[str, list[tuple[float, float, int]]] = {"fsspec": [], "cairn": []}
        for _ in range(args.repeat):
            for name, run in (("fsspec", plain), ("cairn", cairn)):
                samples[name].append(measure(run))
    rows = {
        name: (
            statistics.median(s for s, _, _ in got),
            max(p for _, p, _ in got),
            got[0][2],
        )
        for name, got in samples.items()
    }
    assert rows["fsspec"][2] == rows["cairn"][2] == args.objects, rows
    print(
        f"\n{args.objects:,} objects in 256 folders, moto S3, latency {args.latency_ms:g} ms,"
        f" median of {args.repeat}\n"
    )
    print("| listing | seconds | peak MiB allocated | ÷ fsspec time | ÷ fsspec memory |")
    print("|---|--:|--:|--:|--:|")
    base_s, base_m, _ = rows["fsspec"]
    for name, (s, m, _) in rows.items():
        print(f"| {name} | {s:.2f} | {m:.1f} | {s / base_s:.2f}x | {m / base_m:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
