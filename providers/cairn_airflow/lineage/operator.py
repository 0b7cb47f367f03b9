"""`get_openlineage_facets_on_start/complete/failure` for cairn's operators and sensor.

The OpenLineage provider may call these methods in a forked copy of the task process,
where asking the supervisor for a connection can hang: they look nothing up. The
repository's namespace is read from the connection while the task's arguments are
rendered (before any event), and stays on the operator.

At START a task reports the collections it is about to read and write, named from its
rendered arguments (no version yet: resolving `:production` now could name another
version than the one the task will get). While it runs it records the versions it really
read and wrote (`record_input` / `record_output`, with the repository open); COMPLETE
and FAIL report those, and what was planned where nothing was recorded: a task that
failed after reading its input reports that input's version and the collection it meant
to write. Facts are only gathered when the OpenLineage provider is installed and enabled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cache
from typing import Any

from cairn import ArtifactVersion, CairnError, Ref

from .facts import VersionFacts, collection_facts, version_facts

log = logging.getLogger(__name__)


@cache
def openlineage_active() -> bool:
    """Whether the OpenLineage provider is installed and configured to emit events."""
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    try:
        return not conf.is_disabled()
    except Exception:  # an unreadable configuration: the provider will say so itself
        return False


class OpenLineageMixin:
    """What a cairn operator reports to OpenLineage. Subclasses name what they plan to read
    and write (`planned_inputs`, `planned_outputs`) and record versions as they go."""

    hook: Any  # a CairnHook (the operator's)

    def planned_inputs(self) -> Sequence[tuple[str, str]]:
        """(project, collection) pairs the task reads, from its rendered arguments."""
        return ()

    def planned_outputs(self) -> Sequence[tuple[str, str]]:
        """(project, collection) pairs the task writes."""
        return ()

    # -- while the task runs ----------------------------------------------------------------

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: Any
    ) -> None:
        # the one rendering step plain and mapped tasks both go through (a mapped task's
        # render_template_fields is the MappedOperator's, which calls this on the unmapped
        # operator), before the listeners hear the task is running
        super()._do_render_template_fields(  # type: ignore[misc]
            parent, template_fields, context, jinja_env, seen_oids
        )
        if parent is self and openlineage_active():
            try:
                self.__dict__["_lineage_namespace"] = self.hook.lineage_namespace
            except Exception as exc:  # a bad connection fails the task later, in its words
                log.warning("no OpenLineage namespace for this task: %s", exc)

    def record_input(self, v: ArtifactVersion) -> None:
        self._record("_lineage_inputs", v)

    def record_output(self, v: ArtifactVersion) -> None:
        self._record("_lineage_outputs", v)

    def _record(self, kind: str, v: ArtifactVersion) -> None:
        if not openlineage_active():
            return
        try:
            facts = version_facts(v, self.hook.lineage_namespace)  # the repository is open
        except Exception as exc:  # lineage never fails the task
            log.warning("no lineage facts for %s: %s", v.ref, exc)
            return
        recorded = self.__dict__.setdefault(kind, [])
        recorded[:] = [f for f in recorded if f.collection != facts.collection] + [facts]

    # -- what the OpenLineage provider calls ---------------------------------------------------

    def get_openlineage_facets_on_start(self) -> Any:
        from .openlineage import operator_lineage

        return operator_lineage(self._planned(self.planned_inputs()), self._planned_outputs())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from .openlineage import operator_lineage

        inputs = self.__dict__.get("_lineage_inputs") or self._planned(self.planned_inputs())
        outputs = self.__dict__.get("_lineage_outputs") or self._planned_outputs()
        return operator_lineage(inputs, outputs)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)

    def _planned_outputs(self) -> list[VersionFacts]:
        return self._planned(self.planned_outputs())

    def _planned(self, pairs: Sequence[tuple[str, str]]) -> list[VersionFacts]:
        namespace = self.__dict__.get("_lineage_namespace")
        if not pairs or namespace is None:
            return []
        return [collection_facts(namespace, p, n) for p, n in dict.fromkeys(pairs)]


def collection_of(ref: str, default_project: str | None) -> list[tuple[str, str]]:
    """[(project, collection)] a ref names; [] for one that does not parse (the task will
    fail with cairn's message about it; lineage stays quiet)."""
    try:
        parsed = Ref.parse(ref, default_project=default_project or _env_project())
    except (CairnError, TypeError):
        return []
    return [(parsed.project, parsed.name)]


def _env_project() -> str:
    return os.environ.get("CAIRN_PROJECT") or "default"
