#!/usr/bin/env python3
"""Benchmark `cairn get` (ArtifactVersion.download) against `cp -r`, `dvc checkout` and
another cairn.

Three scenarios: as in bench_log.py (a) one file of random bytes (1 GiB; --quick 128 MiB),
(b) 10,000 files of 4 KiB in 100 folders (--quick 2,000); and (c) 100,000 files of 512
bytes in 100 folders (--quick 20,000). Each is logged once into a fresh CAIRN_HOME on
the local store; then each step runs in a child process, timed inside the child after
its imports (*op*; the whole child, start-up included, is *wall*):

- warm: the cache holds the version; a get into a new folder (the checkout itself); the
  cache's files are read once first, as `cp -r`'s source is, so both copy from memory,
  and every timed step starts after a sync (`settle`)
- cold: the cache emptied first; a get into a new folder (fetch from the store + checkout)
- again: the same version into the folder of `warm` (nothing to change)
- `cp -r` of the data into a new folder, the floor
- `dvc checkout` (with --dvc, default benchmarks/.venv-dvc/bin/dvc if present): the data
  `dvc add`ed once into a DVC project of its own (untimed), then per round the data
  folder removed and `dvc checkout` timed as a whole command, copying from DVC's cache
  (ext4 has no reflinks); compared with cairn's *wall* time, start-up included in both

`--baseline SRC` also measures the cairn whose `core/` is in SRC (e.g. `git archive main
core | tar -x -C /tmp/base`), imported first via PYTHONPATH, for before/after ratios;
`--link` adds cairn's `link=True` (hardlinks from the cache). Prints a markdown table of
medians (min-max), ratios to `cp -r` and `dvc checkout`, and each child's peak RSS.
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
import json, resource, sys, time
from cairn import Repository
ref, root, link = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
repo = Repository.open()
t0 = time.perf_counter()
v = repo.artifact(ref)
v.download(root, link=True) if link else v.download(root)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"op_s": time.perf_counter() - t0, "rss_mb": rss}))
"""

_LOG = """
import sys
from cairn import Artifact, Repository
name, path = sys.argv[1], sys.argv[2]
art = Artifact(name)
art.add_dir(path) if __import__("os").path.isdir(path) else art.add_file(path)
print(Repository.open().log_artifact(art, project="bench").ref)
"""


TITLES = {
    "a": "(a) one large file",
    "b": "(b) many 4 KiB files in 100 folders",
    "c": "(c) very many 512-byte files in 100 folders",
}


def make_data(work: Path, keys: str, *, big_bytes: int, files: int, tiny: int) -> dict[str, Path]:
    rnd = random.Random(0)
    out: dict[str, Path] = {}
    if "a" in keys:
        big = work / "data-a" / "big.bin"
        big.parent.mkdir(parents=True)
        with open(big, "wb") as f:
            left = big_bytes
            while left > 0:
                n = min(left, 64 << 20)
                f.write(rnd.randbytes(n))
                left -= n
        out["a"] = big.parent
    for key, count, size in (("b", files, 4096), ("c", tiny, 512)):
        if key not in keys:
            continue
        many = work / f"data-{key}"
        for d in range(100):
            (many / f"d{d:02}").mkdir(parents=True)
        for i in range(count):
            (many / f"d{i % 100:02}" / f"f{i:06}.bin").write_bytes(rnd.randbytes(size))
        out[key] = many
    return out


