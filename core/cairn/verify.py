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
from .layout import namespace_prefix, object_key

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

    def check(obj: tuple[str, str]) -> tuple[tuple[str, str], str | None, int]:
        namespace, d = obj
        try:
            data = repo.store.get(object_key(d, namespace=namespace))
        except FileNotFoundError:
            return obj, "missing", 0
        return obj, None if blake3.blake3(data).hexdigest() == d else "corrupt", len(data)

    with ThreadPoolExecutor(repo.store.concurrency) as pool:
        for obj, problem, size in pool.map(check, sorted(owners)):
            report.objects_checked += 1
            report.bytes_checked += size
            if problem == "missing":
                report.missing.append(owners[obj])
            elif problem == "corrupt":
                report.corrupt.append(owners[obj])
    return report
