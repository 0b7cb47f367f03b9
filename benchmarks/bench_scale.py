"""cairn at scale: 1k, 10k, 100k (and with --million 1M) files of 512 bytes, against `cp -r`
and DVC, with the time and peak memory of every step.

    python benchmarks/bench_scale.py                        # 1k, 10k, 100k files
    python benchmarks/bench_scale.py --million --json r.json --plot r.png
    python benchmarks/bench_scale.py --sizes 10k --only put,get-warm,cp
    python benchmarks/bench_scale.py --from-json r.json --plot r.png   # report again

Data: N files of 512 random bytes in folders of 1,000 (`--flat`: also every file in one
folder, for put, get and cp). Steps, each one child process on the same repository
(`CAIRN_HOME` fresh per size), with its peak RSS from GNU time, timed twice: *op*, inside
the child once `cairn.cli` is imported (what the command costs a process that has its
imports done; for `cp` and `dvc` the whole command), and *wall*, the whole child:

  put        `cairn put DATA -n bench/ds`: the first log
  reput      the same again: nothing changed, nothing stored
  draft      Python API: `repo.artifact("bench/ds:v0").new_draft()`, 10 files replaced,
             `log_artifact` (op: after `import cairn`)
  get-cold   `cairn get bench/ds:v0 --root NEW` with the cache emptied
  get-warm   the same into another new folder, the cache holding the version
  show       `cairn show bench/ds:v0` (every path printed)
  diff       `cairn diff bench/ds:v0 bench/ds:v1` (the draft)
  verify     `cairn verify`: every stored object read and checked
  gc         `cairn gc --grace 0` (v0 and v1 live: it walks everything, deletes nothing)
  cp         `cp -r DATA NEW`, the floor for put and get
  cp-sync    `cp -r DATA NEW && sync` (cairn makes what it stores durable)
  dvc-add    `dvc add` of a copy of DATA in a `dvc init --no-scm` repo (its own cache)
  dvc-checkout  the copy deleted, `dvc checkout` from DVC's cache

Prints a markdown table (seconds, ratio to `cp -r`, peak RSS MiB) and PASS/FAIL rows for
the scale targets (benchmarks/README.md); `--json` writes every sample, `--plot` a PNG of
time and peak RSS against the file count (log-log). Exit code 1 when a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_log import (
    GNU_TIME,
    BenchError,
    Command,
    Sample,
    fmt_mib,
    fmt_s,
    log,
    machine_line,
    measure,
    source_revision,
    warm,
)

HERE = Path(__file__).resolve().parent
FILE_BYTES = 512
PER_FOLDER = 1000
CHANGED = 10
CAIRN_STEPS = (
    "put",
    "reput",
    "draft",
    "get-cold",
    "get-warm",
    "update",
    "show",
    "diff",
    "verify",
    "gc",
)
BASELINES = ("cp", "cp-sync", "dvc-add", "dvc-checkout")
STEPS = CAIRN_STEPS + BASELINES
FLAT_STEPS = ("put", "get-warm", "cp")  # the one-folder variant: what a big folder costs
REF = "bench/ds"
MARKER = ".cairn-checkout.json"  # a checkout's record of what cairn wrote there

# the `cairn` command line, timed after its imports (the timer's line follows its output)
_CLI = """
import json, sys, time
t0 = time.perf_counter()
from cairn.cli import main
t1 = time.perf_counter()
sys.argv[0] = "cairn"
try:
    main()
finally:
    print(json.dumps({"op_s": time.perf_counter() - t1, "import_s": t1 - t0}), flush=True)
"""

_DRAFT = """
import json, sys, time
t0 = time.perf_counter()
from cairn import Repository
t1 = time.perf_counter()
repo = Repository.open()
draft = repo.artifact(sys.argv[1]).new_draft()
for local, name in zip(sys.argv[2::2], sys.argv[3::2]):
    draft.add_file(local, name=name)
