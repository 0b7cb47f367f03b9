"""Uploading to S3: `cairn put` against plain fsspec and `dvc push`, on one moto server.

    python benchmarks/bench_cloud.py --quick          # 128 MiB file, 2,000 small files
    python benchmarks/bench_cloud.py                  # 1 GiB file, 10,000 files of 4 KiB
    python benchmarks/bench_cloud.py --only cairn,fsspec --json out.json
    python benchmarks/bench_cloud.py --latency-ms 10   # replies held 10 ms, like a real bucket

Starts a moto S3 server on 127.0.0.1 (tests/servers.py), generates (a) one large file of
random bytes and (b) many 4 KiB files in 100 folders, then uploads each to its own prefix:
- cairn: `cairn put DIR` into a new repository on s3://bucket/cairn (SQLite catalog);
- fsspec: s3fs `put_file` of every file in a loop, the way the sequential script is written;
- dvc: `dvc add` then `dvc push` to an s3:// remote on the same server (timed apart).
Each tool runs as its own process, timed from the outside (imports included). Prints a
markdown table with ratios (other tool's time / cairn's) and PASS/FAIL per target:
at least 3x plain fsspec on (b), ahead of `dvc push` on both. It also reports the CPU time
the server spent on each tool's requests: moto serves them on about one core, so that time
bounds how fast any client can go against it (the fsspec loop's time divided by it is the
best ratio reachable). `--latency-ms` puts a relay in front of the server that holds each
reply, since on loopback a round trip costs nothing and a real bucket's costs milliseconds.
DVC comes from benchmarks/.venv-dvc (`dvc==3.67.1 dvc-s3==3.3.0`); made here if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
import servers  # noqa: E402  (tests/servers.py: the moto server the test suite uses)

MiB = 1 << 20
DVC_VENV = HERE / ".venv-dvc"
DVC_PINS = ["dvc==3.67.1", "dvc-s3==3.3.0"]
TOOLS = ("cairn", "fsspec", "dvc")

FSSPEC_LOOP = """
import json, os, sys, s3fs
src, dest, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
fs = s3fs.S3FileSystem(**options)
for folder, _, files in os.walk(src):
    for name in files:
        path = os.path.join(folder, name)
        fs.put_file(path, dest + "/" + os.path.relpath(path, src))
"""


@dataclass
class Result:
    scenario: str
    tool: str
    seconds: float
    #: CPU seconds the S3 server spent serving this run
    server_cpu: float | None = None


@contextlib.contextmanager
def latency_relay(upstream: str, delay: float) -> Iterator[str]:
    """A TCP relay to `upstream` that holds each reply `delay` seconds: a network round trip.

    Yields the relay's URL. Runs on an event loop in a thread of this (otherwise idle)
    process; relaying costs far less CPU per request than the S3 server's own handling.
    """
    host, port = upstream.split("//", 1)[1].rsplit(":", 1)
    loop = asyncio.new_event_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float):
        try:
            while data := await reader.read(1 << 20):
                if hold:
                    await asyncio.sleep(hold)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_r, up_w, 0.0), pipe(up_r, client_w, delay))

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def server_pid(endpoint_url: str) -> int | None:
    """The moto server process listening on the endpoint's port (found in /proc)."""
    port = endpoint_url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"moto_server" in a for a in argv) and port.encode() in argv:
            return int(entry.name)
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Run a command to completion; its wall time in seconds. A failure stops the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def make_data(work: Path, big_bytes: int, small_files: int) -> tuple[Path, Path]:
    big = work / "a_large"
    big.mkdir()
    with open(big / "big.bin", "wb") as f:
        for _ in range(big_bytes // (64 * MiB)):
            f.write(os.urandom(64 * MiB))
        f.write(os.urandom(big_bytes % (64 * MiB)))
    small = work / "b_small"
    for i in range(small_files):
        folder = small / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(4096))
    return big, small


def ensure_dvc() -> Path:
    dvc = DVC_VENV / "bin" / "dvc"
    probe = DVC_VENV / "bin" / "python"
    ok = (
        dvc.exists()
        and subprocess.run([str(probe), "-c", "import dvc_s3"], capture_output=True).returncode == 0
    )
    if not ok:
        print(f"installing {' '.join(DVC_PINS)} into {DVC_VENV} ...", flush=True)
        if not probe.exists():
            subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        subprocess.run([str(probe), "-m", "pip", "install", "-q", *DVC_PINS], check=True)
    return dvc


def bench_cairn(s3: servers.S3Endpoint, bucket: str, data: Path, work: Path) -> float:
    home = work / f"cairn-home-{data.name}"
    env = {
        **os.environ,
        "CAIRN_HOME": str(home),
        "CAIRN_STORE": f"s3://{bucket}/cairn-{data.name}",
        "CAIRN_STORAGE_OPTIONS": json.dumps(s3.storage_options),
    }
    env.pop("CAIRN_CATALOG", None)
    cmd = [sys.executable, "-m", "cairn", "put", str(data), "-n", f"bench/{data.name}"]
    return run([*cmd, "-t", "dataset"], env=env)


def bench_fsspec(s3: servers.S3Endpoint, bucket: str, data: Path) -> float:
    dest = f"{bucket}/fsspec-{data.name}"
    options = json.dumps(s3.storage_options)
    return run([sys.executable, "-c", FSSPEC_LOOP, str(data), dest, options])


