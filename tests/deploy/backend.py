"""The cairn repository a deployment test's workers share: a PostgreSQL catalog and a
moto S3 store, whose traffic from the workers goes through a fault proxy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import servers
from stores.fault_proxy import FaultProxy

from cairn import Repository


@dataclass(frozen=True)
class CairnBackend:
    """The repository the deployments share, and the proxy their store traffic goes through."""

    catalog: str
    store: str
    s3: servers.S3Endpoint
    proxy: FaultProxy
    home: Path

    def storage_options(self, *, through_proxy: bool) -> dict[str, Any]:
        options = self.s3.storage_options
        if through_proxy:
            options["client_kwargs"] = {"endpoint_url": self.proxy.url}
        return options

    def open(self) -> Repository:
        """The repository as this test process sees it (straight to moto, no proxy)."""
        return Repository.open(
            catalog=self.catalog,
            store=self.store,
            storage_options=self.storage_options(through_proxy=False),
            cache_dir=str(self.home / "cache"),
        )
