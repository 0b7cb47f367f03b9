"""Copying versions between repositories: `cairn export REF|PROJECT --to STORE_URL`.

The target is another repository (its own store and catalog). Versions keep their
numbers, type, description, metadata, aliases, creation time and store namespace; the
project keeps its visibility and members; runs keep their ids, names, config, summary
and state, and the edges run -logged-> version and version -used by-> run stay.

The target is written as a writer writes (docs/FORMAT.md rules 1 and 4): objects are
leased in the target, checked for existence in the same transaction, and only missing
ones are sent (read from the source, checked against their digests); then the manifest
object; then one catalog transaction per version through the functions a log uses
(`records.commit`, `records.set_alias`, `lineage.create_run`, ...). A version number the
target already uses for other content is a Conflict found before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Protocol

import blake3
from sqlalchemy import Connection, select

from ..catalog import access, lineage, records
from ..catalog.schema import collections, projects, versions
from ..foundation.errors import CairnError, Conflict, IntegrityError, NotFound
from ..foundation.sizes import counted, format_size
from .exporting import Selection, VersionCopy, select_for_export
from .staging import Destination, sending, write_manifest

if TYPE_CHECKING:
    from .needs import Stored

    class Target(Stored, Destination, Protocol):
        """The repository an export writes into: stored, and a staging destination."""


# objects read from the source and sent to the target per round trip
_BATCH = 64
# digests of a version leased and looked up in the target at a time
_LEASE_BATCH = 4096


@dataclass(frozen=True)
class ExportReport:
    """What an export did."""

    target: str
    #: versions committed in the target, and versions it held already (same number and
    #: content: their aliases, description and metadata were brought up to date)
    versions_created: tuple[str, ...] = ()
    versions_present: tuple[str, ...] = ()
    objects_sent: int = 0
    bytes_sent: int = 0
    #: objects the target held already (sent by an earlier export, or shared content)
    objects_present: int = 0
    runs: int = 0
    projects: tuple[str, ...] = ()
    #: members the target could not be given (no such database role there)
    members_skipped: tuple[str, ...] = ()

    def __str__(self) -> str:
        made, had = len(self.versions_created), len(self.versions_present)
        lines = [
            f"exported {counted(made, 'version')} to {self.target}"
            + (f" ({had} there already, brought up to date)" if had else ""),
            f"sent {counted(self.objects_sent, 'object')} ({format_size(self.bytes_sent)}); "
            f"{self.objects_present} the target held already",
            f"projects: {', '.join(self.projects)}; {counted(self.runs, 'run')} of lineage",
        ]
        if self.members_skipped:
            lines.append(
                "not granted (no such role in the target): " + ", ".join(self.members_skipped)
            )
        return "\n".join(lines)


@dataclass
class _Tally:
    """Counts while an export runs."""

    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    sent: int = 0
    bytes: int = 0
    had: int = 0
    skipped: list[str] = field(default_factory=list)


def export_into(source: Stored, what: str, target: Target) -> ExportReport:
    """Copy `what` (a project, `project/name`, or a ref naming one version) from
    `source` into `target`; see the module docstring."""
    if target.identity.require("export into it") == source.identity.id:
        raise CairnError(f"{target.store.url} is this repository's own store: nothing to export")
    with source.catalog.read() as conn:
        chosen = select_for_export(conn, what, default_project=source.default_project)
    with target.catalog.read() as conn:
        present = _check_numbers(conn, chosen.versions)
    tally = _Tally()
    _projects(target, chosen, tally)
    known_runs = _runs(target, chosen)
    mapped: dict[int, int] = {}
    for v in chosen.versions:
        mapped[v.source_id] = _copy(source, target, v, known_runs, tally)
        (tally.present if v.source_id in present else tally.created).append(v.ref)
    with target.catalog.write() as conn:
        for run_id, version_id in chosen.usages:
            if run_id in known_runs and version_id in mapped:
                lineage.record_use(conn, run_id, mapped[version_id])
    return ExportReport(
        target=target.store.url,
        versions_created=tuple(tally.created),
        versions_present=tuple(tally.present),
        objects_sent=tally.sent,
        bytes_sent=tally.bytes,
        objects_present=tally.had,
        runs=len(known_runs),
        projects=tuple(p.name for p in chosen.projects),
        members_skipped=tuple(tally.skipped),
    )


def _check_numbers(conn: Connection, wanted: tuple[VersionCopy, ...]) -> set[int]:
    """Source ids of the versions the target holds already; Conflict (before anything is
    written) if it uses one of their numbers, or holds one's content, otherwise."""
    present: set[int] = set()
    problems: list[str] = []
    for v in wanted:
        coll = conn.execute(
            select(collections.c.id, collections.c.type)
            .join(projects, projects.c.id == collections.c.project_id)
            .where(projects.c.name == v.project, collections.c.name == v.collection)
        ).first()
        if coll is None:
            continue
        if coll.type != v.type:
            problems.append(f"{v.project}/{v.collection} is of type {coll.type!r} there")
            continue
        rows = conn.execute(
            select(versions.c.idx, versions.c.digest, versions.c.state).where(
                versions.c.collection_id == coll.id,
                (versions.c.idx == v.index)
                | ((versions.c.digest == v.manifest.digest) & (versions.c.state == "COMMITTED")),
            )
        ).all()
        same = [r for r in rows if r.idx == v.index and r.digest == v.manifest.digest]
        if same and same[0].state == "COMMITTED" and len(rows) == 1:
            present.add(v.source_id)
        elif rows:
            other = rows[0]
            problems.append(
                f"{v.ref} is taken there by other content"
                if other.idx == v.index
                else f"{v.ref}'s content is v{other.idx} there"
            )
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise Conflict(
            f"cannot export: the target already has {'; '.join(problems[:3])}{more}; "
            "nothing was exported"
        )
    return present


