"""Exporting a version of many small files into another repository, against `cp -r` of the
same files (what copying the dataset by hand costs: no checks, no catalog, no history).

    python benchmarks/bench_export.py                 # 20,000 files of 512 bytes
    python benchmarks/bench_export.py --files 100000

A version of N files of 512 bytes (in folders of 1,000) is logged once into a source
repository (local store, SQLite); then, `--repeat` times each, alternating: `cp -r` of the
data folder into a fresh folder, and `Repository.export` of the version into a fresh
repository. Each step runs in a child process, timed after its imports. Prints the medians,
the ratio to `cp -r`, the objects sent, how many files the target store holds (small
objects travel in packs, so far fewer than N) and the child's peak RSS.
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

_CHILD = """
import json, resource, sys, time
from cairn import Repository
src, dst = sys.argv[1], sys.argv[2]
source, target = Repository.open(home=src), Repository.open(home=dst)
t0 = time.perf_counter()
report = source.export("bench/ds", to=target)
op = time.perf_counter() - t0
print(json.dumps({"op_s": op, "sent": report.objects_sent,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _make_source(home: str, data: str, files: int) -> None:
    for i in range(files):
        folder = os.path.join(data, f"d{i // 1000:04d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"f{i:07d}.bin"), "wb") as f:
            f.write(os.urandom(512))
    code = (
        "import sys; from cairn import Artifact, Repository\n"
        "with Repository.open(home=sys.argv[1]) as r:\n"
        "    r.log_artifact(Artifact('ds', type='dataset').add_dir(sys.argv[2]), project='bench')\n"
    )
    subprocess.run([sys.executable, "-c", code, home, data], check=True)


def _count_files(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-export-", dir=args.workdir)
    try:
        src, data = os.path.join(work, "src"), os.path.join(work, "data")
        _make_source(src, data, args.files)
        cp_s: list[float] = []
        export_s: list[float] = []
        sent = stored = 0
        rss: list[float] = []
        for _ in range(args.repeat):
            copy = os.path.join(work, "copy")
            shutil.rmtree(copy, ignore_errors=True)
            t0 = time.perf_counter()
            subprocess.run(["cp", "-r", data, copy], check=True)
            cp_s.append(time.perf_counter() - t0)
            dst = os.path.join(work, "dst")
            shutil.rmtree(dst, ignore_errors=True)
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, src, dst],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            export_s.append(result["op_s"])
            rss.append(result["rss_mib"])
            sent = result["sent"]
            stored = _count_files(os.path.join(dst, "store"))
        cp, ex = statistics.median(cp_s), statistics.median(export_s)
        print(f"#### export of {args.files:,} files of 512 bytes, median of {args.repeat}\n")
        print("| step | s | min-max | / cp -r | objects sent | files written | peak RSS MiB |")
        print("|---|--:|--:|--:|--:|--:|--:|")
        print(
            f"| `cp -r` of the files | {cp:.2f} | {min(cp_s):.2f}-{max(cp_s):.2f} | 1.00 "
            f"| | {_count_files(data):,} | |"
        )
        print(
            f"| cairn export | {ex:.2f} | {min(export_s):.2f}-{max(export_s):.2f} | "
            f"{ex / cp:.2f} | {sent:,} | {stored:,} | {max(rss):.0f} |"
        )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "files": args.files,
                        "cp_s": cp_s,
                        "export_s": export_s,
                        "sent": sent,
                        "target_files": stored,
                        "rss_mib": rss,
                    },
                    f,
                    indent=2,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