v = repo.log_artifact(draft, project="bench")
print(json.dumps({"op_s": time.perf_counter() - t1, "version": v.version}))
"""


# --- data ----------------------------------------------------------------------------------


def parse_count(text: str) -> int:
    """'1k' -> 1000, '100k' -> 100000, '1M' -> 1000000, '2500' -> 2500."""
    t = text.strip().lower().replace("_", "")
    factor = {"k": 1000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if factor > 1 else t) * factor)


def count_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


@dataclass(frozen=True)
class Dataset:
    files: int
    layout: str  # "nested" (folders of PER_FOLDER files) or "flat" (one folder)
    root: Path  # the folder logged
    changes: list[tuple[str, str]]  # (local file, logical path) replaced by the draft

    def paths(self) -> list[str]:
        return [_rel(i, self.files, self.layout) for i in range(self.files)]


def _rel(i: int, n: int, layout: str) -> str:
    width = len(str(n - 1))
    name = f"f{i:0{width}d}.bin"
    return name if layout == "flat" else f"d{i // PER_FOLDER:04d}/{name}"


def make_dataset(work: Path, n: int, layout: str) -> Dataset:
    """N files of FILE_BYTES random bytes each (all different), and CHANGED replacements."""
    root = work / f"data-{layout}-{n}" / "files"
    rng = random.Random(n)
    made: set[Path] = set()
    for i in range(n):
        path = root / _rel(i, n, layout)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(rng.randbytes(FILE_BYTES))
    changes = []
    for k in range(min(CHANGED, n)):
        local = work / f"changes-{layout}-{n}" / f"c{k}.bin"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(rng.randbytes(FILE_BYTES))
        changes.append((str(local), _rel(k * n // CHANGED, n, layout)))
    return Dataset(n, layout, root, changes)


def check_copy(
    data: Dataset, out: Path, sample: int = 200, skip: frozenset[str] | set[str] = frozenset()
) -> None:
    """The folder a get made holds every file, and a sample of them byte for byte (but
    those in `skip`)."""
    found = sum(len([f for f in files if f != MARKER]) for _, _, files in os.walk(out))
    if found != data.files:
        raise BenchError(f"{out} holds {found} files, expected {data.files}")
    rng = random.Random(0)
    for rel in rng.sample(data.paths(), min(sample, data.files)):
        if rel in skip:
            continue
        if (out / rel).read_bytes() != (data.root / rel).read_bytes():
            raise BenchError(f"{out / rel} differs from {data.root / rel}")


def check_update(data: Dataset, out: Path) -> None:
    """The checkout brought to v1 holds the draft's changed files, and the rest as they were."""
    for local, rel in data.changes:
        if (out / rel).read_bytes() != Path(local).read_bytes():
            raise BenchError(f"{out / rel} was not updated")
    changed = {rel for _, rel in data.changes}
    check_copy(
        Dataset(data.files, data.layout, data.root, []),
        out,
        skip=changed,
    )


# --- one size, every step -------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One step at one size: medians over the repeats, the largest peak RSS."""

    layout: str
    files: int
    step: str
    wall_s: float  # the whole child process
    op_s: float  # cairn: timed in the child after its imports; baselines: = wall_s
    peak_rss: int
    cpu_s: float
    load: float
    runs: list[float]


