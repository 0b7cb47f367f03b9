"""What lineage says about a cairn version, as plain data: no OpenLineage import here.

The facts are read while the task's repository is open (the OpenLineage listener asks for
them after the task closed it) and travel as JSON in an Asset's `extra` for the TaskFlow
path, so one converter (`lineage.openlineage`) builds the same datasets from either.

Naming (docs: providers/cairn_airflow/README.md, "OpenLineage"):

- a collection is the dataset `namespace=cairn://<store URL>`, `name=project/collection`
  (`cairn://s3://lake/cairn` + `demo/events`): the store is the repository's source of
  truth and every worker names it alike; versions are facets of the dataset, not datasets,
  so the graph connects v0, v1, ... of a collection;
- a reference entry's object is a dataset of its own, named as OpenLineage names objects:
  `s3://bucket` + `key`, `gs://bucket` + `key`, `file` + `/abs/path`, `https://host` +
  `path`. Past `MAX_REFERENCE_DATASETS` objects they are grouped by folder.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cairn import ArtifactVersion, Entry, Repository

log = logging.getLogger(__name__)

NAMESPACE_SCHEME = "cairn"
#: reference objects reported one by one up to this many; beyond it, by folder (then cut)
MAX_REFERENCE_DATASETS = 100
_TABLE_FORMATS = (".parquet", ".csv")


def repository_namespace(store_url: str) -> str:
    """The OpenLineage namespace of the repository whose store is `store_url`."""
    url = store_url.rstrip("/") or "/"
    if url.startswith("file://"):
        url = url[len("file://") :]
    return f"{NAMESPACE_SCHEME}://{url}"


def namespace_of(repo: Repository) -> str:
    return repository_namespace(repo.store.url)


def store_location(options: Mapping[str, Any]) -> str:
    """The store URL `Repository.open(**options)` would open, without opening it (a
    START event is emitted before the task opens its repository)."""
    store = options.get("store") or os.environ.get("CAIRN_STORE")
    if not store:
        home = options.get("home") or os.environ.get("CAIRN_HOME") or "~/.cairn"
        store = os.path.join(os.path.abspath(os.path.expanduser(home)), "store")
    if "://" not in store or store.startswith("file://"):
        return os.path.abspath(os.path.expanduser(store.removeprefix("file://")))
    return str(store).rstrip("/")


@dataclass(frozen=True)
class Dataset:
    """An OpenLineage dataset identifier (namespace + name)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Field:
    """A column of a table version's schema (`type` empty where the format has none: CSV)."""

    name: str
    type: str = ""


