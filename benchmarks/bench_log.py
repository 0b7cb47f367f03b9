"""Logging artifacts: cairn against `cp -r`, DVC and wandb, on the same generated data.

    python benchmarks/bench_log.py --quick              # 128 MiB file, 2,000 small files
    python benchmarks/bench_log.py                      # 1 GiB file, 10,000 small files
    python benchmarks/bench_log.py --only cp,dvc,wandb --json out.json

Scenarios: (a) one large file of random bytes, (b) many 4 KiB files in ~100 folders. Steps per
tool, each in its own child process (wall time and peak RSS per step): 1. first log,
2. re-log unchanged, 3. change 1% of (a) in place / rewrite 10 files of (b), then log a draft.
Prints markdown tables with ratios (cairn time / tool time) and PASS/FAIL per target.
DVC and wandb run from their own virtualenvs: see setup_baselines.sh and README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_child.py"
MiB = 1 << 20
TOOLS = ("cairn", "cp", "dvc", "wandb")
STEPS = ("first", "relog", "draft")
STEP_LABELS = {"first": "1. first log", "relog": "2. re-log unchanged", "draft": "3. draft"}
CHILD_TIMEOUT_S = 3600
GNU_TIME = "/usr/bin/time"  # Debian package `time`


class BenchError(RuntimeError):
    """A tool failed or is missing; the message says which and what to do."""


# --- measuring one child process ---------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None


@dataclass(frozen=True)
class Sample:
    """One child process: the operation's own time, the whole process, its peak memory."""

    op_s: float  # timed inside the child for Python-API children; else the wall time
    wall_s: float
    peak_rss: int  # bytes; the child's (or its largest descendant's) maximum RSS
    cpu_s: float  # user + system time of the child and its descendants
    load: float  # 1-minute load average just before the step: other work on the machine
    info: dict = field(default_factory=dict)


def drop_page_cache() -> None:
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def measure(cmd: Command, *, cold: bool = False) -> Sample:
    """Run `cmd` to completion under GNU time, which reports the child's own peak RSS.

    (wait4 from this process would not: a child spawned by a big parent inherits the
    parent's RSS high-water mark, so every tool would show at least our size.)
    """
    os.sync()  # no dirty pages left over from earlier steps: every step flushes only its own
    if cold:
        drop_page_cache()
    load = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("r") as usage:
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", usage.name, *cmd.argv]
        t0 = time.perf_counter()
        proc = subprocess.run(
            argv, env=cmd.env, cwd=cmd.cwd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
        )
        wall = time.perf_counter() - t0
        # GNU time may write a status line first; ours is the last one
        rss_kib, user, system = usage.read().strip().splitlines()[-1].split()
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{' '.join(cmd.argv)} exited {proc.returncode}:\n{tail}")
    info = _last_json_line(proc.stdout)
    op = float(info.pop("op_s", wall))
    return Sample(
        op_s=op,
        wall_s=wall,
        peak_rss=int(rss_kib) * 1024,
        cpu_s=float(user) + float(system),
        load=load,
        info=info,
    )


def _last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


# --- generated data ----------------------------------------------------------------------


