"""The UI on a large version: its first page of files against `cairn show` listing them all.

    python benchmarks/bench_ui.py                  # a version of 100,000 files
    python benchmarks/bench_ui.py --files 20000 --json out.json

One repository is built once (100 folders of small files, one version). Then, per repetition:
`cairn show REF` as a user runs it (a child process, its output to a file), and a fresh
`cairn ui` server, warmed up on a one-file version's page, asked for the large version's
Files page (its first page: the root's folders) when nothing of that version is cached, then
for the first page of one folder of it (the file tree is cached by then). Medians are
reported; the target is that first Files page in under 1/10 of `cairn show`'s time,
measured in the same run. Exit code 1 if it fails.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET = 0.1
REF = "bench/big:v0"
PAGE = "/projects/bench/artifacts/big/v0/files"
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def build(home: Path, files: int, folders: int) -> float:
    """Log one version of `files` small files in `folders` folders; returns seconds."""
    from cairn import Artifact, Repository

    data = home.parent / "data"
    per = -(-files // folders)
    for i in range(files):
        folder = data / f"part-{i // per:03d}"
        if i % per == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"row-{i:06d}.json").write_text(f'{{"id": {i}}}\n')
    start = time.perf_counter()
    with Repository.open(home=str(home)) as repo:
        art = Artifact("big", type="dataset")
        art.add_dir(str(data))
        v = repo.log_artifact(art, project="bench")
        assert v.file_count == files, v
        took = time.perf_counter() - start
        small = Artifact("small", type="dataset")
        with small.new_file("one.txt") as f:
            f.write("one\n")
        repo.log_artifact(small, project="bench")
    return took


def cairn(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cairn", "--home", str(home), *args]


def time_show(home: Path, out: Path) -> float:
    start = time.perf_counter()
    with out.open("w") as f:
        subprocess.run(cairn(home, "show", REF), stdout=f, check=True, env=_env())
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with _http.open(url, timeout=300) as r:
        body = r.read()
        assert r.status == 200, r.status
    return time.perf_counter() - start, body


def time_ui(home: Path) -> tuple[float, float]:
    """A fresh server, warmed up on another version's Files page (its templates compiled,
    its connections open): the large version's Files page when nothing of it is cached,
    then one folder's page."""
    port = _free_port()
    server = subprocess.Popen(
        cairn(home, "ui", "--port", str(port)), env=_env(), stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # up when the static stylesheet answers: nothing of the version is read
            try:
                _get(f"{base}/static/app.css")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        _get(f"{base}/projects/bench/artifacts/small/v0/files")
        cold, body = _get(base + PAGE)
        assert b"part-000" in body, body[:500]
        warm, body = _get(f"{base}{PAGE}/part-042")
        assert b"row-" in body
        return cold, warm
    finally:
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--workdir", type=Path, help="parent of the scratch folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ui-", dir=args.workdir) as scratch:
        home = Path(scratch) / "home"
        built = build(home, args.files, args.folders)
        listing = Path(scratch) / "show.txt"
        show, cold, warm = [], [], []
        for _ in range(args.repeat):
            show.append(time_show(home, listing))
            c, w = time_ui(home)
            cold.append(c)
            warm.append(w)
        lines = sum(1 for _ in listing.open())

    s, c, w = (statistics.median(x) for x in (show, cold, warm))
    ratio = c / s
    print(f"\n{args.files:,} files in {args.folders} folders (logged in {built:.1f} s); ", end="")
    print(f"median of {args.repeat}, load {os.getloadavg()[0]:.1f}\n")
    print("| what | seconds | ÷ `cairn show` |")
    print("|---|---|---|")
    print(f"| `cairn show {REF}` ({lines:,} lines) | {s:.2f} | 1 |")
    print(f"| its Files page, first request for it | {c:.3f} | {ratio:.3f} |")
    print(f"| a folder's page (1,000 files), tree cached | {w:.3f} | {w / s:.3f} |")
    ok = ratio < TARGET
    print(
        f"\n{'PASS' if ok else 'FAIL'}: first page of files in {ratio:.3f} of `cairn show` "
        f"(target < {TARGET})"
    )
    if args.json:
        doc = {
            "files": args.files,
            "folders": args.folders,
            "show_s": show,
            "files_page_cold_s": cold,
            "folder_page_warm_s": warm,
            "ratio": ratio,
            "target": TARGET,
            "pass": ok,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
