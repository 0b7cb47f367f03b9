"""`ArtifactAliasSensor`: wait until an alias points at a version newer than a given one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException

from ..errors import task_errors
from ..hooks.cairn import CairnHook
from ..lineage.operator import OpenLineageMixin, collection_of, openlineage_active
from ..triggers.alias import ArtifactAliasTrigger


class ArtifactAliasSensor(OpenLineageMixin, BaseSensorOperator):
    """Wait until `ref` (e.g. `demo/model:production`) names a version newer than
    `newer_than` (`v3`, `3`, or a ref such as `demo/model:v3`; None: any version).

    With `deferrable=True` the wait runs in Airflow's triggerer and frees the worker slot.

    :returns: (XCom) the exact ref found, `project/name:vN`
    """

    template_fields: Sequence[str] = ("ref", "newer_than")

    def __init__(
        self,
        *,
        ref: str,
        newer_than: str | int | None = None,
        cairn_conn_id: str = CairnHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.ref = ref
        self.newer_than = newer_than
        self.cairn_conn_id = cairn_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CairnHook:
        return CairnHook(self.cairn_conn_id)

    def planned_inputs(self) -> Sequence[tuple[str, str]]:
        return collection_of(self.ref, None)

    def poke(self, context: Any) -> PokeReturnValue:
        with task_errors():
            found = self.hook.newer_version(self.ref, self.newer_than)
        self._found(found)
        return PokeReturnValue(is_done=found is not None, xcom_value=found)

    def _found(self, ref: str | None) -> None:
        """Record the version found as the task's input (for OpenLineage)."""
        if ref and openlineage_active():
            with task_errors():
                self.record_input(self.hook.get_repository().artifact(ref))

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        with task_errors():
            found = self.hook.newer_version(self.ref, self.newer_than)
        if found:
            self._found(found)
            return found
        self.defer(
            trigger=ArtifactAliasTrigger(
                ref=self.ref,
                newer_than=self.newer_than,
                cairn_conn_id=self.cairn_conn_id,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        if event.get("status") != "success":
            raise AirflowFailException(event.get("message", "the cairn trigger failed"))
        self.log.info("%s is now %s", self.ref, event["ref"])
        self._found(event["ref"])
        return event["ref"]