class SizeRun:
    """Every selected step on one dataset, in an order where each finds what it needs."""

    def __init__(self, args: argparse.Namespace, data: Dataset, work: Path):
        self.args, self.data = args, data
        self.work = work / f"run-{data.layout}-{data.files}"
        self.home = self.work / "home"
        self.env = {**os.environ, "CAIRN_HOME": str(self.home), "CAIRN_EVENT_PLUGINS": "none"}
        for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_CACHE_DIR", "CAIRN_PROJECT"):
            self.env.pop(var, None)
        self.cairn = [args.python, "-c", _CLI]
        self.dvc_env = {
            **os.environ,
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(self.work / "dvc-site"),
        }
        self.n = 0
        self.errors: list[str] = []

    def fresh(self, name: str) -> Path:
        self.n += 1
        return self.work / f"{name}-{self.n}"

    def run(self, steps: list[str]) -> list[Row]:
        samples: dict[str, list[Sample]] = {}
        for _ in range(self.args.repeat):
            shutil.rmtree(self.work, ignore_errors=True)
            self.work.mkdir(parents=True)
            try:
                for step, sample in self._sequence(steps):
                    samples.setdefault(step, []).append(sample)
                    log(
                        f"  {self.data.layout} {count_label(self.data.files)} {step}: "
                        f"op {fmt_s(sample.op_s)} s, wall {fmt_s(sample.wall_s)} s, "
                        f"{fmt_mib(sample.peak_rss)} MiB, load {sample.load:.1f}"
                    )
            except BenchError as exc:  # the steps after a failed one need what it made
                where = f"{self.data.layout} {count_label(self.data.files)}"
                self.errors.append(f"{where}: {exc}")
                log(f"  {where}: FAILED, skipping its remaining steps: {exc}")
            finally:
                shutil.rmtree(self.work, ignore_errors=True)
        return [
            Row(
                self.data.layout,
                self.data.files,
                step,
                wall_s=statistics.median(s.wall_s for s in got),
                op_s=statistics.median(s.op_s for s in got),
                peak_rss=max(s.peak_rss for s in got),
                cpu_s=statistics.median(s.cpu_s for s in got),
                load=max(s.load for s in got),
                runs=[s.op_s for s in got],
            )
            for step, got in samples.items()
        ]

    def _sequence(self, steps: list[str]):
        want = set(steps)
        src = str(self.data.root)
        checkout: Path | None = None  # a checkout of v0, once a get made one
        if want & {"cp", "cp-sync"}:
            for step, script in (("cp", 'cp -r "$1" "$2"'), ("cp-sync", 'cp -r "$1" "$2" && sync')):
                if step in want:
                    out = self.fresh(step)
                    warm(self.data.root)
                    yield step, measure(Command(["sh", "-c", script, "sh", src, str(out)]))
                    shutil.rmtree(out)
        needs_repo = want & (set(CAIRN_STEPS) - {"put"})
        if "put" in want or needs_repo:
            warm(self.data.root)
            put = self._cairn("put", src, "-n", REF)
            if "put" in want:
                yield "put", put
        if "reput" in want:
            yield "reput", self._cairn("put", src, "-n", REF)
        if want & {"draft", "diff", "update"}:
            argv = [self.args.python, "-c", _DRAFT, f"{REF}:v0"]
            for local, name in self.data.changes:
                argv += [local, name]
            draft = measure(Command(argv, self.env))
            if "draft" in want:
                yield "draft", draft
        if "get-cold" in want:
            shutil.rmtree(self.home / "cache", ignore_errors=True)
            out = self.fresh("get-cold")
            yield "get-cold", self._cairn("get", f"{REF}:v0", "--root", str(out))
            check_copy(self.data, out)
            shutil.rmtree(out)
        if "get-warm" in want:
            self._cairn("get", f"{REF}:v0", "--root", str(self.fresh("fill")))  # fill the cache
            out = self.fresh("get-warm")
            yield "get-warm", self._cairn("get", f"{REF}:v0", "--root", str(out))
            check_copy(self.data, out)
            checkout = out
        if "update" in want:
            # the checkout of v0 brought to v1 (the draft's CHANGED files) in place
            if checkout is None:
                checkout = self.fresh("update")
                self._cairn("get", f"{REF}:v0", "--root", str(checkout))
            yield "update", self._cairn("get", f"{REF}:v1", "--root", str(checkout))
            check_update(self.data, checkout)
        if "show" in want:
            yield "show", self._cairn("show", f"{REF}:v0")
        if "diff" in want:
            yield "diff", self._cairn("diff", f"{REF}:v0", f"{REF}:v1")
        if "verify" in want:
            yield "verify", self._cairn("verify")
        if "gc" in want:
            yield "gc", self._cairn("gc", "--grace", "0")
        if want & {"dvc-add", "dvc-checkout"}:
            yield from self._dvc(want)

    def _cairn(self, *argv: str) -> Sample:
        return measure(Command([*self.cairn, *argv], self.env))

    def _dvc(self, want: set[str]):
        repo = self.work / "dvc"
        repo.mkdir()
        dvc = self.args.dvc
        subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=repo, env=self.dvc_env, check=True)
        for key, value in [
            ("core.analytics", "false"),
            ("core.check_update", "false"),
            ("cache.dir", str(self.work / "dvc-cache")),
        ]:
            subprocess.run([dvc, "config", key, value], cwd=repo, env=self.dvc_env, check=True)
        shutil.copytree(self.data.root, repo / "files")
        warm(repo / "files")
        add = measure(Command([dvc, "add", "-q", "files"], self.dvc_env, repo))
        if "dvc-add" in want:
            yield "dvc-add", add
        if "dvc-checkout" in want:
            shutil.rmtree(repo / "files")
            yield "dvc-checkout", measure(Command([dvc, "checkout", "-q"], self.dvc_env, repo))
            check_copy(self.data, repo / "files")