def child(python: str, env: dict[str, str], *args: str) -> tuple[float, float, float]:
    """(op seconds, wall seconds, peak RSS in MB) of one get in a child process."""
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    out = subprocess.run(
        [python, "-c", _CHILD, *args], env=env, check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return float(got["op_s"]), wall, float(got["rss_mb"])


def dvc_project(dvc: str, data: Path, project: Path) -> Path:
    """A DVC project at `project` whose cache holds a copy of `data` (`dvc add`, untimed)."""
    project.mkdir()
    shutil.copytree(data, project / "data")
    for args in (["init", "--no-scm", "-q"], ["add", "-q", "data"]):
        subprocess.run([dvc, *args], cwd=project, env=_DVC_ENV, check=True)
    return project


def dvc_checkout(dvc: str, project: Path) -> float:
    """Seconds of `dvc checkout` into the project, its data folder removed first."""
    shutil.rmtree(project / "data")
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    subprocess.run([dvc, "checkout", "-q"], cwd=project, env=_DVC_ENV, check=True)
    return time.perf_counter() - t0


_DVC_ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
_DEFAULT_DVC = Path(__file__).resolve().parent / ".venv-dvc" / "bin" / "dvc"


def settle(source: Path | None) -> None:
    """Start a timed step from the same state on every side: the files under `source`
    read once (a copy from them reads memory, not the disk) and nothing earlier still
    being written back.

    cairn writes its cache files past the page cache (O_DIRECT, fadvise), while the data
    `cp -r` copies was just written and logged; and a step that runs while the gigabyte an
    earlier step wrote is flushed is throttled by the kernel (dirty-page balancing), one
    that runs after a deletion is not. Unsettled, the 1 GiB warm get measured 2.4-2.8x
    `cp -r`, with the copy itself the same `copy_file_range` on both sides."""
    if source is not None:
        for root, _, files in os.walk(source):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    while f.read(8 << 20):
                        pass
    os.sync()


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
    p.add_argument("--scenarios", default="abc", help="which of a, b, c to run (default all)")
    p.add_argument(
        "--dvc",
        default=str(_DEFAULT_DVC) if _DEFAULT_DVC.exists() else None,
        help="the dvc command for the `dvc checkout` baseline ('' to leave it out)",
    )
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--workdir", default=tempfile.gettempdir())
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-get-", dir=args.workdir))
    try:
        if args.quick:
            sizes = {"big_bytes": 128 << 20, "files": 2000, "tiny": 20_000}
        else:
            sizes = {"big_bytes": 1 << 30, "files": 10_000, "tiny": 100_000}
        data = make_data(work, args.scenarios, **sizes)
        projects = {}
        if args.dvc:
            projects = {k: dvc_project(args.dvc, d, work / f"dvc-{k}") for k, d in data.items()}
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
        rss: dict[tuple[str, str], list[float]] = {}
        n = 0
        for _ in range(args.repeat):
            for key, ref in refs.items():
                for name, tool_env, link in tools:
                    flag = "1" if link else "0"
                    n += 1
                    warm = work / f"out{n}"
                    child(args.python, tool_env, ref, str(work / f"fill{n}"), flag)  # fill cache
                    for step, into in (("warm", warm), ("again", warm), ("cold", None)):
                        if into is None:
                            shutil.rmtree(home / "cache")
                            into = work / f"cold{n}"
                        settle(home / "cache" if step == "warm" else None)
                        op, wall, peak = child(args.python, tool_env, ref, str(into), flag)
                        results.setdefault((key, name, step), []).append(op)
                        results.setdefault((key, name, step + " wall"), []).append(wall)
                        rss.setdefault((key, name), []).append(peak)
                    for d in (warm, work / f"fill{n}", work / f"cold{n}"):
                        shutil.rmtree(d)
                n += 1
                settle(data[key])
                results.setdefault((key, "cp -r", "warm"), []).append(
                    cp(data[key], work / f"cp{n}")
                )
                shutil.rmtree(work / f"cp{n}")
                if key in projects:
                    results.setdefault((key, "dvc checkout", "warm"), []).append(
                        dvc_checkout(args.dvc, projects[key])
                    )
        report(results, rss, refs, [t[0] for t in tools])
        if args.json:
            Path(args.json).write_text(
                json.dumps({" | ".join(k): v for k, v in results.items()}, indent=2)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(
    results: dict[tuple[str, str, str], list[float]],
    rss: dict[tuple[str, str], list[float]],
    refs: dict,
    tools: list[str],
) -> None:
    for key in refs:
        cp_s = statistics.median(results[(key, "cp -r", "warm")])
        dvc = results.get((key, "dvc checkout", "warm"))
        dvc_s = statistics.median(dvc) if dvc else None
        print(f"\n#### {TITLES[key]}\n")
        print("| step | tool | median s | min-max | ÷ cp -r | wall s | ÷ dvc checkout | peak MB |")
        print("|---|---|--:|--:|--:|--:|--:|--:|")
        xs = results[(key, "cp -r", "warm")]
        print(f"| new folder | cp -r | {cp_s:.3f} | {_span(xs)} | 1.00 | | | |")
        if dvc and dvc_s:
            print(
                f"| new folder, from its cache | dvc checkout | {dvc_s:.3f} | {_span(dvc)} "
                f"| {dvc_s / cp_s:.2f} | {dvc_s:.3f} | 1.00 | |"
            )
        for step, label in (
            ("warm", "new folder, cache warm"),
            ("cold", "new folder, cache empty"),
            ("again", "same version again, in place"),
        ):
            for tool in tools:
                xs = results[(key, tool, step)]
                med = statistics.median(xs)
                wall = statistics.median(results[(key, tool, step + " wall")])
                vs_dvc = f"{wall / dvc_s:.2f}" if dvc_s and step == "warm" else ""
                peak = max(rss[(key, tool)])
                print(
                    f"| {label} | {tool} | {med:.3f} | {_span(xs)} | {med / cp_s:.2f} "
                    f"| {wall:.3f} | {vs_dvc} | {peak:.0f} |"
                )


def _span(xs: list[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f}"


if __name__ == "__main__":
    main()
