"""cairn: versioned, content-addressed artifact storage for data pipelines."""

from .artifact import Artifact
from .cache import CleanupReport
from .errors import (
    CairnError,
    Conflict,
    Finalized,
    IntegrityError,
    InvalidName,
    InvalidQuery,
    NotFound,
    PermissionDenied,
    ReferenceChanged,
)
from .events import Event, Subscription
from .gc import GCReport
from .manifest import Chunk, Diff, Entry, Manifest
from .names import Ref
from .projects import ProjectInfo
from .repository import Repository
from .run import Run
from .search import RunKeys
from .transfer import UploadStats
from .tree import FileTree, FolderPage, TreeItem
from .verify import VerifyReport
from .version import ArtifactVersion

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactVersion",
    "CairnError",
    "Chunk",
    "CleanupReport",
    "Conflict",
    "Diff",
    "Entry",
    "Event",
    "FileTree",
    "Finalized",
    "FolderPage",
    "GCReport",
    "IntegrityError",
    "InvalidName",
    "InvalidQuery",
    "Manifest",
    "NotFound",
    "PermissionDenied",
    "ProjectInfo",
    "Ref",
    "ReferenceChanged",
    "Repository",
    "Run",
    "RunKeys",
    "Subscription",
    "TreeItem",
    "UploadStats",
    "VerifyReport",
]
