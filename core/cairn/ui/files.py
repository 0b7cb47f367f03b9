"""A version's files: folders a page at a time, a file's preview, and its download.

Every path comes from the URL and is checked like any manifest path (DESIGN invariant 10:
no '..', no empty or absolute segment, whatever the encoding), then looked up in the
manifest: the UI never turns a URL into a store key or a local file name.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from ..foundation.errors import NotFound
from ..foundation.manifest import LINK
from . import links
from .pages import Pages
from .preview import IMAGE_TYPES, extension, preview
from .state import UI
from .versions import header, resolve
from .views import Doc, page_doc

pages = Pages()
router = APIRouter()

FILES_PER_PAGE = 100
#: a version with more files shows a folder first without its subfolders' sizes (the
#: page fetches them next): its first page costs the manifest's decompression, no more
QUICK_FROM = 20_000
BLOCK = 1 << 20
#: a downloaded file never runs as part of the UI: no scripts, no plugins, no frames
SANDBOX = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


@pages.page("/projects/{project}/artifacts/{name}/{version}/files{path:path}", "files.html")
def files_page(
    ui: UI,
    project: str,
    name: str,
    version: str,
    path: str,
    page: int = Query(1, ge=1),
    limit: int = Query(FILES_PER_PAGE, ge=1, le=1000),
    sizes: bool | None = Query(None, description="folders' sizes (default: when quick)"),
) -> Doc:
    """A folder's listing, or a file's details and preview (`.../files` is the root,
    `.../files/a/b.csv` a path in the version)."""
    if path and not path.startswith("/"):
        raise NotFound("no such page")  # `.../filesX`
    path = path[1:]
    v = resolve(ui.repo, project, name, version)
    reader = ui.reader(v)
    tree = reader.file_tree()
    base = links.of_version(v)
    doc = header(ui, v)
    doc["crumbs"] = _crumbs(base, path)
    if path and tree.is_file(path.rstrip("/")):
        entry = tree.entry(path)
        doc["file"] = {
            "path": entry.path,
            "name": entry.path.rsplit("/", 1)[-1],
            "kind": entry.kind,
            "link": entry.target,  # a link's target, relative to its folder
            "size": entry.size,
            "digest": entry.digest,
            "chunks": len(entry.chunks),
            "reference": entry.ref,
            "download": links.raw(base, entry.path),
            "cairn_uri": f"cairn://{v.ref}/{entry.path}",
        }
        image = links.raw(base, entry.path, inline=True)
        try:
            target = reader.resolve(entry.path) if entry.kind == LINK else entry
        except NotFound as exc:  # a link to nothing in the version
            doc["preview"] = {"kind": "error", "note": str(exc)}
        else:
            doc["preview"] = preview(reader, target, image_url=image)
            doc["file"]["size"] = target.size
        return doc
    if sizes is None:
        sizes = tree.indexed or v.file_count <= QUICK_FROM
    listing = tree.listdir(path, offset=(page - 1) * limit, limit=limit, sizes=sizes)
    doc["listing"] = page_doc(listing, base)
    doc["page"] = page
    doc["pages"] = max(1, -(-listing.total // limit))
    return doc


@router.get(
    "/projects/{project}/artifacts/{name}/{version}/raw/{path:path}", include_in_schema=False
)
def raw(ui: UI, project: str, name: str, version: str, path: str, inline: bool = False) -> Response:
    """The file's bytes, streamed and verified object by object as every read is.

    The first block is read before the response starts, so a missing or corrupt first
    object is an error page; a later one ends the transfer short of its Content-Length,
    which every client reports as a failed download, never as a good file.
    """
    v = ui.reader(resolve(ui.repo, project, name, version))
    entry = v.resolve(path)  # a link's target's bytes, under the link's name
    stream = v.open(path)
    try:
        first = stream.read(BLOCK)
    except BaseException:
        stream.close()
        raise
    ext = extension(path)
    shown = inline and ext in IMAGE_TYPES
    media = IMAGE_TYPES[ext] if shown else _media_type(entry.path)
    filename = path.rstrip("/").rsplit("/", 1)[-1]
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = "inline" if shown else "attachment"
    names = f"filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
    headers = {
        "Content-Length": str(entry.size),
        "Content-Disposition": f"{disposition}; {names}",
        "Content-Security-Policy": SANDBOX,
        "Cache-Control": "private",
    }
    if entry.digest:
        headers["ETag"] = f'"{entry.digest}"'
    return StreamingResponse(_blocks(first, stream), media_type=media, headers=headers)


def _blocks(first: bytes, stream: object) -> Iterator[bytes]:
    try:
        if first:
            yield first
        while block := stream.read(BLOCK):  # type: ignore[attr-defined]
            yield block
    finally:
        stream.close()  # type: ignore[attr-defined]


def _media_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


def _crumbs(base: str, path: str) -> list[Doc]:
    """The path as links: the version's root, then each folder down to `path`."""
    crumbs = [{"name": "files", "url": links.files(base)}]
    parts = [p for p in path.strip("/").split("/") if p]
    for i, part in enumerate(parts):
        crumbs.append({"name": part, "url": links.files(base, "/".join(parts[: i + 1]))})
    return crumbs
