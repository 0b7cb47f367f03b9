#!/usr/bin/env python3
"""Benchmark `cairn get` (ArtifactVersion.download) against `cp -r`, and against another cairn.

Two scenarios, as in bench_log.py: (a) one file of random bytes (1 GiB; --quick 128 MiB),
(b) 10,000 files of 4 KiB in 100 folders (--quick 2,000). Both are logged once into a
fresh CAIRN_HOME on the local store; then each step runs in a child process, timed
inside the child after its imports:

- warm: the cache holds the version; a get into a new folder (the checkout itself)
- cold: the cache emptied first; a get into a new folder (fetch from the store + checkout)
- again: the same version into the folder of `warm` (nothing to change)
- `cp -r` of the data into a new folder, the floor

`--baseline SRC` also measures the cairn whose `core/` is in SRC (e.g. `git archive main
core | tar -x -C /tmp/base`), imported first via PYTHONPATH, for before/after ratios;
`--link` adds cairn's `link=True` (hardlinks from the cache). Prints a markdown table of
medians (min-max) and ratios to `cp -r`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys, time
from cairn import Repository
ref, root, link = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
repo = Repository.open()
t0 = time.perf_counter()
v = repo.artifact(ref)
v.download(root, link=True) if link else v.download(root)
print(json.dumps({"op_s": time.perf_counter() - t0}))
"""

_LOG = """
import sys
from cairn import Artifact, Repository
name, path = sys.argv[1], sys.argv[2]
art = Artifact(name)
art.add_dir(path) if __import__("os").path.isdir(path) else art.add_file(path)
print(Repository.open().log_artifact(art, project="bench").ref)
"""


def make_data(work: Path, *, big_bytes: int, files: int) -> dict[str, Path]:
    rnd = random.Random(0)
    big = work / "data-a" / "big.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:
        left = big_bytes
        while left > 0:
            n = min(left, 64 << 20)
            f.write(rnd.randbytes(n))
            left -= n
    many = work / "data-b"
    for i in range(files):
        p = many / f"d{i % 100:02}" / f"f{i:05}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rnd.randbytes(4096))
    return {"a": big.parent, "b": many}


def child(python: str, env: dict[str, str], *args: str) -> float:
    subprocess.run(["sync"], check=True)
    out = subprocess.run(
        [python, "-c", _CHILD, *args], env=env, check=True, capture_output=True, text=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["op_s"])


def cp(src: Path, dst: Path) -> float:
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline", help="a source tree whose core/ is the cairn to compare with")
    p.add_argument("--link", action="store_true", help="also measure link=True")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--workdir", default=tempfile.gettempdir())
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-get-", dir=args.workdir))
    try:
        if args.quick:
            data = make_data(work, big_bytes=128 << 20, files=2000)
        else:
            data = make_data(work, big_bytes=1 << 30, files=10_000)
        home = work / "home"
        env = {**os.environ, "CAIRN_HOME": str(home)}
        for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_CACHE_DIR", "PYTHONPATH"):
            env.pop(var, None)
        refs = {}
        for key, path in data.items():
            out = subprocess.run(
                [args.python, "-c", _LOG, key, str(path)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            refs[key] = out.stdout.strip()
        tools = [("cairn", env, False)]
        if args.link:
            tools.append(("cairn --link", env, True))
        if args.baseline:
            base = {**env, "PYTHONPATH": str(Path(args.baseline) / "core")}
            tools.append(("baseline", base, False))
        results: dict[tuple[str, str, str], list[float]] = {}
        n = 0
        for _ in range(args.repeat):
            for key, ref in refs.items():
                for name, tool_env, link in tools:
                    flag = "1" if link else "0"
                    n += 1
                    warm = work / f"out{n}"
                    child(args.python, tool_env, ref, str(work / f"fill{n}"), flag)  # fill cache
                    results.setdefault((key, name, "warm"), []).append(
                        child(args.python, tool_env, ref, str(warm), flag)
                    )
                    results.setdefault((key, name, "again"), []).append(
                        child(args.python, tool_env, ref, str(warm), flag)
                    )
                    shutil.rmtree(home / "cache")
                    results.setdefault((key, name, "cold"), []).append(
                        child(args.python, tool_env, ref, str(work / f"cold{n}"), flag)
                    )
                    for d in (warm, work / f"fill{n}", work / f"cold{n}"):
                        shutil.rmtree(d)
                n += 1
                results.setdefault((key, "cp -r", "warm"), []).append(
                    cp(data[key], work / f"cp{n}")
                )
                shutil.rmtree(work / f"cp{n}")
        report(results, refs, [t[0] for t in tools])
        if args.json:
            Path(args.json).write_text(
                json.dumps({" | ".join(k): v for k, v in results.items()}, indent=2)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[tuple[str, str, str], list[float]], refs: dict, tools: list[str]) -> None:
    titles = {"a": "(a) one large file", "b": "(b) many 4 KiB files in 100 folders"}
    for key in refs:
        cp_s = statistics.median(results[(key, "cp -r", "warm")])
        print(f"\n#### {titles[key]}\n")
        print("| step | tool | median s | min-max | ÷ cp -r |")
        print("|---|---|--:|--:|--:|")
        print(
            f"| new folder | cp -r | {cp_s:.3f} | {_span(results[(key, 'cp -r', 'warm')])} | 1.00 |"
        )
        for step, label in (
            ("warm", "new folder, cache warm"),
            ("cold", "new folder, cache empty"),
            ("again", "same version again, in place"),
        ):
            for tool in tools:
                xs = results[(key, tool, step)]
                med = statistics.median(xs)
                print(f"| {label} | {tool} | {med:.3f} | {_span(xs)} | {med / cp_s:.2f} |")


def _span(xs: list[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f}"


if __name__ == "__main__":
    main()