def _projects(target: Stored, chosen: Selection, tally: _Tally) -> None:
    """Create each project in the target (or set its visibility), and grant its members."""
    for info in chosen.projects:
        with target.catalog.write() as conn:
            row = conn.execute(
                select(projects.c.visibility).where(projects.c.name == info.name)
            ).first()
            if row is None:
                access.create_project(conn, info.name, info.visibility)
            elif row.visibility != info.visibility:
                access.set_visibility(conn, info.name, info.visibility)
            for m in info.members:
                try:
                    access.grant(conn, info.name, m.principal, m.role)
                except NotFound:
                    tally.skipped.append(f"{m.principal} ({m.role} of {info.name})")


def _runs(target: Stored, chosen: Selection) -> set[str]:
    """Create (or bring up to date) every run of the selection; returns their ids."""
    with target.catalog.write() as conn:
        for r in chosen.runs:
            pid = records.project_id(conn, r.project, create=True)
            lineage.create_run(
                conn,
                pid,
                name=r.name,
                job_type=r.job_type,
                group=r.group,
                kind=r.kind,
                attributes=r.attributes,
                run_id=r.id,
                config=r.config,
                created_at=r.created_at,
            )
            if r.summary:
                lineage.merge_document(conn, r.id, "summary", r.summary)
            if r.state != "running":
                lineage.finish_run(conn, r.id, r.state, at=r.finished_at)
    return {r.id for r in chosen.runs}


def _copy(
    source: Stored,
    target: Target,
    v: VersionCopy,
    known_runs: set[str],
    tally: _Tally,
) -> int:
    """Store `v`'s missing objects and its manifest's documents in the target, then
    commit it; all under a lease taken (and checked against, under the GC guard) first.

    The manifest's objects come as a stream, a batch at a time: each batch is leased and
    looked up in the target, the missing ones are read from the source, checked against
    their digests and sent, small ones as packs (a version of a million small files is
    not a million loose objects, nor a million digests in memory)."""
    ns = v.namespace
    with sending(target, namespace=ns) as out:
        for batch in _batches(v.manifest.each_object(), _LEASE_BATCH):
            have = out.uploader.held(batch)
            missing = [d for d in batch if d not in have]
            tally.had += len(batch) - len(missing)
            for i in range(0, len(missing), _BATCH):
                got = source.objects.get_many(ns, missing[i : i + _BATCH])
                got.raise_first()
                for digest, data in got.ok.items():
                    if blake3.blake3(data).hexdigest() != digest:
                        raise IntegrityError(
                            f"{v.ref}: object {digest} is corrupt in the source store; "
                            "run `cairn verify` there"
                        )
                out.uploader.send(got.ok)
        staged = out.finish()
        tally.sent += staged.stats.objects_sent
        tally.bytes += staged.stats.bytes_sent
        write_manifest(target, staged, v.manifest)
        return _commit(target, v, known_runs)


def _batches(digests: Iterator[str], size: int) -> Iterator[list[str]]:
    """Consecutive batches of distinct digests (a digest repeated within one batch, as
    files of the same content next to each other are, is asked about once)."""
    while batch := list(dict.fromkeys(islice(digests, size))):
        yield batch


def _commit(target: Target, v: VersionCopy, known_runs: set[str]) -> int:
    """One transaction: the manifest row, the version at its number, its aliases (the
    damaged rows of objects it stored good copies of are cleared by `Sender.finish`)."""
    with target.catalog.write() as conn:
        # shared GC guard: gc must not see the manifest row without its version
        target.catalog.gc_guard(conn, exclusive=False)
        access.require(conn, v.project, "write")
        coll = records.collection(conn, v.project, v.collection, type=v.type, create=True)
        records.save_manifest(conn, v.manifest, coll.project_id)
        version_id, created = records.commit(
            conn,
            coll,
            v.manifest,
            description=v.description,
            metadata=v.metadata,
            run_id=v.run_id if v.run_id in known_runs else None,
            namespace=v.namespace,
            index=v.index,
            created_at=v.created_at,
        )
        if not created:  # exported before: bring its mutable fields up to date
            records.update_version(conn, version_id, description=v.description, metadata=v.metadata)
        for a in v.aliases:
            records.set_alias(conn, coll.id, a, version_id)
    return version_id


__all__ = ["ExportReport", "export_into"]
