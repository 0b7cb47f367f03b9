"""`verify`: re-read every object a version needs and check it against its digest.

Objects are read in the store namespace each version records: a private project's copy
is checked where its readers will read it, not a shared copy of the same content.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import blake3

from . import references
from .catalog.packs import Member
from .layout import namespace_prefix

# packed objects checked per task: up to 256 KiB each, read as ranges of their pack
_PACKED_SLICE = 256

if TYPE_CHECKING:
    from .repository import Repository


@dataclass
class VerifyReport:
    versions_checked: int = 0
    objects_checked: int = 0
    bytes_checked: int = 0
    missing: list[str] = field(default_factory=list)  # "ref path (object digest)"
    corrupt: list[str] = field(default_factory=list)
    #: references whose source is gone or changed since they were logged
    references: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.references)

    def __str__(self) -> str:
        head = (
            f"checked {self.versions_checked} versions, {self.objects_checked} objects, "
            f"{self.bytes_checked} bytes"
        )
        if self.ok:
            return f"{head}: all good"
        lines = [
            f"{head}: {len(self.missing)} missing, {len(self.corrupt)} corrupt, "
            f"{len(self.references)} references changed"
        ]
        lines += [f"missing: {m}" for m in self.missing]
        lines += [f"corrupt: {c}" for c in self.corrupt]
        lines += [f"reference: {r}" for r in self.references]
        return "\n".join(lines)


def verify(repo: Repository, ref: str | None = None) -> VerifyReport:
    if ref is not None:
        targets = [repo.artifact(ref)]
    else:
        targets = [
            v
            for c in repo.collections()
            for v in repo.versions(f"{c['project']}/{c['name']}")
            if v.state == "COMMITTED"
        ]
    report = VerifyReport(versions_checked=len(targets))
    owners: dict[tuple[str, str], str] = {}  # (namespace, digest) -> who needs it
    for v in targets:
        files = v.files()
        place = f" in {namespace_prefix(v.namespace)}" if v.namespace else ""
        for e in files:
            for d in e.objects():
                owners.setdefault((v.namespace, d), f"{v.ref} {e.path} (object {d}{place})")
        problems = references.check_all(
            files, sources=repo.reference_sources, concurrency=repo.store.concurrency
        )
        report.references += [f"{v.ref} {problem}" for problem in problems.values()]

    # loose objects one per read, packed ones by runs of their pack (ranged reads)
    tasks: list[tuple[str, list[str], dict[str, Member]]] = []
    for namespace in sorted({ns for ns, _ in owners}):
        digests = sorted(d for ns, d in owners if ns == namespace)
        where = repo.objects.locate(namespace, digests)
        tasks += [(namespace, [d], where) for d in digests if d not in where]
        packed = sorted(where.values(), key=lambda m: (m.pack, m.start))
        for i in range(0, len(packed), _PACKED_SLICE):
            tasks.append((namespace, [m.digest for m in packed[i : i + _PACKED_SLICE]], where))

    def check(task: tuple[str, list[str], dict[str, Member]]) -> list[tuple[str, str, int]]:
        namespace, digests, where = task
        got = repo.objects.get_many(namespace, digests, where=where)
        out = []
        for d in digests:
            data = got.ok.get(d)
            if data is None:
                exc = got.failed[d]
                if not isinstance(exc, FileNotFoundError):
                    raise exc
                out.append((d, "missing", 0))
            else:
                ok = blake3.blake3(data).hexdigest() == d
                out.append((d, "" if ok else "corrupt", len(data)))
        return out

    with ThreadPoolExecutor(repo.store.concurrency) as pool:
        for (namespace, _, _), results in zip(tasks, pool.map(check, tasks), strict=True):
            for d, problem, size in results:
                report.objects_checked += 1
                report.bytes_checked += size
                if problem == "missing":
                    report.missing.append(owners[namespace, d])
                elif problem == "corrupt":
                    report.corrupt.append(owners[namespace, d])
    return report
