"""Where each page of the UI lives: the URL layout, in one place.

Paths are relative to the UI's root (`/` for `cairn ui`, `/cairn` when mounted in Airflow's
API server); `url(base, path)` joins them. The orchestrator adapters link task instances
and task runs to version pages with `version_url`, so this module imports nothing beyond
the standard library and cairn's names: it must not need FastAPI.

    /projects/<project>                                    collections
    /projects/<project>/runs[/<run id>]                    runs
    /projects/<project>/artifacts/<name>                   versions
    /projects/<project>/artifacts/<name>/diff?a=v1&b=v2    diff of two versions
    /projects/<project>/artifacts/<name>/<vN|alias>        a version (pending: @<id>)
        .../files[/<folder or file>]  .../raw/<file>  .../lineage
Every page has a JSON twin under /api (e.g. /api/projects/demo).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from ..version import ArtifactVersion

API = "/api"


def projects() -> str:
    return "/projects"


def project(name: str) -> str:
    return f"/projects/{quote(name, safe='')}"


def runs(project_name: str) -> str:
    return f"{project(project_name)}/runs"


def run(project_name: str, run_id: str) -> str:
    return f"{runs(project_name)}/{quote(run_id, safe='')}"


def collection(project_name: str, name: str) -> str:
    return f"{project(project_name)}/artifacts/{quote(name, safe='')}"


def diff(project_name: str, name: str, a: str, b: str) -> str:
    return f"{collection(project_name, name)}/diff?{urlencode({'a': a, 'b': b})}"


def version(project_name: str, name: str, selector: str) -> str:
    """A version by `vN` or alias; a pending distributed version by `@<distributed id>`."""
    return f"{collection(project_name, name)}/{quote(selector, safe='@')}"


def selector(v: ArtifactVersion) -> str:
    """What names `v` in its URL: 'v3', or '@<distributed id>' while it is pending."""
    if v.index is None and v.distributed_id is not None:
        return f"@{v.distributed_id}"
    return v.version


def of_version(v: ArtifactVersion) -> str:
    return version(v.project, v.name, selector(v))


def files(version_path: str, path: str = "") -> str:
    """A folder's listing or a file's preview under a version's page."""
    return f"{version_path}/files/{quote(path)}" if path else f"{version_path}/files"


def raw(version_path: str, path: str, *, inline: bool = False) -> str:
    """A file's bytes: a download, or `inline` for showing an image in the page."""
    return f"{version_path}/raw/{quote(path)}" + ("?inline=1" if inline else "")


def lineage(version_path: str) -> str:
    return f"{version_path}/lineage"


def api(path: str) -> str:
    """The JSON twin of a page."""
    return API + path


def url(base: str, path: str) -> str:
    """`path` under a UI served at `base` (e.g. http://host:8765 or /cairn)."""
    return base.rstrip("/") + path


def version_url(base: str, project_name: str, name: str, selector: str) -> str:
    """The full URL of a version's page, for links from other tools (task instances)."""
    return url(base, version(project_name, name, selector))
