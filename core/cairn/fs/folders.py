"""A version's manifest seen as folders, built once per manifest (they never change)."""

from __future__ import annotations

from ..foundation.errors import IntegrityError
from ..foundation.manifest import DIR, FILE, Entry, Manifest


class Folders:
    """A manifest with its files and folders: folder path ('' for the root) -> paths of
    what is in it (empty-folder entries included)."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.files: dict[str, Entry] = {p: e for p, e in manifest.items() if e.kind == FILE}
        self.folders: dict[str, set[str]] = {"": set()}
        for path, e in manifest.items():
            if e.kind == DIR:
                self.folders.setdefault(path, set())
            child = path
            while "/" in child:
                parent = child.rsplit("/", 1)[0]
                self.folders.setdefault(parent, set()).add(child)
                child = parent
            self.folders[""].add(child)

    def real(self, inner: str) -> str | None:
        """`inner` with links followed within the version; None for a link loop."""
        try:
            return self.manifest.resolve(inner)
        except IntegrityError:
            return None

    def below(self, inner: str) -> list[str]:
        """Every manifest path at or below `inner` (a file, a folder or a link)."""
        prefix = inner + "/"
        return [p for p in self.manifest if not inner or p == inner or p.startswith(prefix)]