# --- targets, report, plot ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    verdict: str  # PASS, FAIL, or "not measured"


def evaluate(rows: list[Row]) -> list[Target]:
    by = {(r.files, r.step): r for r in rows if r.layout == "nested"}
    out: list[Target] = []

    def has(*keys: tuple[int, str]) -> bool:
        return all(k in by for k in keys)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    n = 100_000
    if has((n, "get-warm"), (n, "cp")):
        g, c = by[(n, "get-warm")], by[(n, "cp")].op_s
        out.append(
            Target(
                "get of 100k files (cache warm) ≤ 1.5x `cp -r`",
                f"op {fmt_s(g.op_s)} s / {fmt_s(c)} s = {g.op_s / c:.2f}x "
                f"(whole command {fmt_s(g.wall_s)} s: {g.wall_s / c:.2f}x)",
                verdict(g.op_s / c <= 1.5),
            )
        )
    else:
        out.append(Target("get of 100k files ≤ 1.5x `cp -r`", "-", "not measured"))
    if has((n, "get-warm"), (n, "dvc-checkout")):
        g, d = by[(n, "get-warm")].wall_s, by[(n, "dvc-checkout")].wall_s
        out.append(
            Target(
                "get of 100k files ≥ 2x faster than `dvc checkout` from its cache",
                f"whole commands: dvc {fmt_s(d)} s / cairn {fmt_s(g)} s = {d / g:.2f}x",
                verdict(d / g >= 2),
            )
        )
    else:
        out.append(Target("get of 100k files ≥ 2x faster than `dvc checkout`", "-", "not measured"))
    for step in ("put", "get-cold", "get-warm", "update"):
        m = by.get((1_000_000, step))
        out.append(
            Target(
                f"peak RSS of {step} at 1M files ≤ 300 MB",
                f"{m.peak_rss / 1e6:.0f} MB" if m else "- (run with --million)",
                verdict(m.peak_rss <= 300e6) if m else "not measured",
            )
        )
        a, b = by.get((10_000, step)), by.get((100_000, step))
        out.append(
            Target(
                f"peak RSS of {step} grows < 30% from 10k to 100k files",
                f"{fmt_mib(a.peak_rss)} -> {fmt_mib(b.peak_rss)} MiB "
                f"(+{b.peak_rss / a.peak_rss - 1:.0%})"
                if a and b
                else "-",
                verdict(b.peak_rss < 1.3 * a.peak_rss) if a and b else "not measured",
            )
        )
    drafts = sorted(f for f, s in by if s == "draft")
    big = drafts[-1] if drafts else None
    if big is not None and big >= 10_000:
        d = by[(big, "draft")]
        label = count_label(big)
        out.append(
            Target(
                f"draft of {CHANGED} changes of a {label}-file version < 1 s"
                + ("" if big == 1_000_000 else " (target is at 1M: not run)"),
                f"op {fmt_s(d.op_s)} s (whole child {fmt_s(d.wall_s)} s)",
                verdict(d.op_s < 1),
            )
        )
        small = by.get((1000, "draft"))
        if small is not None:
            out.append(
                Target(
                    f"draft at {label} files within 2x of the draft at 1k files",
                    f"{fmt_s(d.op_s)} s / {fmt_s(small.op_s)} s = {d.op_s / small.op_s:.2f}x",
                    verdict(d.op_s <= 2 * small.op_s),
                )
            )
    return out


