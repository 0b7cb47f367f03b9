"""`ArtifactAliasTrigger`: the triggerer's side of a deferred `ArtifactAliasSensor`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cairn import CairnError

from ..hooks.cairn import CairnHook


class ArtifactAliasTrigger(BaseTrigger):
    """Fires when `ref` resolves to a version newer than `newer_than`.

    Holds only plain data (it is serialised to the triggerer); the catalog is queried in
    a thread so the triggerer's event loop never blocks.
    """

    def __init__(
        self,
        *,
        ref: str,
        newer_than: str | int | None = None,
        cairn_conn_id: str = CairnHook.default_conn_name,
        poke_interval: float = 60.0,
    ):
        super().__init__()
        self.ref = ref
        self.newer_than = newer_than
        self.cairn_conn_id = cairn_conn_id
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ref": self.ref,
                "newer_than": self.newer_than,
                "cairn_conn_id": self.cairn_conn_id,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CairnHook(self.cairn_conn_id)
        try:
            await hook.aload_connection()
            while True:
                found = await asyncio.to_thread(hook.newer_version, self.ref, self.newer_than)
                if found:
                    yield TriggerEvent({"status": "success", "ref": found})
                    return
                self.log.info("%s: nothing newer than %s yet", self.ref, self.newer_than)
                await asyncio.sleep(self.poke_interval)
        except CairnError as e:
            yield TriggerEvent({"status": "error", "message": f"{type(e).__name__}: {e}"})
        finally:
            await asyncio.to_thread(hook.close)
