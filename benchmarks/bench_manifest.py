"""Peak memory of put, get, show, diff, verify and gc by file count, and the cost of a draft.

    .venv/bin/python benchmarks/bench_manifest.py                 # 1k, 10k and 100k files
    .venv/bin/python benchmarks/bench_manifest.py --counts 1000,1000000   # 1M: slow

For each count, a folder of that many 512-byte files (100 per folder) is logged into a
fresh repository (SQLite catalog, local store); then each operation runs in a process of
its own, which reports its peak RSS (`ru_maxrss`) and its time. `draft` is
`new_draft()` of that version, 10 files replaced, logged: with format-3 manifests it
reads and rewrites only the shards those paths fall in, so its time should not grow
with the file count. Prints one JSON line per operation and a table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPS = ("put", "draft", "show", "diff", "get", "verify", "gc")


def _repo(root: Path):  # type: ignore[no-untyped-def]
    from cairn import Repository

    return Repository.open(
        catalog=f"sqlite:///{root}/catalog.db", store=str(root / "store"), home=str(root)
    )


def child(op: str, root: Path) -> None:
    """One operation, timed; prints its seconds and this process's peak RSS in MiB."""
    from cairn import Artifact

    t0 = time.perf_counter()
    repo = _repo(root)
    info: dict[str, object] = {}
    if op == "put":
        v = repo.log_artifact(Artifact("data", type="dataset").add_dir(str(root / "data")))
        info["version"] = v.version
    elif op == "draft":
        draft = repo.artifact("data:v0").new_draft()
        for i in range(10):
            local = root / "changes" / f"c{i}.bin"
            draft.add_file(str(local), f"d{i:04d}/f{i:07d}.bin")
        t0 = time.perf_counter()  # the draft itself: open, lease, merge, store, commit
        info["version"] = repo.log_artifact(draft).version
    elif op == "show":
        v = repo.artifact("data:v0")
        info["files"] = sum(1 for _ in v.manifest.values())
        info["listed"] = len(v.file_tree().listdir("d0001", limit=50).items)
    elif op == "diff":
        d = repo.diff("data:v0", "data:v1")
        info["changed"] = len(d.added) + len(d.removed) + len(d.modified)
    elif op == "get":
        out = root / "out"
        shutil.rmtree(out, ignore_errors=True)
        repo.artifact("data:v1").download(str(out))
    elif op == "verify":
        info["ok"] = repo.verify().ok
    elif op == "gc":
        info["deleted"] = repo.gc(grace=0).manifests_deleted
    seconds = time.perf_counter() - t0
    repo.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"op": op, "seconds": round(seconds, 3), "peak_mib": round(peak, 1), **info}))


def _make(root: Path, count: int) -> None:
    data = root / "data"
    block = os.urandom(512 - 8)
    for i in range(count):
        folder = data / f"d{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:07d}.bin").write_bytes(block + i.to_bytes(8, "big"))
    changes = root / "changes"
    changes.mkdir()
    for i in range(10):
        (changes / f"c{i}.bin").write_bytes(os.urandom(512))


def run(count: int, base: Path, ops: list[str]) -> dict[str, dict[str, object]]:
    root = base / f"n{count}"
    root.mkdir()
    _make(root, count)
    rows: dict[str, dict[str, object]] = {}
    for op in ops:
        done = subprocess.run(
            [sys.executable, __file__, "--child", op, "--root", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{op} at {count} files failed:\n{done.stderr[-2000:]}")
        rows[op] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps({"files": count, **rows[op]}), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,10000,100000")
    parser.add_argument("--ops", default=",".join(OPS), help="put and draft come first")
    parser.add_argument("--child", choices=OPS)
    parser.add_argument("--root")
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.root))
        return
    counts = [int(c) for c in args.counts.split(",")]
    ops = [op for op in OPS if op in args.ops.split(",")]
    base = Path(tempfile.mkdtemp(prefix="cairn-bench-manifest-"))
    try:
        table = {n: run(n, base, ops) for n in counts}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{'op':<8}" + "".join(f"{n:>22}" for n in counts))
    for op in ops:
        cells = "".join(
            f"{table[n][op]['peak_mib']:>10} MiB {table[n][op]['seconds']:>7} s" for n in counts
        )
        print(f"{op:<8}{cells}")


if __name__ == "__main__":
    main()
