"""A draft of 10 changes on a large version against the same draft on a 1k-file one.

    python benchmarks/bench_draft.py                           # 1k against 100k, ~2 min
    python benchmarks/bench_draft.py --big 1M --keep           # 1M: its first log takes ~40 min
    python benchmarks/bench_draft.py --big 1M --big-home DIR   # reuse a kept 1M repository

The issue's target (issue 14): a draft with 10 changes of a 1M-file version costs under 1 s
and within 2x of the same draft of a 1k-file version. `bench_scale.py` measures one draft
per size, at moments minutes apart; here the two sizes alternate, `--repeat` times each, so
a change in the machine's load falls on both, and the medians are compared.

Each draft is `bench_scale.py`'s: a child process opens the repository, makes a draft of
`bench/ds:v0`, replaces 10 files spread over the version (the k-th at file k*N/10) and logs
it; *op* is timed after `import cairn`. The replacements get new random bytes before every
run, so each run logs a new version (the same bytes again would find the version that
holds them and log nothing). The datasets are `bench_scale.py`'s (512-byte files in
folders of 1,000), logged with `cairn put` into a fresh `CAIRN_HOME` per size.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_scale import _DRAFT, CHANGED, count_label, make_dataset, parse_count  # noqa: E402

SMALL = 1000


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def env_for(home: Path) -> dict[str, str]:
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_EVENT_PLUGINS": "none"}
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_CACHE_DIR", "CAIRN_PROJECT"):
        env.pop(var, None)
    return env


class Side:
    """One size: its repository (`home`) holding `bench/ds:v0`, and the draft's changes."""

    def __init__(self, args: argparse.Namespace, work: Path, n: int, home: Path | None):
        self.n, self.python = n, args.python
        data = make_dataset(work, n, "nested") if home is None else None
        self.home = home or work / f"home-{n}"
        if data is not None:
            log(f"{count_label(n)}: logging {n:,} files (cairn put)")
            cli = [args.python, "-m", "cairn", "put", str(data.root), "-n", "bench/ds"]
            subprocess.run(cli, env=env_for(self.home), check=True, capture_output=True)
            shutil.rmtree(data.root)
            self.changes = data.changes
        else:  # a kept repository: the changes' names from the same scheme, new files
            self.changes = make_changes(work, n)

    def draft(self) -> float:
        for local, _ in self.changes:
            Path(local).write_bytes(os.urandom(512))
        argv = [self.python, "-c", _DRAFT, "bench/ds:v0"]
        for local, name in self.changes:
            argv += [local, name]
        out = subprocess.run(argv, env=env_for(self.home), check=True, capture_output=True)
        return float(json.loads(out.stdout.decode().strip().splitlines()[-1])["op_s"])


def make_changes(work: Path, n: int) -> list[tuple[str, str]]:
    """The replacements `make_dataset` names for `n` files, without making the files."""
    from bench_scale import _rel

    folder = work / f"changes-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    return [(str(folder / f"c{k}.bin"), _rel(k * n // CHANGED, n, "nested")) for k in range(10)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--big", default="100k", help="files of the large version (default 100k)")
    p.add_argument("--big-home", help="a kept CAIRN_HOME holding bench/ds:v0 of --big files")
    p.add_argument("--repeat", type=int, default=7, help="drafts per size (medians)")
    p.add_argument("--python", default=sys.executable, help="interpreter that imports cairn")
    p.add_argument("--workdir", default=tempfile.gettempdir(), help="parent of the scratch dir")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (its homes)")
    p.add_argument("--json", help="write the samples here")
    args = p.parse_args(argv)
    big = parse_count(args.big)
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-draft-", dir=args.workdir))
    start = time.monotonic()
    try:
        small = Side(args, work, SMALL, None)
        large = Side(args, work, big, Path(args.big_home) if args.big_home else None)
        runs: dict[int, list[float]] = {SMALL: [], big: []}
        for i in range(args.repeat):
            for side in (small, large) if i % 2 == 0 else (large, small):
                runs[side.n].append(side.draft())
                log(f"{count_label(side.n)} draft: op {runs[side.n][-1]:.3f} s")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    s, b = statistics.median(runs[SMALL]), statistics.median(runs[big])
    label = count_label(big)
    print(f"\n{args.repeat} drafts of {CHANGED} changes per size, alternating; op seconds\n")
    print("| version | median | min | max |\n|---|--:|--:|--:|")
    for n, samples in runs.items():
        med = statistics.median(samples)
        print(f"| {count_label(n)} files | {med:.3f} | {min(samples):.3f} | {max(samples):.3f} |")
    ok_time, ok_ratio = b < 1, b / s <= 2
    print("\n| target | measured | result |\n|---|---|---|")
    print(f"| draft at {label} under 1 s | {b:.3f} s | {'PASS' if ok_time else 'FAIL'} |")
    print(
        f"| draft at {label} within 2x of the draft at 1k | {b:.3f} s / {s:.3f} s = {b / s:.2f}x"
        f" | {'PASS' if ok_ratio else 'FAIL'} |"
    )
    load = os.getloadavg()[0]
    print(f"\nRun took {time.monotonic() - start:.0f} s; 1-minute load at the end {load:.1f}.")
    if args.json:
        doc = {"big": big, "small": SMALL, "runs": {str(k): v for k, v in runs.items()}}
        doc["ratio"] = b / s
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if ok_time and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
