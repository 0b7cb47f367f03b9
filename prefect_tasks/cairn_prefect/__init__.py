"""cairn for Prefect 3: a `CairnRepository` block and tasks to log, use, upsert and finish
versioned artifacts from flows (loaded by Prefect through the `prefect.collections` entry
point, which registers the block type)."""

from .assets import asset_key
from .blocks import CairnRepository
from .current import current_run
from .identity import PrefectIdentity
from .summary import VersionSummary, artifact_key
from .tasks import Part, finish_artifact, log_artifact, upsert_artifact, use_artifact

__all__ = [
    "CairnRepository",
    "Part",
    "PrefectIdentity",
    "VersionSummary",
    "artifact_key",
    "asset_key",
    "current_run",
    "finish_artifact",
    "log_artifact",
    "upsert_artifact",
    "use_artifact",
]
