"""Partitioned tables: Parquet or CSV parts under one folder of a version, read as one table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..foundation.errors import CairnError, NotFound
from ..foundation.manifest import DIR
from ..foundation.names import check_path
from .download import cache_key

if TYPE_CHECKING:
    import pyarrow

    from .contents import Contents
    from .needs import Listed

_FORMATS = (".parquet", ".csv")


def read_table(version: Listed, name: str, contents: Contents) -> pyarrow.Table:
    """Concatenate every `.parquet` (or every `.csv`) file under folder `name`, in path order
    (fetched into the cache through `contents`).

    The manifest is the index: parts upserted by many writers are found without listing
    any store, verified like every download, and must share one schema.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise CairnError("read_table needs pyarrow: pip install cairn[table]") from exc
    prefix = check_path(name) + "/"
    # a link is read as the file it names in the version; empty folders hold no rows
    named = [
        e.path
        for e in version.files()
        if e.kind != DIR and e.path.startswith(prefix) and e.path.endswith(_FORMATS)
    ]
    if not named:
        raise NotFound(f"{version.ref} has no .parquet or .csv parts under {name!r}")
    kinds = {p.rsplit(".", 1)[-1] for p in named}
    found = [version.resolve(p) for p in named]
    if len(kinds) > 1:
        raise CairnError(f"{version.ref}:{name} mixes Parquet and CSV parts; keep to one format")
    paths = contents.fetch(found, version.namespace)
    reader = pq.read_table if kinds == {"parquet"} else pacsv.read_csv
    tables = [reader(paths[cache_key(e)]) for e in found]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise CairnError(f"{version.ref}:{name}: parts do not share one schema ({exc})") from exc
