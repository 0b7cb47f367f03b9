"""`verify`: re-read every object a version needs and check it against its digest.

Objects are read in the store namespace each version records: a private project's copy
is checked where its readers will read it, not a shared copy of the same content.

What is bad is recorded in the catalog (`cairn.catalog.damaged`), so the next writer of
those bytes stores a good copy over the bad one (self-healing), and what reads back
intact again is cleared. Each bad object is reported with every version and file that
needs it. The local download cache is checked too: a cached file that no longer matches
its digest (a hardlinked checkout made writable and edited) is dropped, so it is never
handed out again.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import blake3

from ..catalog import damaged
from ..catalog.packs import Member
from ..foundation.errors import IntegrityError
from ..foundation.layout import manifest_key, namespace_prefix
from ..foundation.manifest import Entry
from ..foundation.manifest_shards import decode
from ..foundation.sizes import counted, format_size
from . import references
from .scratch import Scratch

# packed objects checked per task: up to 256 KiB each, read as ranges of their pack
_PACKED_SLICE = 256
_BATCH = 8192  # needed objects added, located or listed at a time

if TYPE_CHECKING:
    from .needs import Checked, Maintained


@dataclass(frozen=True)
class Need:
    """A file of a version that needs an object (the whole file, or one of its chunks)."""

    ref: str
    entry: Entry

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True)
class BadObject:
    """An object the store does not hold intact, and everything that needs it."""

    namespace: str
    digest: str
    problem: str  # damaged.MISSING or damaged.CORRUPT
    needed_by: tuple[Need, ...]
    #: why `--repair` left it bad, if it tried
    note: str = ""

    @property
    def versions(self) -> list[str]:
        """Refs of the versions that need it, each once, in order."""
        return list(dict.fromkeys(n.ref for n in self.needed_by))

    def where(self) -> str:
        """'object 3fa2... in projects/vision/' (no namespace: the shared one)."""
        place = f" in {namespace_prefix(self.namespace)}" if self.namespace else ""
        return f"object {self.digest}{place}"


@dataclass
class VerifyReport:
    versions_checked: int = 0
    objects_checked: int = 0
    bytes_checked: int = 0
    #: every bad object with every version and file that needs it
    bad: list[BadObject] = field(default_factory=list)
    #: references whose source is gone or changed since they were logged
    references: list[str] = field(default_factory=list)
    #: cache files re-hashed, and the digests of those dropped for not matching
    cache_checked: int = 0
    cache_dropped: list[str] = field(default_factory=list)
    #: format-3 manifest documents (roots, shards) the store lacks or holds corrupt:
    #: 'missing: manifests/<digest>.json, needed by ref, ...' (recover needs them)
    manifests: list[str] = field(default_factory=list)
    #: set by `cairn verify --repair`: (digest, where its good copy came from)
    repaired: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.bad or self.references or self.manifests)

    @property
    def missing(self) -> list[str]:
        """'ref path (object digest[ in namespace])' for every file needing a missing object."""
        return self._lines(damaged.MISSING)

    @property
    def corrupt(self) -> list[str]:
        """The same for corrupt objects."""
        return self._lines(damaged.CORRUPT)

    def _lines(self, problem: str) -> list[str]:
        return [
            f"{n.ref} {n.path} ({b.where()})"
            for b in self.bad
            if b.problem == problem
            for n in b.needed_by
        ]

    @property
    def affected(self) -> list[str]:
        """Every version that needs a bad object, each once."""
        return list(dict.fromkeys(ref for b in self.bad for ref in b.versions))

    def __str__(self) -> str:
        head = (
            f"checked {counted(self.versions_checked, 'version')}, "
            f"{counted(self.objects_checked, 'object')} ({format_size(self.bytes_checked)})"
        )
        lines = [f"repaired {b} from {source}" for b, source in self.repaired]
        if self.ok:
            lines.append(f"{head}: all good")
        else:
            missing = sum(b.problem == damaged.MISSING for b in self.bad)
            found = [
                f"{missing} missing" if missing else "",
                f"{len(self.bad) - missing} corrupt" if len(self.bad) > missing else "",
                f"{counted(len(self.references), 'reference')} changed" if self.references else "",
                f"{counted(len(self.manifests), 'manifest document')} bad"
                if self.manifests
                else "",
            ]
            lines.append(f"{head}: {', '.join(f for f in found if f)}")
        for b in self.bad:
            needed = counted(len(b.versions), "version")
            lines.append(f"{b.problem}: {b.where()}, needed by {needed}:")
            lines += [f"  {n.ref} {n.path}" for n in b.needed_by]
            if b.note:
                lines.append(f"  not repaired: {b.note}")
        lines += [f"reference: {r}" for r in self.references]
        lines += self.manifests
        if self.cache_dropped:
            lines.append(
                f"cache: dropped {counted(len(self.cache_dropped), 'file')} that no longer "
                f"matched its digest (of {self.cache_checked} checked); the next get fetches "
                "it from the store again"
            )
        if self.bad:
            lines.append(f"versions that need a bad object: {', '.join(self.affected)}")
        return "\n".join(lines)


def verify(repo: Maintained, targets: Sequence[Checked], *, whole: bool) -> VerifyReport:
    """Check the committed versions `targets` (with `whole`: every version the caller may
    read), record what is bad in the catalog and clear what reads back intact; drop bad
    cache files (with `whole`, every cache file that no longer matches its digest)."""
    report = VerifyReport(versions_checked=len(targets))
    # what is needed, as (namespace, digest) alone, in a scratch database rather than a
    # set: the entries are streamed (a format-3 manifest a shard at a time) and read
    # again only for the objects found bad
    with _Needed(repo.cache.root) as needs:
        documents: dict[tuple[str, str], list[str]] = defaultdict(list)  # -> refs
        # a shard versions share (a draft's, its parent's) is read once per namespace;
        # the reference problems found in it are each version's that has it
        read: dict[tuple[str, str], list[str]] = {}  # (namespace, shard) -> problems
        for v in targets:
            for shard, entries in v.manifest.by_shard():
                if shard is not None and (v.namespace, shard) in read:
                    report.references += [f"{v.ref} {p}" for p in read[v.namespace, shard]]
                    continue
                refs = []
                for e in entries:
                    needs.add(v.namespace, e.objects())
                    if e.is_reference:
                        refs.append(e)
                problems = list(_checked_references(repo, refs))
                report.references += [f"{v.ref} {p}" for p in problems]
                if shard is not None:
                    read[v.namespace, shard] = problems
            shards = v.manifest.shard_digests()
            for d in (*shards, v.manifest.digest) if shards else ():
                documents[v.namespace, d].append(v.ref)
        report.manifests = _documents_back(repo, documents)
        needs.locate(repo)
        with repo.catalog.read() as conn:
            known = {ns: damaged.digests(conn, ns) for ns in needs.namespaces()}
        found: dict[tuple[str, str], tuple[str, int]] = {}  # the bad, and the healed
        for namespace, d, problem, size in _read_back(repo, needs):
            report.objects_checked += 1
            report.bytes_checked += size
            if problem or d in known[namespace]:
                found[namespace, d] = (problem, size)
        # the cache: every file, or those of the versions checked
        report.cache_checked, report.cache_dropped = repo.cache.scrub(
            None if whole else needs.digests()
        )

    bad = {key for key, (problem, _) in found.items() if problem}
    users: dict[tuple[str, str], list[Need]] = defaultdict(list)
    for v in targets if bad else ():
        for e in v.manifest.stream():
            for d in e.objects():
                if (v.namespace, d) in bad:
                    users[v.namespace, d].append(Need(v.ref, e))
    for (namespace, d), (problem, _) in sorted(found.items()):
        if problem:
            report.bad.append(BadObject(namespace, d, problem, tuple(users[namespace, d])))
    _record(repo, found)
    return report


def _checked_references(repo: Maintained, refs: list[Entry]) -> Iterator[str]:
    """The problem of each reference whose source is gone or changed since it was logged."""
    if refs:
        found = references.check_all(
            refs, sources=repo.reference_sources, concurrency=repo.store.concurrency
        )
        yield from found.values()


class _Needed:
    """The objects versions need, each (namespace, digest) once, and where each is: in
    a scratch SQLite database in the cache (removed when done), not in memory, so a
    verify of versions of a million files holds a batch of them at a time."""

    def __init__(self, folder: str) -> None:
        self._scratch = Scratch(
            folder,
            "verify",
            "CREATE TABLE need (ns TEXT, digest TEXT, pack TEXT, start INT, size INT,"
            " PRIMARY KEY (ns, digest)) WITHOUT ROWID;",
        )
        self._db = self._scratch.db
        self._pending: list[tuple[str, str]] = []

    def __enter__(self) -> _Needed:
        return self

    def __exit__(self, *exc: object) -> None:
        self._scratch.close()

    def add(self, namespace: str, digests: Iterable[str]) -> None:
        self._pending += ((namespace, d) for d in digests)
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT OR IGNORE INTO need (ns, digest) VALUES (?, ?)", self._pending)
        self._pending = []

    def namespaces(self) -> list[str]:
        self._flush()
        return [ns for (ns,) in self._db.execute("SELECT DISTINCT ns FROM need ORDER BY ns")]

    def _listed(self, sql: str, namespace: str) -> Iterator[list[tuple[object, ...]]]:
        """The rows of `sql` (its first column a digest, in order) a batch at a time."""
        after = ""
        while rows := self._db.execute(
            f"{sql} AND digest > ? ORDER BY digest LIMIT {_BATCH}", (namespace, after)
        ).fetchall():
            yield rows
            after = str(rows[-1][0])

    def locate(self, repo: Maintained) -> None:
        """Note where each packed one is (the others are loose)."""
        for namespace in self.namespaces():
            for rows in self._listed("SELECT digest FROM need WHERE ns = ?", namespace):
                where = repo.objects.locate(namespace, [str(r[0]) for r in rows])
                self._db.executemany(
                    "UPDATE need SET pack = ?, start = ?, size = ? WHERE ns = ? AND digest = ?",
                    [(m.pack, m.start, m.size, namespace, d) for d, m in where.items()],
                )

    def digests(self) -> Iterator[str]:
        """Every needed digest, in order, each once (read as they are asked for)."""
        rows = self._db.execute("SELECT DISTINCT digest FROM need ORDER BY digest")
        return (str(d) for (d,) in rows)

    def tasks(self) -> Iterator[tuple[str, list[str], dict[str, Member]]]:
        """(namespace, digests, where the packed ones are) to read back together: a
        loose object alone, packed ones by runs of their pack, in pack order."""
        for namespace in self.namespaces():
            for rows in self._listed(
                "SELECT digest FROM need WHERE ns = ? AND pack IS NULL", namespace
            ):
                yield from ((namespace, [str(d)], {}) for (d,) in rows)
            members = (
                Member(d, pack, start, size)
                for d, pack, start, size in self._db.execute(
                    "SELECT digest, pack, start, size FROM need WHERE ns = ? AND pack IS NOT NULL"
                    " ORDER BY pack, start",
                    (namespace,),
                )
            )
            while part := list(itertools.islice(members, _PACKED_SLICE)):
                yield namespace, [m.digest for m in part], {m.digest: m for m in part}


def _read_back(repo: Maintained, needs: _Needed) -> Iterator[tuple[str, str, str, int]]:
    """(namespace, digest, problem or '', bytes read) for every needed object.

    Loose objects are read one per request, packed ones by runs of their pack (ranged
    reads), on the store's concurrency, a bounded number of tasks at a time.
    """

    def check(task: tuple[str, list[str], dict[str, Member]]) -> list[tuple[str, str, str, int]]:
        namespace, digests, where = task
        got = repo.objects.get_many(namespace, digests, where=where)
        out = []
        for d in digests:
            data = got.ok.get(d)
            if data is None:
                exc = got.failed[d]
                if not isinstance(exc, FileNotFoundError):
                    raise exc
                out.append((namespace, d, damaged.MISSING, 0))
            else:
                ok = blake3.blake3(data).hexdigest() == d
                out.append((namespace, d, "" if ok else damaged.CORRUPT, len(data)))
        return out

    window = 4 * repo.store.concurrency
    with ThreadPoolExecutor(repo.store.concurrency) as pool:
        pending: deque[Future[list[tuple[str, str, str, int]]]] = deque()
        for task in needs.tasks():
            pending.append(pool.submit(check, task))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _documents_back(repo: Maintained, documents: dict[tuple[str, str], list[str]]) -> list[str]:
    """Read back every format-3 manifest document the versions need from their namespace,
    a batch at a time; a line per document missing or corrupt."""
    out: list[str] = []
    keys = {manifest_key(d, namespace=ns): (ns, d) for ns, d in sorted(documents)}
    order = list(keys)
    for i in range(0, len(order), _DOCUMENT_BATCH):
        got = repo.store.get_many(order[i : i + _DOCUMENT_BATCH])
        for key in order[i : i + _DOCUMENT_BATCH]:
            data = got.ok.get(key)
            problem = damaged.MISSING
            if data is not None:
                try:
                    decode(data, expect_digest=keys[key][1])
                    continue
                except IntegrityError:
                    problem = damaged.CORRUPT
            refs = ", ".join(dict.fromkeys(documents[keys[key]]))
            out.append(f"{problem}: {key}, needed by {refs}")
    return out


#: manifest documents read back per batch
_DOCUMENT_BATCH = 64


def _record(repo: Maintained, found: dict[tuple[str, str], tuple[str, int]]) -> None:
    """Write what is bad to the catalog, and clear the rows of what read back intact
    (`found` holds those that were known bad; row-level security lets a reader report,
    and only a writer clear)."""
    with repo.catalog.write() as conn:
        for namespace in sorted({ns for ns, _ in found}):
            here = {d: p for (ns, d), (p, _) in found.items() if ns == namespace}
            damaged.record(conn, namespace, {d: p for d, p in here.items() if p})
            known = damaged.digests(conn, namespace)
            damaged.clear(conn, namespace, {d for d, p in here.items() if not p} & known)
