"""Operator extra links: from a task instance to the page of the version it logged or used.

The link is computed where the task ran, when it finishes (Airflow stores it in XCom
under the link's key and the UI reads it back), from the ref the operator recorded: the
version page of the cairn UI mounted in this Airflow (`[api] base_url` + /cairn), or of a
standalone `cairn ui` when the connection names one (extra `ui_url`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

from cairn import Ref
from cairn.ui import links

#: where the UI lives in the API server (plugins.py mounts it): http://airflow/cairn/projects
URL_PREFIX = "/cairn"
#: attribute where the operators keep the exact ref of the version of this task instance
REF_ATTRIBUTE = "cairn_ref"


class CairnVersionLink(BaseOperatorLink):
    """ "cairn version": the version a LogArtifact/UseArtifact/FinishArtifact task made or read."""

    name = "cairn version"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        ref = getattr(operator, REF_ATTRIBUTE, None)
        if not ref:
            return ""  # failed, or not run yet: the UI shows the button disabled
        parsed = Ref.parse(ref)
        return links.version_url(ui_base(operator), parsed.project, parsed.name, parsed.selector)


def ui_base(operator: Any) -> str:
    """The connection's `ui_url`, else the UI mounted in this Airflow's API server."""
    from airflow.configuration import conf

    hook = getattr(operator, "hook", None)
    url = hook.ui_url if hook is not None else None
    if url:
        return str(url)
    return (conf.get("api", "base_url", fallback="") or "").rstrip("/") + URL_PREFIX
