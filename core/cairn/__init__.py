"""cairn: versioned, content-addressed artifact storage for data pipelines."""

from .current import CurrentRuns
from .engine.artifact import Artifact
from .engine.cache import CleanupReport
from .engine.events import VERSION_COMMITTED, Event, Subscription
from .engine.export import ExportReport
from .engine.gc import GCReport
from .engine.recover import CatalogReport, RecoverReport
from .engine.retain import Deletion, RetentionReport
from .engine.transfer import UploadStats
from .engine.tree import FileTree, FolderPage, TreeItem
from .engine.verify import VerifyReport
from .foundation.errors import (
    CairnError,
    Conflict,
    Finalized,
    IntegrityError,
    InvalidName,
    InvalidPolicy,
    InvalidQuery,
    NotFound,
    PermissionDenied,
    ReferenceChanged,
    RepositoryMismatch,
)
from .foundation.manifest import Chunk, Diff, Entry, Manifest
from .foundation.names import Ref, check_name
from .foundation.projects import ProjectInfo
from .foundation.retention import RetentionPolicy
from .foundation.sizes import format_size
from .repository import Repository, recover
from .run import Run
from .search import RunKeys
from .version import ArtifactVersion

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactVersion",
    "CairnError",
    "CatalogReport",
    "Chunk",
    "CleanupReport",
    "Conflict",
    "CurrentRuns",
    "Deletion",
    "Diff",
    "Entry",
    "ExportReport",
    "Event",
    "FileTree",
    "Finalized",
    "FolderPage",
    "GCReport",
    "IntegrityError",
    "InvalidName",
    "InvalidPolicy",
    "InvalidQuery",
    "Manifest",
    "NotFound",
    "PermissionDenied",
    "ProjectInfo",
    "RecoverReport",
    "Ref",
    "ReferenceChanged",
    "Repository",
    "RepositoryMismatch",
    "RetentionPolicy",
    "RetentionReport",
    "Run",
    "RunKeys",
    "Subscription",
    "TreeItem",
    "UploadStats",
    "VERSION_COMMITTED",
    "VerifyReport",
    "check_name",
    "format_size",
    "recover",
]
