"""`CairnRepository`: the Prefect block naming one cairn repository (catalog + store)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field, SecretStr

from cairn import CairnError, Repository


class CairnRepository(Block):
    """Where cairn keeps versions: a catalog (SQL) and a store (bytes).

    Every field is optional: an empty one falls back to the worker's `CAIRN_CATALOG`,
    `CAIRN_STORE`, `CAIRN_STORAGE_OPTIONS` and `CAIRN_HOME`, so `CairnRepository()` is the
    embedded default (SQLite and a folder under `~/.cairn`). Every worker of a deployment
    must see the same catalog and store.

    Example:
        ```python
        from cairn_prefect import CairnRepository

        CairnRepository(
            catalog="postgresql+psycopg://cairn@db:5432/cairn",
            catalog_password="...",
            store="s3://bucket/cairn",
            storage_secrets={"key": "...", "secret": "..."},
        ).save("prod")

        repo = CairnRepository.load("prod").get_repository()
        ```
    """

    _block_type_name = "Cairn Repository"
    _description = (
        "A cairn repository (catalog URL, store URL, storage options) for logging and "
        "using versioned artifacts from flows."
    )
    _code_example = """
    ```python
    from cairn_prefect import CairnRepository

    repo = CairnRepository.load("BLOCK_NAME").get_repository()
    print(repo.versions("demo/shards"))
    ```
    """

    catalog: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the catalog, without its password (e.g. "
            "postgresql+psycopg://cairn@db:5432/cairn). Empty: CAIRN_CATALOG, else the "
            "embedded SQLite catalog under CAIRN_HOME."
        ),
    )
    catalog_password: SecretStr | None = Field(
        default=None, description="Password put into the catalog URL when connecting."
    )
    store: str | None = Field(
        default=None,
        description=(
            "fsspec URL of the store (s3://bucket/prefix, gs://bucket/prefix or a local "
            "folder). Empty: CAIRN_STORE, else the embedded store under CAIRN_HOME."
        ),
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Options for the store's fsspec filesystem that are not secret, e.g. "
            '{"client_kwargs": {"endpoint_url": "http://minio:9000"}}.'
        ),
    )
    storage_secrets: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description=(
            "Secret fsspec options merged over storage_options when connecting, e.g. "
            '{"key": "...", "secret": "..."} for s3fs.'
        ),
    )
    project: str | None = Field(
        default=None,
        description="Project used by refs and artifacts that name none (default: 'default').",
    )
    ui_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the cairn UI showing this repository (`cairn ui`, e.g. "
            "http://cairn:8765, or Airflow's http://airflow/cairn). When set, tasks that "
            "log or use a version publish a link artifact to the version's page."
        ),
    )

    def get_repository(self) -> Repository:
        """Open the repository; the only place the secrets are unwrapped. Close it after
        use (`with block.get_repository() as repo: ...`)."""
        catalog = self.catalog
        if catalog and self.catalog_password is not None:
            catalog = _with_password(catalog, self.catalog_password.get_secret_value())
        options = {**self.storage_options, **self.storage_secrets.get_secret_value()}
        return Repository.open(
            catalog=catalog or None,
            store=self.store or None,
            storage_options=options or None,  # None: CAIRN_STORAGE_OPTIONS, if set
            project=self.project or None,
        )


def repository_block(repository: CairnRepository | str | None) -> CairnRepository:
    """A block as tasks take it: the block, the name of a saved one, or None for the
    embedded default (CAIRN_* variables, else ~/.cairn)."""
    if repository is None:
        return CairnRepository()
    if isinstance(repository, str):
        return CairnRepository.load(repository)
    return repository


def _with_password(url: str, password: str) -> str:
    """`url` with `password` (percent-encoded) after its user name."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    if not userinfo:
        raise CairnError(
            f"catalog_password is set but the catalog URL {url!r} names no user: "
            "write it as scheme://USER@host/database"
        )
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
