"""`CairnHook`: a cairn repository from an Airflow connection of type `cairn`.

The connection's extras name the catalog URL, the store URL and the store's storage options
(a JSON object); every field is optional, and with no connection at all the hook opens the
embedded default (`$CAIRN_HOME`, or the CAIRN_* variables), like `Repository.open()`:

    AIRFLOW_CONN_CAIRN_DEFAULT='{"conn_type": "cairn", "extra": {
        "catalog": "postgresql+psycopg://cairn@db/cairn", "store": "s3://bucket/cairn",
        "storage_options": {"anon": false}}}'
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from cairn import ArtifactVersion, InvalidName, NotFound, Repository

from ..lineage.facts import namespace_of, repository_namespace, store_location

#: extras read from the connection (each also accepted with the UI's `extra__cairn__` prefix)
OPTION_FIELDS = ("catalog", "store", "storage_options", "cache_dir")
#: conn id -> OpenLineage namespace, as hooks of this process found it (lineage.converter)
LINEAGE_NAMESPACES: dict[str, str] = {}


class CairnHook(BaseHook):
    """Opens the cairn repository a connection describes; the connection is read lazily."""

    conn_name_attr = "cairn_conn_id"
    default_conn_name = "cairn_default"
    conn_type = "cairn"
    hook_name = "cairn"

    def __init__(self, cairn_conn_id: str = default_conn_name, **kwargs: Any):
        super().__init__(**kwargs)
        self.cairn_conn_id = cairn_conn_id

    # -- connection -------------------------------------------------------------------------

    @cached_property
    def repository_options(self) -> dict[str, Any]:
        """Keyword arguments for `Repository.open` (empty: the embedded default)."""
        try:
            conn = self.get_connection(self.cairn_conn_id)
        except AirflowNotFoundException:
            self.log.info("no connection %r: using the embedded default", self.cairn_conn_id)
            return {}
        return options_from_extras(conn.extra_dejson, self.cairn_conn_id)

    async def aload_connection(self) -> None:
        """Read the connection without blocking an event loop (the triggerer's)."""
        if "repository_options" in self.__dict__:
            return
        try:
            conn = await self.aget_connection(self.cairn_conn_id)
        except AirflowNotFoundException:
            options: dict[str, Any] = {}
        else:
            options = options_from_extras(conn.extra_dejson, self.cairn_conn_id)
        self.__dict__["repository_options"] = options

    @cached_property
    def ui_url(self) -> str | None:
        """Where a standalone `cairn ui` serves this repository (extra `ui_url`), if set;
        task links then go there instead of to the UI mounted in Airflow."""
        try:
            extra = self.get_connection(self.cairn_conn_id).extra_dejson
        except AirflowNotFoundException:
            return None
        url = extra.get("ui_url", extra.get("extra__cairn__ui_url"))
        return str(url).rstrip("/") if url else None

    @cached_property
    def repository(self) -> Repository:
        return Repository.open(**self.repository_options)

    @property
    def lineage_namespace(self) -> str:
        """The OpenLineage namespace of the connection's repository, `cairn://<store URL>`
        (read from the connection, so without opening the repository if it is not open)."""
        if "repository" in self.__dict__:
            namespace = namespace_of(self.repository)
        else:
            namespace = repository_namespace(store_location(self.repository_options))
        LINEAGE_NAMESPACES[self.cairn_conn_id] = namespace
        return namespace

    def get_conn(self) -> Repository:
        return self.repository

    def get_repository(self) -> Repository:
        """The cairn `Repository` (opened once per hook)."""
        return self.repository

    def close(self) -> None:
        if "repository" in self.__dict__:
            self.__dict__.pop("repository").close()

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: open the repository and list its projects."""
        try:
            projects = self.repository.projects()
        except Exception as e:
            return False, str(e)
        return True, f"connected: {len(projects)} project(s)"

    # -- queries the sensor and its trigger share -------------------------------------------

    def newer_version(self, ref: str, newer_than: str | int | None = None) -> str | None:
        """The exact ref (`project/name:vN`) `ref` resolves to, if it exists and is newer
        than version `newer_than` (`v3`, `3` or a ref ending in `:v3`); else None."""
        floor = version_index(newer_than)
        try:
            v: ArtifactVersion = self.repository.artifact(ref)
        except NotFound:
            return None
        if v.index is None or (floor is not None and v.index <= floor):
            return None
        return v.ref


def options_from_extras(extra: dict[str, Any], conn_id: str) -> dict[str, Any]:
    """Repository.open keyword arguments from a connection's extras (blank fields skipped)."""
    options: dict[str, Any] = {}
    for field in OPTION_FIELDS:
        value = extra.get(field, extra.get(f"extra__cairn__{field}"))
        if value not in (None, ""):
            options[field] = value
    raw = options.get("storage_options")
    if isinstance(raw, str):
        try:
            options["storage_options"] = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"connection {conn_id!r}: storage_options is not valid JSON ({e.msg}); "
                'write an object such as {"anon": false}'
            ) from None
    if not isinstance(options.get("storage_options", {}), dict):
        raise ValueError(f"connection {conn_id!r}: storage_options must be a JSON object")
    return options


def version_index(value: str | int | None) -> int | None:
    """3 from `3`, `"3"`, `"v3"` or `"demo/model:v3"`; None from None or ""."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value).rpartition(":")[2]
    digits = text[1:] if text.startswith("v") else text
    if not digits.isdigit():
        raise InvalidName(f"invalid version {value!r}: expected v3, 3 or a ref ending in :v3")
    return int(digits)
