"""cairn: versioned, content-addressed artifact storage for data pipelines."""

from .artifact import Artifact
from .cache import CleanupReport
from .current import CurrentRuns
from .errors import (
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
from .events import VERSION_COMMITTED, Event, Subscription
from .export import ExportReport
from .gc import GCReport
from .manifest import Chunk, Diff, Entry, Manifest
from .names import Ref, check_name
from .projects import ProjectInfo
from .recover import CatalogReport, RecoverReport
from .repository import Repository, recover
from .retain import Deletion, RetentionReport
from .retention import RetentionPolicy
from .run import Run
from .search import RunKeys
from .sizes import format_size
from .transfer import UploadStats
from .tree import FileTree, FolderPage, TreeItem
from .verify import VerifyReport
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