LABELS = {
    "put": "put (first log)",
    "reput": "re-put unchanged",
    "draft": f"draft, {CHANGED} changes",
    "get-cold": "get, cache empty",
    "get-warm": "get, cache warm",
    "update": f"get into the checkout, {CHANGED} changes",
    "show": "show",
    "diff": "diff",
    "verify": "verify",
    "gc": "gc",
    "cp": "`cp -r`",
    "cp-sync": "`cp -r && sync`",
    "dvc-add": "`dvc add`",
    "dvc-checkout": "`dvc checkout`",
}


def table(rows: list[Row], layout: str, n: int) -> list[str]:
    by = {r.step: r for r in rows if (r.layout, r.files) == (layout, n)}
    cp = by.get("cp")
    where = f"in folders of {PER_FOLDER}" if layout == "nested" else "in one folder"
    lines = [
        f"#### {n:,} files of {FILE_BYTES} bytes {where}",
        "",
        "| step | op s | wall s | op ÷ `cp -r` | peak RSS MiB |",
        "|---|--:|--:|--:|--:|",
    ]
    for step in STEPS:
        r = by.get(step)
        if r is None:
            continue
        ratio = f"{r.op_s / cp.op_s:.2f}" if cp and step != "cp" else ""
        cells = [LABELS[step], fmt_s(r.op_s), fmt_s(r.wall_s), ratio, fmt_mib(r.peak_rss)]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def report(doc: dict) -> str:
    rows = [Row(**r) for r in doc["rows"]]
    targets = [Target(**t) for t in doc["targets"]]
    loads = [r.load for r in rows] or [0.0]
    sizes = sorted({(r.layout, r.files) for r in rows}, key=lambda k: (k[0] != "nested", k[1]))
    lines = [
        "## cairn at scale",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".",
        f"Machine: {doc['machine']}. Files of {FILE_BYTES} bytes in folders of {PER_FOLDER} "
        f"(flat: one folder). {doc['repeat']} run(s) per step, medians; run took "
        f"{doc['elapsed_s'] / 60:.1f} min"
        + (" (cut short: the sizes measured so far)." if doc.get("partial") else "."),
        "",
        *(line for lay, n in sizes for line in table(rows, lay, n)),
        "| target | measured | result |",
        "|---|---|---|",
        *(f"| {t.name} | {t.measured} | **{t.verdict}** |" for t in targets),
        "",
        "*op*: for cairn, timed inside the child once `cairn.cli` (or, for the draft, "
        "`cairn`) is imported: what the command costs a process that has its imports done; "
        "for `cp` and `dvc`, the whole command. *wall*: the whole child process, interpreter "
        "start-up and imports included. Ratios to `cp -r` are of the same data in the same "
        "run. Peak RSS: the child's maximum resident set (GNU time).",
        f"1-minute load average before the steps: median {statistics.median(loads):.1f}, "
        f"max {max(loads):.1f} on {os.cpu_count()} cores"
        + (
            ": other work was running, times are inflated and noisy."
            if max(loads) > (os.cpu_count() or 1)
            else "."
        ),
    ]
    return "\n".join(lines)


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [Row(**r) for r in doc["rows"] if r["layout"] == "nested"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    colors = plt.get_cmap("tab20").colors
    for i, step in enumerate(STEPS):
        pts = sorted((r.files, r.op_s, r.peak_rss) for r in rows if r.step == step)
        if not pts:
            continue
        style: dict = {"color": colors[(2 * i) % 20 + (2 * i) // 20], "marker": "o"}
        if step == "cp":
            style = {"color": "black", "linestyle": "--", "linewidth": 2.5, "marker": "s"}
        elif step in BASELINES:
            style |= {"linestyle": ":", "marker": "s"}
        xs = [p[0] for p in pts]
        label = LABELS[step].replace("`", "")
        ax_t.plot(xs, [p[1] for p in pts], label=label, **style)
        ax_m.plot(xs, [p[2] / (1 << 20) for p in pts], **style)
    for ax, title in ((ax_t, "time (s; cairn: after imports)"), (ax_m, "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"files of {FILE_BYTES} bytes")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="center right", fontsize=8)
    fig.suptitle(f"cairn at scale ({doc['versions'].get('cairn', 'cairn')[:60]})", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.83, 0.95))
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


# --- main -----------------------------------------------------------------------------------


def tool_versions(args: argparse.Namespace, steps: set[str]) -> dict[str, str]:
    if not os.access(GNU_TIME, os.X_OK):
        raise BenchError(f"{GNU_TIME} missing: `apt-get install time` (it measures peak RSS)")
    out = {}
    if steps & set(CAIRN_STEPS):
        probe = "import cairn, importlib.metadata as m; print(m.version('cairn'), cairn.__file__)"
        got = subprocess.run([args.python, "-c", probe], capture_output=True, text=True)
        if got.returncode:
            raise BenchError(f"cairn is not importable by {args.python}: pass --python")
        version, where = got.stdout.split()
        out["cairn"] = version + source_revision(Path(where))
    if steps & {"dvc-add", "dvc-checkout"}:
        try:
            got = subprocess.run([args.dvc, "--version"], capture_output=True, text=True)
        except OSError:
            raise BenchError(
                "DVC missing: run benchmarks/setup_baselines.sh or pass --dvc"
            ) from None
        out["dvc"] = got.stdout.strip()
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1k,10k,100k", help="file counts (default 1k,10k,100k)")
    p.add_argument("--million", action="store_true", help="add 1M files (an hour or more)")
    p.add_argument("--only", help=f"a subset of the steps: {','.join(STEPS)}")
    p.add_argument("--flat", action="store_true", help="also all files in one folder")
    p.add_argument("--repeat", type=int, default=1, help="runs per size (medians; default 1)")
    p.add_argument("--python", default=sys.executable, help="interpreter that imports cairn")
    p.add_argument("--dvc", default=str(HERE / ".venv-dvc" / "bin" / "dvc"))
    p.add_argument("--workdir", default=tempfile.gettempdir(), help="parent of the scratch dir")
    p.add_argument("--json", help="write every measurement here")
    p.add_argument("--plot", help="write the PNG plot here")
    p.add_argument("--from-json", help="report (and plot) a JSON written earlier; run nothing")
    args = p.parse_args(argv)
    args.sizes = sorted({parse_count(s) for s in args.sizes.split(",") if s.strip()})
    if args.million:
        args.sizes = sorted({*args.sizes, 1_000_000})
    args.steps = [s.strip() for s in (args.only or ",".join(STEPS)).split(",") if s.strip()]
    if unknown := set(args.steps) - set(STEPS):
        p.error(f"unknown step(s) {','.join(sorted(unknown))}: choose from {','.join(STEPS)}")
    return args


def measure_all(args: argparse.Namespace) -> dict:
    start = time.monotonic()
    versions = tool_versions(args, set(args.steps))
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-scale-", dir=args.workdir))
    machine = machine_line(work)
    rows: list[Row] = []
    errors: list[str] = []

    def doc(*, partial: bool) -> dict:
        return {
            "config": {k: v for k, v in vars(args).items() if k not in ("from_json",)},
            "versions": versions,
            "machine": machine,
            "repeat": args.repeat,
            "elapsed_s": time.monotonic() - start,
            "partial": partial,
            "errors": errors,
            "rows": [asdict(r) for r in rows],
            "targets": [asdict(t) for t in evaluate(rows)],
        }

    try:
        layouts = ["nested", "flat"] if args.flat else ["nested"]
        for n in args.sizes:
            for layout in layouts:
                steps = [s for s in args.steps if layout == "nested" or s in FLAT_STEPS]
                if not steps:
                    continue
                log(f"{layout} {count_label(n)}: generating {n:,} files")
                data = make_dataset(work, n, layout)
                run = SizeRun(args, data, work)
                rows += run.run(steps)
                errors += run.errors
                shutil.rmtree(data.root.parent)
                if args.json:  # what is measured so far survives a run cut short
                    Path(args.json).write_text(json.dumps(doc(partial=True), indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return doc(partial=False)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`: the scratch dir goes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
    else:
        signal.signal(signal.SIGTERM, _terminate)
        try:
            doc = measure_all(args)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(report(doc))
    for error in doc.get("errors", []):
        print(f"- FAILED: {error}")
    if args.plot:
        plot(doc, args.plot)
    failed = doc.get("errors") or any(t["verdict"] == "FAIL" for t in doc["targets"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