def bench_dvc(dvc: Path, s3: servers.S3Endpoint, bucket: str, data: Path) -> tuple[float, float]:
    """(dvc add seconds, dvc push seconds) of `data`, in a DVC project next to it."""
    project = data.parent
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    if not (project / ".dvc").exists():
        run([str(dvc), "init", "--no-scm", "-q"], cwd=project, env=env)
        for args in (
            ["remote", "add", "-d", "bench", f"s3://{bucket}/dvc"],
            ["remote", "modify", "bench", "endpointurl", s3.endpoint_url],
            ["remote", "modify", "bench", "access_key_id", s3.key],
            ["remote", "modify", "bench", "secret_access_key", s3.secret],
        ):
            run([str(dvc), *args], cwd=project, env=env)
    add = run([str(dvc), "add", "-q", data.name], cwd=project, env=env)
    push = run([str(dvc), "push", "-q", f"{data.name}.dvc"], cwd=project, env=env)
    return add, push


def report(results: list[Result], labels: dict[str, str]) -> list[str]:
    by = {(r.scenario, r.tool): r.seconds for r in results}
    cpu = {(r.scenario, r.tool): r.server_cpu for r in results}
    lines = [
        "| scenario | cairn put | fsspec put (loop) | dvc push | dvc add + push "
        "| fsspec / cairn | dvc push / cairn | dvc add+push / cairn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for scenario, label in labels.items():
        c = by.get((scenario, "cairn"))
        f = by.get((scenario, "fsspec"))
        p = by.get((scenario, "dvc push"))
        a = by.get((scenario, "dvc add"))

        def cell(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f} s"

        def ratio(x: float | None, c: float | None = c) -> str:
            return "-" if x is None or not c else f"{x / c:.2f}x"

        total = None if p is None or a is None else p + a
        lines.append(
            f"| {label} | {cell(c)} | {cell(f)} | {cell(p)} | {cell(total)} "
            f"| {ratio(f)} | {ratio(p)} | {ratio(total)} |"
        )
        if c and f and scenario == "b":
            ok = f / c >= 3
            verdicts.append(
                f"{'PASS' if ok else 'FAIL'}: (b) at least 3x plain fsspec: {f / c:.2f}x"
            )
        if c and p:
            ok = p > c
            verdicts.append(
                f"{'PASS' if ok else 'FAIL'}: ({scenario}) ahead of dvc push: {p / c:.2f}x"
            )
    tools = list(dict.fromkeys(r.tool for r in results))
    lines += [
        "",
        "S3 server CPU per run (moto handles requests on one core at a time: the time any "
        "client needs for these requests is at least this):",
        "",
        "| scenario | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for scenario, label in labels.items():
        cells = []
        for t in tools:
            x = cpu.get((scenario, t))
            cells.append("-" if x is None else f"{x:.1f} s")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    f, server = by.get(("b", "fsspec")), cpu.get(("b", "cairn"))
    if f and server:
        verdicts.append(
            f"info: (b) the server alone needs {server:.1f} s of CPU for cairn's requests, so "
            f"no client can beat the fsspec loop by more than {f / server:.2f}x on this server"
        )
    return lines + [""] + verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB and 2,000 files")
    parser.add_argument("--only", default=",".join(TOOLS), help="tools: cairn,fsspec,dvc")
    parser.add_argument("--scenarios", default="a,b", help="a: the large file, b: small files")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="hold every reply this long, as a network round trip to a real bucket would",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    tools = [t for t in args.only.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    big_bytes = (128 if args.quick else 1024) * MiB
    small_files = 2000 if args.quick else 10_000
    labels = {
        "a": f"(a) one {big_bytes // MiB} MiB file",
        "b": f"(b) {small_files:,} files of 4 KiB",
    }
    dvc = ensure_dvc() if "dvc" in tools else None
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-cloud-"))
    results: list[Result] = []
    try:
        print(f"generating data in {work} ...", flush=True)
        wanted = set(args.scenarios.split(","))
        paths = make_data(
            work, big_bytes if "a" in wanted else 0, small_files if "b" in wanted else 0
        )
        data = {k: p for k, p in zip("ab", paths, strict=True) if k in wanted}
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(servers.moto_s3())
            for k, v in server.environ.items():
                os.environ.setdefault(k, v)
            bucket = "cairn-bench"
            server.client().create_bucket(Bucket=bucket)
            pid = server_pid(server.endpoint_url)
            s3 = server
            if args.latency_ms:
                relay = latency_relay(server.endpoint_url, args.latency_ms / 1000)
                s3 = servers.S3Endpoint(stack.enter_context(relay))
            for scenario, path in data.items():
                for tool in tools:
                    print(f"{labels[scenario]}: {tool} ...", flush=True)
                    before = cpu_seconds(pid)
                    if tool == "cairn":
                        results.append(Result(scenario, tool, bench_cairn(s3, bucket, path, work)))
                    elif tool == "fsspec":
                        results.append(Result(scenario, tool, bench_fsspec(s3, bucket, path)))
                    else:
                        assert dvc is not None
                        add, push = bench_dvc(dvc, s3, bucket, path)
                        results.append(Result(scenario, "dvc add", add))
                        results.append(Result(scenario, "dvc push", push))
                    after = cpu_seconds(pid)
                    if before is not None and after is not None:
                        results[-1].server_cpu = after - before
                    print(f"  {results[-1].seconds:.1f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    lines = report(results, labels)
    head = (
        "moto server on 127.0.0.1"
        + (f" behind a relay adding {args.latency_ms:g} ms per reply" if args.latency_ms else "")
        + f"; {os.cpu_count()} cores; load average "
        f"{load:.1f} before the run, {os.getloadavg()[0]:.1f} after; "
        f"Python {platform.python_version()}"
    )
    print("\n" + head + "\n\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
