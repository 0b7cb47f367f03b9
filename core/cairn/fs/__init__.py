"""`cairn://`: every file of every version as an fsspec filesystem, read and write.

    pandas.read_parquet("cairn://demo/sales:v3/part-0.parquet")
    fsspec.filesystem("cairn").ls("demo/sales:production/year=2024")
    df.to_parquet("cairn://demo/sales/part-9.parquet")      # commits demo/sales:v4

Paths are `project/name[:alias|:vN]/path/in/artifact` (no alias: `latest`), or
`name:alias/...` in the default project. `cairn://` lists projects, `cairn://demo` its
collections. Reads fetch what a range needs from the store, checked (`reading`);
writes become new versions derived from the collection's latest (`changes`, `commit`),
one per call or one per `with fs.transaction:` block (`writing`). docs/FS.md has the
details.

The package, by concept: `paths` (what a cairn:// path names), `folders` (a manifest as
folders), `blocks` (block indexes: checking a range without reading its whole object),
`reading` (ranged, cached, verified reads), `changes` and `commit` (edits of a
collection and how they become a version), `writing` (files opened for writing and
transactions), `filesystem` (the fsspec class tying them together).
"""

from .filesystem import CairnFileSystem

__all__ = ["CairnFileSystem"]