@dataclass(frozen=True)
class VersionFacts:
    """A collection, and the version of it a task read or wrote if one is known."""

    namespace: str
    project: str
    name: str
    type: str | None = None
    version: str | None = None  # "v3"; None before a version exists (start) or pending
    version_id: int | None = None
    digest: str | None = None
    size: int | None = None
    file_count: int | None = None
    aliases: tuple[str, ...] = ()
    state: str | None = None
    description: str | None = None
    #: how many entries are references; `references` names their objects (maybe grouped)
    reference_count: int = 0
    references: tuple[Dataset, ...] = ()
    schema: tuple[Field, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def collection(self) -> str:
        return f"{self.project}/{self.name}"

    @property
    def ref(self) -> str | None:
        return f"{self.collection}:{self.version}" if self.version else None

    @property
    def dataset(self) -> Dataset:
        return Dataset(self.namespace, self.collection)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, for an Asset's `extra` (`from_json` reads it back)."""
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["references"] = [[d.namespace, d.name] for d in self.references]
        out["schema"] = None if self.schema is None else [[f.name, f.type] for f in self.schema]
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionFacts:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["aliases"] = tuple(known.get("aliases") or ())
        known["references"] = tuple(Dataset(n, m) for n, m in known.get("references") or ())
        schema = known.get("schema")
        known["schema"] = None if schema is None else tuple(Field(n, t) for n, t in schema)
        return cls(**known)


def collection_facts(namespace: str, project: str, name: str, **extra: Any) -> VersionFacts:
    """A collection with no version known yet (a START event, a failed write)."""
    return VersionFacts(namespace, project, name, extra=extra)


def version_facts(v: ArtifactVersion, namespace: str) -> VersionFacts:
    """Everything lineage reports about `v`; the repository must be open.

    A pending version (a distributed part) has no files yet: its collection only.
    """
    if v.digest is None:
        return VersionFacts(
            namespace,
            v.project,
            v.name,
            type=v.type,
            state=v.state,
            extra={"distributed_id": v.distributed_id} if v.distributed_id else {},
        )
    entries = v.files()
    refs = [e.ref for e in entries if e.ref is not None]
    return VersionFacts(
        namespace=namespace,
        project=v.project,
        name=v.name,
        type=v.type,
        version=v.version,
        version_id=v.id,
        digest=v.digest,
        size=v.size,
        file_count=v.file_count,
        aliases=tuple(sorted(v.aliases)),
        state=v.state,
        description=v.description,
        reference_count=len(refs),
        references=reference_datasets(refs),
        schema=table_schema(v, entries),
    )


def reference_datasets(uris: Iterable[str]) -> tuple[Dataset, ...]:
    """The datasets of referenced objects: one per object, or per folder past the cap."""
    objects = list(dict.fromkeys(object_dataset(u) for u in uris))
    if len(objects) <= MAX_REFERENCE_DATASETS:
        return tuple(objects)
    folders = list(dict.fromkeys(Dataset(d.namespace, _parent(d.name)) for d in objects))
    if len(folders) > MAX_REFERENCE_DATASETS:
        log.info(
            "%d referenced folders: lineage reports the first %d",
            len(folders),
            MAX_REFERENCE_DATASETS,
        )
    return tuple(folders[:MAX_REFERENCE_DATASETS])


def object_dataset(uri: str) -> Dataset:
    """An object's dataset by OpenLineage's naming: `s3://bucket` + key, `file` + path."""
    if "://" not in uri:
        return Dataset("file", uri)
    scheme, rest = uri.split("://", 1)
    scheme = {"gcs": "gs", "s3a": "s3"}.get(scheme.lower(), scheme.lower())
    if scheme == "file":
        return Dataset("file", "/" + rest.lstrip("/"))
    host, _, path = rest.partition("/")
    return Dataset(f"{scheme}://{host}", path.split("?", 1)[0])


def _parent(name: str) -> str:
    parent = posixpath.dirname(name.rstrip("/"))
    return parent or "/"


def table_schema(v: ArtifactVersion, entries: list[Entry]) -> tuple[Field, ...] | None:
    """The schema of a *table version*, one whose files are all Parquet or all CSV parts:
    the first part's columns (a Parquet footer, a CSV header). None for any other version,
    or when it cannot be read (no pyarrow for Parquet, an unreadable part)."""
    files = [e for e in entries if e.is_file]
    if not files:
        return None
    formats = {e.path.rsplit(".", 1)[-1].lower() if "." in e.path else "" for e in files}
    if len(formats) != 1 or f".{next(iter(formats))}" not in _TABLE_FORMATS:
        return None
    first = files[0]
    try:
        if formats == {"csv"}:
            return _csv_header(v, first)
        return _parquet_schema(v, first)
    except Exception as exc:  # lineage must never fail the task: report no schema
        log.info("no schema for %s: %s cannot be read (%s)", v.ref, first.path, exc)
        return None


def _parquet_schema(v: ArtifactVersion, entry: Entry) -> tuple[Field, ...] | None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    with v.open(entry.path) as f:
        schema = pq.ParquetFile(f).schema_arrow
    return tuple(Field(n, str(schema.field(n).type)) for n in schema.names)


def _csv_header(v: ArtifactVersion, entry: Entry) -> tuple[Field, ...]:
    import csv
    import io

    with v.open(entry.path) as f:
        line = f.readline(1 << 16).decode("utf-8", errors="replace")
    [header] = list(csv.reader(io.StringIO(line))) or [[]]
    return tuple(Field(name.strip()) for name in header)
