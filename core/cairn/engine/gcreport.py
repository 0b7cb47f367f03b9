"""What a gc run did: freed, kept, kept only for the grace period, and its record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..foundation.durations import format_duration
from ..foundation.sizes import counted, format_size


@dataclass(frozen=True)
class GCReport:
    objects_deleted: int
    bytes_freed: int
    objects_kept: int
    manifests_deleted: int
    dry_run: bool
    #: packs deleted whole, and packs rewritten to hold only their live objects
    packs_deleted: int = 0
    packs_rewritten: int = 0
    #: dead objects left in packs that are mostly live (freed when their pack is rewritten)
    dead_in_packs: int = 0
    dead_bytes_in_packs: int = 0
    #: bytes of the objects kept
    bytes_kept: int = 0
    #: objects and manifests no version needs, kept because they are younger than the
    #: grace period (a writer may be about to commit them); a later gc frees them
    objects_recent: int = 0
    bytes_recent: int = 0
    #: objects and manifests under store namespaces this catalog does not know: kept
    objects_foreign: int = 0
    #: the grace period, in seconds
    grace: float = 0.0
    #: the store key of this run's record of what it deleted (None if nothing went)
    record: str | None = None

    def __str__(self) -> str:
        free, delete, keep, rewrite = (
            ("would free", "would delete", "would keep", "would rewrite")
            if self.dry_run
            else ("freed", "deleted", "kept", "rewrote")
        )
        gone = [counted(self.objects_deleted, "object")]
        if self.manifests_deleted:
            gone.append(counted(self.manifests_deleted, "manifest"))
        lines = [
            f"{free} {format_size(self.bytes_freed)}: {delete} {' and '.join(gone)} "
            "that no version needs",
            f"{keep} {format_size(self.bytes_kept)}: {counted(self.objects_kept, 'object')} "
            "that versions, unfinished uploads or running writers still need",
        ]
        if self.packs_deleted or self.packs_rewritten:
            lines.append(
                f"packs: {delete} {self.packs_deleted} whole, {rewrite} "
                f"{self.packs_rewritten} to hold only what is still needed"
            )
        if self.objects_recent:
            lines.append(
                f"{keep} {format_size(self.bytes_recent)} more only because of the grace "
                f"period: {counted(self.objects_recent, 'object')} that no version needs but "
                f"younger than {format_duration(timedelta(seconds=self.grace))} (a writer may "
                "be about to commit them); a later gc frees them"
            )
        if self.objects_foreign:
            lines.append(
                f"{keep} {counted(self.objects_foreign, 'object')} under store namespaces "
                "this catalog does not know (not its to delete)"
            )
        if self.dead_in_packs:
            lines.append(
                f"not freed yet: {counted(self.dead_in_packs, 'object')} "
                f"({format_size(self.dead_bytes_in_packs)}) that no version needs, inside "
                "packs whose other objects are still needed (a pack is rewritten once half "
                "of it is unneeded)"
            )
        if self.record:
            lines.append(f"recorded what it deleted in the store at {self.record}")
        return "\n".join(lines)


__all__ = ["GCReport"]
