"""The CairnRepository block: registration, save/load by name, secrets, the factory."""

from importlib.metadata import entry_points
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.plugins import load_prefect_collections
from pydantic import SecretStr
from sqlalchemy.engine import make_url

import cairn
from cairn import CairnError
from cairn_prefect import CairnRepository


def test_the_collection_entry_point_registers_the_block_type():
    (ep,) = [e for e in entry_points(group="prefect.collections") if e.name == "cairn_prefect"]
    assert ep.value == "cairn_prefect"
    assert "cairn_prefect" in load_prefect_collections()
    assert Block.get_block_class_from_key("cairn-repository") is CairnRepository


def test_save_and_load_by_name_round_trips_every_field():
    CairnRepository(
        catalog="postgresql+psycopg://cairn@db:5432/cairn",
        catalog_password="s3cr3t/pw",
        store="s3://bucket/prefix",
        storage_options={"client_kwargs": {"endpoint_url": "http://minio:9000"}},
        storage_secrets={"key": "AKIA", "secret": "shh"},
        project="team",
    ).save("blocks-round-trip", overwrite=True)

    block = CairnRepository.load("blocks-round-trip")

    assert block.catalog == "postgresql+psycopg://cairn@db:5432/cairn"
    assert isinstance(block.catalog_password, SecretStr)
    assert block.catalog_password.get_secret_value() == "s3cr3t/pw"
    assert block.store == "s3://bucket/prefix"
    assert block.storage_options == {"client_kwargs": {"endpoint_url": "http://minio:9000"}}
    assert block.storage_secrets.get_secret_value() == {"key": "AKIA", "secret": "shh"}
    assert block.project == "team"


def test_secrets_are_obfuscated_in_the_api_and_in_reprs():
    block = CairnRepository(catalog_password="pw-123", storage_secrets={"secret": "shh-456"})
    block.save("blocks-secrets", overwrite=True)

    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(
            "blocks-secrets", "cairn-repository", include_secrets=False
        )

    shown = repr(doc.data) + repr(block)
    assert "pw-123" not in shown
    assert "shh-456" not in shown


def test_get_repository_unwraps_the_secrets_into_the_core_call(monkeypatch):
    opened: dict[str, Any] = {}

    def fake_open(catalog=None, store=None, **kwargs):
        opened.update(catalog=catalog, store=store, **kwargs)
        return "repo"

    monkeypatch.setattr(cairn.Repository, "open", staticmethod(fake_open))
    block = CairnRepository(
        catalog="postgresql+psycopg://cairn@db:5432/cairn",
        catalog_password="p@ss word/1",
        store="s3://bucket/prefix",
        storage_options={"anon": False, "key": "overridden"},
        storage_secrets={"key": "AKIA", "secret": "shh"},
        project="team",
    )

    assert block.get_repository() == "repo"

    assert opened == {
        "catalog": "postgresql+psycopg://cairn:p%40ss%20word%2F1@db:5432/cairn",
        "store": "s3://bucket/prefix",
        "storage_options": {"anon": False, "key": "AKIA", "secret": "shh"},
        "project": "team",
    }
    assert make_url(opened["catalog"]).password == "p@ss word/1"


def test_an_empty_block_is_the_embedded_default(cairn_home, data_dir):
    (data_dir / "a.txt").write_text("alpha\n")

    with CairnRepository().get_repository() as repo:
        v = repo.log_artifact(cairn.Artifact("raw").add_dir(data_dir), project="demo")

    assert v.ref == "demo/raw:v0"
    assert (cairn_home / "store").is_dir()


def test_a_password_without_a_user_is_a_clear_error():
    block = CairnRepository(catalog="postgresql+psycopg://db:5432/cairn", catalog_password="x")
    with pytest.raises(CairnError, match="names no user"):
        block.get_repository()
