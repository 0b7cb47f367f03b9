"""`cairn://project/name` asset URIs: Airflow normalises them through the provider's
handler and refuses malformed ones; the provider info that registers it passes Airflow's
own JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cairn import InvalidName
from cairn_airflow import get_provider_info
from cairn_airflow.uris import parse_asset_uri


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("cairn://demo/events", "cairn://demo/events"),
        ("CAIRN://demo/events", "cairn://demo/events"),  # the scheme is case-insensitive
        ("Cairn://demo/events///", "cairn://demo/events"),  # trailing slashes dropped
        ("cairn://Demo/Events", "cairn://Demo/Events"),  # names are not: as in cairn's refs
        ("cairn://demo/v1.2_x-y", "cairn://demo/v1.2_x-y"),
    ],
)
def test_airflow_normalises_cairn_uris_with_the_handler(written, canonical):
    from airflow.sdk import Asset

    assert Asset(written).uri == canonical
    assert Asset(written).normalized_uri == canonical
    assert str(parse_asset_uri(written)) == canonical


@pytest.mark.parametrize(
    "uri, says",
    [
        ("cairn:///events", "it has no project"),
        ("cairn://demo", "it has no collection name after the project"),
        ("cairn://demo/", "it has no collection name after the project"),
        ("cairn://demo/model:v3", "':v3' pins a version"),
        ("cairn://demo/model:production", "':production' pins a version"),
        ("cairn://demo/model@airflow:etl:run1", "'@airflow:etl:run1' pins a version"),
        ("cairn://demo/model/data/a.csv", "not a path inside a version ('data/a.csv')"),
        ("cairn://demo:5432/model", "the project 'demo:5432' has a ':'"),
        ("cairn://demo/x?version=3", "no query or fragment"),
        ("cairn://de%20mo/x", "invalid project 'de%20mo'"),
        ("cairn://demo/-x", "invalid collection name '-x'"),
        ("cairn://demo/" + "x" * 129, "invalid collection name"),
        ("cairn://../x", "invalid project '..'"),
    ],
)
def test_malformed_cairn_uris_are_refused_with_what_to_write(uri, says):
    from airflow.sdk import Asset

    with pytest.raises(ValueError) as caught:  # InvalidName is a ValueError, as Airflow expects
        Asset(uri)
    message = str(caught.value)  # the URI as Airflow hands it over (trailing '/' dropped)
    assert says in message, message
    assert message.startswith(f"invalid cairn asset URI {uri.rstrip('/')!r}"), message
    with pytest.raises(InvalidName):
        parse_asset_uri(uri)


def test_a_password_in_a_uri_is_dropped_by_airflow_and_a_user_refused_by_cairn():
    from airflow.sdk import Asset

    with pytest.raises(InvalidName, match="no user or password"):
        parse_asset_uri("cairn://me@demo/x")
    with pytest.warns(UserWarning, match="password"):
        assert Asset("cairn://me:secret@demo/x").uri == "cairn://demo/x"


def test_asset_for_and_the_factory_make_the_same_asset():
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from cairn_airflow import asset_for

    factory = ProvidersManagerTaskRuntime().asset_factories["cairn"]
    made = factory(project="demo", name="events", extra={"k": 1})
    assert made.uri == asset_for("demo", "events").uri == "cairn://demo/events"
    assert made.extra == {"k": 1}
    with pytest.raises(InvalidName, match="invalid project"):
        asset_for("de mo", "events")


def test_provider_info_matches_airflows_provider_schema():
    import airflow
    import jsonschema

    schema = json.loads(Path(airflow.__file__).with_name("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)  # raises with the offending field
    [uris] = info["asset-uris"]
    assert set(uris) == {"schemes", "handler", "factory", "to_openlineage_converter"}


def test_every_import_path_in_provider_info_resolves():
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManagerTaskRuntime()
    from cairn_airflow.assets import create_asset
    from cairn_airflow.lineage.converter import convert_asset_to_openlineage
    from cairn_airflow.uris import normalize_asset_uri

    assert manager.asset_uri_handlers["cairn"] is normalize_asset_uri
    assert manager.asset_factories["cairn"] is create_asset
    assert manager.asset_to_openlineage_converters["cairn"] is convert_asset_to_openlineage


def test_a_cairn_asset_converts_to_an_openlineage_dataset(cairn_home):
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import Asset

    dataset = translate_airflow_asset(Asset("CAIRN://demo/events/"), None)
    assert (dataset.namespace, dataset.name) == (f"cairn://{cairn_home}/store", "demo/events")
    assert dataset.facets == {}