def write_random(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for start in range(0, size, 64 * MiB):
            f.write(rng.randbytes(min(64 * MiB, size - start)))


def iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            yield Path(dirpath, name)


def warm(root: Path) -> None:
    """Read every byte once so all tools start from the same warm page cache."""
    buf = bytearray(8 * MiB)
    for path in iter_files(root):
        with path.open("rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def tree_bytes(root: Path) -> int:
    """Bytes under `root`, each inode counted once (hardlinks are not stored twice)."""
    seen: dict[tuple[int, int], int] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


@dataclass(frozen=True)
class Patch:
    path: Path
    offset: int
    old: bytes
    new: bytes


@dataclass
class Scenario:
    """Data logged by every tool, plus the in-place change made before the draft step."""

    key: str
    title: str
    src: Path  # the file or folder that is logged; its parent is the data root
    patches: list[Patch]
    change: str = ""  # what the draft step changes, for the report

    @property
    def root(self) -> Path:
        return self.src.parent

    @property
    def changed_files(self) -> list[Path]:
        return sorted({p.path for p in self.patches})

    def apply_change(self) -> None:
        self._write(lambda p: p.new)

    def revert_change(self) -> None:
        self._write(lambda p: p.old)

    def _write(self, content) -> None:
        for patch in self.patches:
            with patch.path.open("r+b") as f:
                f.seek(patch.offset)
                f.write(content(patch))


def make_big_file(work: Path, size: int) -> Scenario:
    """(a): one file; the change rewrites 10 regions of 0.1% each (1% in all) in place."""
    path = work / "data-a" / "big.bin"
    write_random(path, size, seed=1)
    rng = random.Random(2)
    region, tenth = size // 1000, size // 10
    patches = []
    with path.open("rb") as f:
        for i in range(10):
            offset = i * tenth + rng.randrange(tenth - region)
            f.seek(offset)
            patches.append(Patch(path, offset, f.read(region), rng.randbytes(region)))
    title = f"one {size / MiB:.0f} MiB file of random bytes"
    change = f"{10 * region / MiB:.1f} MiB (1%) rewritten in place in 10 regions"
    return Scenario("a", title, path, patches, change)


def make_small_files(work: Path, count: int, size: int = 4096, folders: int = 100) -> Scenario:
    """(b): `count` files in `folders` subfolders; the change rewrites 10 of them."""
    root = work / "data-b" / "files"
    rng = random.Random(3)
    paths = [root / f"d{i % folders:03d}" / f"f{i:05d}.bin" for i in range(count)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    picked = [paths[i * count // 10 + 7] for i in range(10)]
    patches = [Patch(p, 0, p.read_bytes(), rng.randbytes(size)) for p in picked]
    title = f"{count:,} files of {size // 1024} KiB in {folders} folders"
    return Scenario("b", title, root, patches, f"{len(picked)} files rewritten")


# --- the tools ---------------------------------------------------------------------------


class Tool:
    """How one tool performs the three steps; `store` is the folder whose growth we report."""

    name = ""
    label = ""

    def __init__(self, state: Path):
        self.state = state
        self.store = state

    def prepare(self, scn: Scenario) -> None:
        self.state.mkdir(parents=True)

    def command(self, step: str, scn: Scenario) -> Command:
        raise NotImplementedError

    def cleanup(self, scn: Scenario) -> None:
        shutil.rmtree(self.state, ignore_errors=True)


class Cairn(Tool):
    name, label = "cairn", "cairn"

    def __init__(self, state: Path, python: str, profile_dir: Path | None = None):
        super().__init__(state)
        self.python, self.profile_dir = python, profile_dir
        self.store = state / "home"
        self.env = {**os.environ, "CAIRN_HOME": str(self.store)}

    def command(self, step: str, scn: Scenario) -> Command:
        if step == "draft":
            args = ["cairn-draft", "--name", scn.key]
            for path in scn.changed_files:
                args += ["--change", str(path), str(path.relative_to(scn.root))]
        else:
            args = ["cairn-log", "--name", scn.key, str(scn.src)]
        return Command([*self._interpreter(f"{scn.key}-{step}"), str(CHILD), *args], self.env)

    def _interpreter(self, tag: str) -> list[str]:
        if self.profile_dir is None:
            return [self.python]
        return [self.python, "-m", "cProfile", "-o", str(self.profile_dir / f"{tag}.prof")]


class Copy(Tool):
    """`cp -r` into a fresh folder every step: no versioning, every byte read and written."""

    def __init__(self, state: Path, *, sync: bool):
        super().__init__(state)
        self.sync = sync
        self.name = "cp+sync" if sync else "cp"
        self.label = "cp -r && sync" if sync else "cp -r"

    def command(self, step: str, scn: Scenario) -> Command:
        script = 'cp -r "$1" "$2"' + (" && sync" if self.sync else "")
        return Command(["sh", "-c", script, "sh", str(scn.src), str(self.state / step)])


class Dvc(Tool):
    """`dvc add` in a fresh `git init` + `dvc init` repo made around the data root."""

    name, label = "dvc", "dvc add"
    REPO_FILES = (".git", ".dvc", ".dvcignore", ".gitignore")

    def __init__(self, state: Path, dvc: str):
        super().__init__(state)
        self.dvc = dvc
        self.store = state / "cache"
        # its own site cache (state/link db), so no earlier run can make it faster
        self.env = {
            **os.environ,
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(state / "site"),
        }

    def prepare(self, scn: Scenario) -> None:
        super().prepare(scn)
        self._run(["git", "init", "-q"], scn)
        self._run([self.dvc, "init", "-q"], scn)
        for key, value in [
            ("core.analytics", "false"),
            ("core.check_update", "false"),
            ("core.autostage", "false"),
            ("cache.dir", str(self.store)),
        ]:
            self._run([self.dvc, "config", key, value], scn)

    def command(self, step: str, scn: Scenario) -> Command:
        return Command([self.dvc, "add", "-q", scn.src.name], self.env, scn.root)

    def cleanup(self, scn: Scenario) -> None:
        for name in [*self.REPO_FILES, f"{scn.src.name}.dvc"]:
            path = scn.root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        super().cleanup(scn)

    def _run(self, argv: list[str], scn: Scenario) -> None:
        subprocess.run(argv, cwd=scn.root, env=self.env, check=True, capture_output=True)


class Wandb(Tool):
    """`wandb.Artifact(...).add_dir/add_file` offline: md5 + copy into its staging folder."""

    name, label = "wandb", "wandb add"

    def __init__(self, state: Path, python: str):
        super().__init__(state)
        self.python = python
        self.env = {
            **os.environ,
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            **{f"WANDB_{d}_DIR": str(state / d.lower()) for d in ("DATA", "CACHE", "CONFIG")},
            "WANDB_DIR": str(state),
        }

    def command(self, step: str, scn: Scenario) -> Command:
        return Command([self.python, str(CHILD), "wandb-add", str(scn.src)], self.env)


# --- running and reporting ---------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One tool and step over all timed runs: medians, and every run's op time."""

    scenario: str
    step: str
    tool: str
    op_s: float
    wall_s: float
    peak_rss: int  # the largest seen
    cpu_s: float
    load: float  # the highest load average seen before this step
    stored: int  # bytes the tool's store grew by in this step
    op_runs: list[float]
    info: dict


def run_sequence(tool: Tool, scn: Scenario, *, cold: bool) -> dict[str, tuple[Sample, int]]:
    """The three steps on fresh tool state; the data is restored afterwards."""
    out: dict[str, tuple[Sample, int]] = {}
    tool.prepare(scn)
    try:
        for step in STEPS:
            if step == "draft":
                scn.apply_change()
            if not cold:
                warm(scn.src)
            before = tree_bytes(tool.store)
            sample = measure(tool.command(step, scn), cold=cold)
            out[step] = (sample, tree_bytes(tool.store) - before)
            log(
                f"    {step}: op {fmt_s(sample.op_s)} s, wall {fmt_s(sample.wall_s)} s, "
                f"{fmt_mib(sample.peak_rss)} MiB, load {sample.load:.1f}"
            )
    finally:
        scn.revert_change()
        tool.cleanup(scn)
    return out


def run_scenario(
    tools: list[Tool], scn: Scenario, *, repeat: int, warmup: int, cold: bool
) -> list[Result]:
    """Every tool `warmup` + `repeat` times; the order rotates each round so no tool is
    always first (on a VM, the first writer of fresh page cache pays for it)."""
    samples: dict[tuple[str, str], list[tuple[Sample, int]]] = {}
    for rnd in range(warmup + repeat):
        timed = rnd >= warmup
        kind = f"run {rnd - warmup + 1}/{repeat}" if timed else "warm-up"
        for tool in tools[rnd % len(tools) :] + tools[: rnd % len(tools)]:
            log(f"({scn.key}) {tool.label}, {kind}")
            for step, got in run_sequence(tool, scn, cold=cold).items():
                if timed:
                    samples.setdefault((tool.name, step), []).append(got)
    return [
        Result(
            scenario=scn.key,
            step=step,
            tool=name,
            op_s=statistics.median(s.op_s for s, _ in got),
            wall_s=statistics.median(s.wall_s for s, _ in got),
            peak_rss=max(s.peak_rss for s, _ in got),
            cpu_s=statistics.median(s.cpu_s for s, _ in got),
            load=max(s.load for s, _ in got),
            stored=int(statistics.median(b for _, b in got)),
            op_runs=[s.op_s for s, _ in got],
            info=got[-1][0].info,
        )
        for (name, step), got in samples.items()
    ]


def memory_check(python: str, files: list[Path], work: Path) -> list[tuple[int, Sample]]:
    """Peak RSS of a first log of each file into a fresh repository: should stay flat."""
    out = []
    for i, path in enumerate(files):
        size = path.stat().st_size
        scn = Scenario(f"mem{i}", f"{size / MiB:.0f} MiB", path, patches=[])
        cairn = Cairn(work / f"cairn-mem-{i}", python)
        log(f"memory check: cairn first log of {size / MiB:.0f} MiB")
        cairn.prepare(scn)
        warm(path)
        try:
            out.append((size, measure(cairn.command("first", scn))))
        finally:
            cairn.cleanup(scn)
    return out


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_mib(n: int) -> str:
    return f"{n / MiB:.1f}"


def scenario_table(scn: Scenario, results: list[Result], labels: dict[str, str]) -> list[str]:
    by = {(r.step, r.tool): r for r in results if r.scenario == scn.key}
    lines = [
        f"### ({scn.key}) {scn.title}",
        "",
        f"Draft step: {scn.change}, then a draft of the latest version re-adds the changed files.",
        "",
        "| step | tool | op s | op min–max | wall s | cpu s | peak RSS MiB | stored +MiB "
        "| cairn ÷ tool |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for step in STEPS:
        cairn = by.get((step, "cairn"))
        for name, label in labels.items():
            r = by.get((step, name))
            if r is None:
                continue
            ratio = "" if cairn is None or name == "cairn" else f"{cairn.op_s / r.op_s:.2f}"
            cells = [
                STEP_LABELS[step],
                label,
                fmt_s(r.op_s),
                f"{fmt_s(min(r.op_runs))}–{fmt_s(max(r.op_runs))}",
                fmt_s(r.wall_s),
                fmt_s(r.cpu_s),
                fmt_mib(r.peak_rss),
                fmt_mib(r.stored),
                ratio,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    verdict: str  # PASS, FAIL or info


def evaluate(results: list[Result], mem: list[tuple[int, Sample]]) -> list[Target]:
    by = {(r.scenario, r.step, r.tool): r for r in results}
    targets = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    for key in ("a", "b"):
        first, relog, draft = (by.get((key, s, "cairn")) for s in STEPS)
        if first is None:
            continue
        if key == "a":
            targets += first_log_targets(first, by)
        else:
            cp, cps = by.get((key, "first", "cp")), by.get((key, "first", "cp+sync"))
            if cp is not None:
                detail = f"{fmt_s(first.op_s)} s / {fmt_s(cp.op_s)} s = {first.op_s / cp.op_s:.2f}x"
                if cps is not None:
                    detail += f" (vs cp -r && sync: {first.op_s / cps.op_s:.2f}x)"
                targets.append(Target(f"({key}) first log ÷ cp -r", detail, "info"))
        share = relog.op_s / first.op_s
        targets.append(
            Target(
                f"({key}) unchanged re-log < 5% of first log",
                f"{fmt_s(relog.op_s)} s / {fmt_s(first.op_s)} s = {share:.1%}"
                f" (returned {relog.info.get('version')}, first was {first.info.get('version')})",
                verdict(share < 0.05 and relog.info.get("version") == first.info.get("version")),
            )
        )
        targets.append(
            Target(
                f"({key}) draft < 1 s",
                f"{fmt_s(draft.op_s)} s (wall {fmt_s(draft.wall_s)} s), "
                f"stored +{fmt_mib(draft.stored)} MiB",
                verdict(draft.op_s < 1),
            )
        )
    if len(mem) == 2:
        (small, s1), (big, s2) = mem
        growth = s2.peak_rss / s1.peak_rss
        targets.append(
            Target(
                f"peak RSS flat from {small / MiB:.0f} to {big / MiB:.0f} MiB",
                f"{fmt_mib(s1.peak_rss)} -> {fmt_mib(s2.peak_rss)} MiB ({growth:.2f}x; "
                f"file grew {big / small:.0f}x)",
                verdict(growth < 1.5),
            )
        )
    return targets


#: issue 14: (a)'s first log at most this many times each baseline's (in the same run)
FIRST_LOG_LIMITS = (("cp+sync", "cp -r && sync", 1.5), ("cp", "cp -r", 3.0))
#: ... and faster than these
FIRST_LOG_AHEAD = (("dvc", "dvc add"), ("wandb", "wandb add"))


def first_log_targets(first: Result, by: dict[tuple[str, str, str], Result]) -> list[Target]:
    """(a)'s first log against `cp -r && sync`, `cp -r`, DVC and wandb, each measured in
    this run; a baseline left out (--only) has no row."""
    checks = [
        (tool, f"(a) first log at most {limit:g}x {label}", limit, False)
        for tool, label, limit in FIRST_LOG_LIMITS
    ] + [(tool, f"(a) first log faster than {label}", 1.0, True) for tool, label in FIRST_LOG_AHEAD]
    out = []
    for tool, name, limit, strict in checks:
        base = by.get(("a", "first", tool))
        if base is None:
            continue
        ratio = first.op_s / base.op_s
        passed = ratio < limit if strict else ratio <= limit
        out.append(
            Target(
                name,
                f"{fmt_s(first.op_s)} s / {fmt_s(base.op_s)} s = {ratio:.2f}x",
                "PASS" if passed else "FAIL",
            )
        )
    return out


CAIRN_VERSION = """
import importlib.metadata as m, cairn
try:
    print(m.version("cairn"), "from", cairn.__file__)
except m.PackageNotFoundError:
    print("(no distribution) from", cairn.__file__)
"""


def tool_versions(args: argparse.Namespace, only: set[str]) -> dict[str, str]:
    probes = {
        "cairn": [args.python, "-c", CAIRN_VERSION],
        "cp": ["cp", "--version"],
        "dvc": [args.dvc, "--version"],
        "wandb": [args.wandb_python, "-c", "import wandb; print(wandb.__version__)"],
    }
    hints = {
        "cairn": f"cairn is not importable by {args.python}: `pip install -e .` at the repo "
        "root, pass --python, or leave it out with --only cp,dvc,wandb",
        "dvc": "DVC missing: run benchmarks/setup_baselines.sh or pass --dvc",
        "wandb": "wandb missing: run benchmarks/setup_baselines.sh or pass --wandb-python",
    }
    if not os.access(GNU_TIME, os.X_OK):
        raise BenchError(f"{GNU_TIME} missing: `apt-get install time` (it measures peak RSS)")
    versions = {}
    for name in sorted(only):
        try:
            out = subprocess.run(probes[name], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BenchError(hints.get(name, str(exc))) from exc
        versions[name] = out.stdout.strip().splitlines()[0]
    if "cairn" in versions:
        versions["cairn"] += source_revision(Path(versions["cairn"].rsplit(" from ", 1)[-1]))
    return versions


def source_revision(module_file: Path) -> str:
    """' (commit abc1234, uncommitted changes)' when cairn runs from a git checkout."""
    folder = str(module_file.parent)
    tracked = ["git", "-C", folder, "ls-files", "--error-unmatch", module_file.name]
    if subprocess.run(tracked, **_QUIET).returncode != 0:
        return ""  # an installed copy, not a checkout
    head = subprocess.run(["git", "-C", folder, "rev-parse", "--short", "HEAD"], **_QUIET)
    dirty = subprocess.run(["git", "-C", folder, "status", "--porcelain", "."], **_QUIET)
    return f" (commit {head.stdout.strip()}" + (", uncommitted changes)" if dirty.stdout else ")")


_QUIET: dict = {"capture_output": True, "text": True}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="128 MiB file and 2,000 small files")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the data sizes (default 1)")
    p.add_argument("--only", default=",".join(TOOLS), help="subset of cairn,cp,dvc,wandb")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per tool (medians)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per tool first")
    p.add_argument("--workdir", default=tempfile.gettempdir(), help="parent of the scratch dir")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir")
    p.add_argument("--json", help="also write results to this JSON file")
    p.add_argument("--python", default=sys.executable, help="interpreter that imports cairn")
    p.add_argument("--dvc", default=str(HERE / ".venv-dvc" / "bin" / "dvc"))
    p.add_argument("--wandb-python", default=str(HERE / ".venv-wandb" / "bin" / "python"))
    p.add_argument("--cold", action="store_true", help="drop the page cache before each step")
    p.add_argument("--profile-cairn", metavar="DIR", help="cProfile every cairn child into DIR")
    p.add_argument("--scenarios", default="a,b", help="subset of a (large file), b (small files)")
    args = p.parse_args(argv)
    args.only = {t.strip() for t in args.only.split(",") if t.strip()}
    if not args.only or args.only - set(TOOLS):
        p.error(f"--only takes a subset of {','.join(TOOLS)}")
    args.scenarios = {t.strip() for t in args.scenarios.split(",") if t.strip()}
    if not args.scenarios or args.scenarios - {"a", "b"}:
        p.error("--scenarios takes a subset of a,b")
    big_mib, small_count = (128, 2000) if args.quick else (1024, 10_000)
    args.big = int(big_mib * args.scale) * MiB
    args.small_count = max(10, int(small_count * args.scale))
    return args


def make_tools(args: argparse.Namespace, work: Path) -> list[Tool]:
    profile = Path(args.profile_cairn).resolve() if args.profile_cairn else None
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    tools: list[Tool] = []
    if "cairn" in args.only:
        tools.append(Cairn(work / "cairn", args.python, profile))
    if "cp" in args.only:
        tools += [Copy(work / "cp", sync=False), Copy(work / "cp-sync", sync=True)]
    if "dvc" in args.only:
        tools.append(Dvc(work / "dvc", args.dvc))
    if "wandb" in args.only:
        tools.append(Wandb(work / "wandb", args.wandb_python))
    return tools


def machine_line(work: Path) -> str:
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(work)], capture_output=True, text=True)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return (
        f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, workdir filesystem {fs.stdout.strip() or '?'}"
    )


@dataclass
class Outcome:
    """Everything one run measured, for the markdown report and the JSON file."""

    versions: dict[str, str]
    machine: str
    scenarios: list[Scenario]
    results: list[Result]
    memory: list[tuple[int, Sample]]
    dvc_startup_s: float | None
    targets: list[Target]

    def to_json(self, args: argparse.Namespace) -> dict:
        config = {k: v for k, v in vars(args).items() if k not in ("only", "scenarios")}
        return {
            "config": config | {"only": sorted(args.only), "scenarios": sorted(args.scenarios)},
            "versions": self.versions,
            "results": [asdict(r) for r in self.results],
            "memory": [{"bytes": size, **asdict(s)} for size, s in self.memory],
            "targets": [asdict(t) for t in self.targets],
        }


def report(args: argparse.Namespace, tools: list[Tool], out: Outcome) -> str:
    labels = {t.name: t.label for t in tools}
    loads = [r.load for r in out.results]
    lines = [
        "## cairn log benchmark",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in out.versions.items()) + ".",
        f"Machine: {out.machine}. Per tool: {args.warmup} untimed "
        f"warm-up run(s), then {args.repeat} timed; medians shown.",
        "",
    ]
    for scn in out.scenarios:
        lines += scenario_table(scn, out.results, labels)
    if out.memory:
        lines += ["### cairn peak memory as the file grows", "", "| file MiB | peak RSS MiB |"]
        lines += ["|--:|--:|"]
        lines += [f"| {size / MiB:.0f} | {fmt_mib(s.peak_rss)} |" for size, s in out.memory]
        lines.append("")
    if out.targets:
        lines += ["### Targets", "", "| target | measured | result |", "|---|---|---|"]
        lines += [f"| {t.name} | {t.measured} | **{t.verdict}** |" for t in out.targets]
        lines.append("")
    cache = (
        "cold page cache (dropped before every step)"
        if args.cold
        else "warm page cache for every tool (data read once before every step; the cache "
        "was not dropped)"
    )
    dvc_startup = (
        f" (`dvc --version` alone takes {fmt_s(out.dvc_startup_s)} s)"
        if out.dvc_startup_s is not None
        else ""
    )
    lines += [
        "Notes:",
        f"- {cache}; dirty pages flushed (`sync`) before every step, outside the timer.",
        "- *op*: for cairn and wandb, timed inside the child after its imports (open + add + "
        "log); for cp and dvc, the whole command. *wall*: the whole child process, interpreter "
        f"start-up included{dvc_startup}. *cpu*: user + system time of the child. Ratios "
        "use *op*.",
        "- cairn makes what it stores durable; `cp -r` and DVC do not, hence `cp -r && sync`.",
        "- cp has no versions: each step copies everything into a new folder.",
        "- DVC: `dvc add` in a fresh `git init` + `dvc init` repo, cache on the same filesystem "
        "(copy: no reflinks on ext4), its own state db per run.",
        "- wandb: offline `Artifact.add_dir`/`add_file` only (md5 and a copy into its staging "
        "folder; nothing is committed). `new_draft()` needs a logged artifact, i.e. a server, "
        "so its re-log and draft rows are another full `add_dir`/`add_file` of the same data.",
        "- peak RSS: GNU time's maximum resident set size of the child (for `sh -c`, of its "
        "largest process). stored: growth of the tool's store in that step (cairn: CAIRN_HOME "
        "with its catalog; dvc: cache; wandb: staging; cp: the copies).",
        "- On a VM whose memory the host backs lazily, the first write into fresh page cache "
        "is several times slower than later ones: hence the warm-up runs, the rotating tool "
        "order, and the min–max column.",
        f"- 1-minute load average before the steps: median {statistics.median(loads):.1f}, "
        f"max {max(loads):.1f} on {os.cpu_count()} cores"
        + (
            ": OTHER WORK WAS RUNNING, the times are inflated and noisy."
            if max(loads) > (os.cpu_count() or 1)
            else "."
        ),
    ]
    return "\n".join(lines)


def measure_all(args: argparse.Namespace, tools: list[Tool], work: Path) -> Outcome:
    versions = tool_versions(args, args.only)
    log(f"generating data in {work}")
    scenarios = []
    if "a" in args.scenarios:
        scenarios.append(make_big_file(work, args.big))
    if "b" in args.scenarios:
        scenarios.append(make_small_files(work, args.small_count))
    results = []
    for scn in scenarios:
        results += run_scenario(tools, scn, repeat=args.repeat, warmup=args.warmup, cold=args.cold)
    memory = []
    if "cairn" in args.only and "a" in args.scenarios:
        quarter = work / "data-mem" / "quarter.bin"
        write_random(quarter, args.big // 4, seed=4)
        memory = memory_check(args.python, [quarter, scenarios[0].src], work)
    dvc_startup = measure(Command([args.dvc, "--version"])).wall_s if "dvc" in args.only else None
    targets = evaluate(results, memory)
    machine = machine_line(work)
    return Outcome(versions, machine, scenarios, results, memory, dvc_startup, targets)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`: children killed, scratch removed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-", dir=args.workdir))
    tools = make_tools(args, work)
    try:
        outcome = measure_all(args, tools, work)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(args, tools, outcome))
    if args.json:
        Path(args.json).write_text(json.dumps(outcome.to_json(args), indent=2) + "\n")
    return 1 if any(t.verdict == "FAIL" for t in outcome.targets) else 0


if __name__ == "__main__":
    sys.exit(main())
