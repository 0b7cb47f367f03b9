"""The programs `bench_log.py` runs in child processes, one process per measured step.

Each prints one JSON line on stdout: `{"op_s": seconds, ...}`. The timer starts after the
imports, so `op_s` is the operation itself (what a pipeline that already imported the library
pays); the parent also records the wall time of the whole process. Stdlib only at module level:
this file runs under the cairn interpreter and under wandb's own virtualenv.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PROJECT = "bench"


def emit(op_s: float, **info: object) -> None:
    print(json.dumps({"op_s": op_s, **info}), flush=True)


def cairn_log(args: argparse.Namespace) -> None:
    """First log or unchanged re-log: a new Artifact holding the file or folder, logged."""
    from cairn import Artifact, Repository

    path = Path(args.path)
    t0 = time.perf_counter()
    repo = Repository.open()
    art = Artifact(args.name, type="dataset")
    if path.is_dir():
        art.add_dir(str(path), name=path.name)
    else:
        art.add_file(str(path), name=path.name)
    version = repo.log_artifact(art, project=PROJECT)
    emit(time.perf_counter() - t0, version=str(version.version))


def cairn_draft(args: argparse.Namespace) -> None:
    """A draft of the latest version with a few files replaced, logged."""
    from cairn import Repository

    t0 = time.perf_counter()
    repo = Repository.open()
    parent = repo.artifact(f"{PROJECT}/{args.name}:latest")
    draft = parent.new_draft()
    for local, logical in args.change:
        draft.add_file(local, name=logical)
    version = repo.log_artifact(draft, project=PROJECT)
    emit(time.perf_counter() - t0, version=str(version.version), parent=str(parent.version))


def wandb_add(args: argparse.Namespace) -> None:
    """wandb's offline part of logging: hash every file and copy it to the staging folder."""
    import wandb

    path = Path(args.path)
    t0 = time.perf_counter()
    art = wandb.Artifact("x", type="dataset")
    if path.is_dir():
        art.add_dir(str(path), name=path.name)
    else:
        art.add_file(str(path), name=path.name)
    emit(time.perf_counter() - t0, files=len(art.manifest.entries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="program", required=True)
    log = sub.add_parser("cairn-log")
    log.add_argument("--name", required=True)
    log.add_argument("path")
    draft = sub.add_parser("cairn-draft")
    draft.add_argument("--name", required=True)
    draft.add_argument(
        "--change", nargs=2, action="append", default=[], metavar=("LOCAL", "LOGICAL")
    )
    wb = sub.add_parser("wandb-add")
    wb.add_argument("path")
    args = parser.parse_args()
    {"cairn-log": cairn_log, "cairn-draft": cairn_draft, "wandb-add": wandb_add}[args.program](args)


if __name__ == "__main__":
    main()
