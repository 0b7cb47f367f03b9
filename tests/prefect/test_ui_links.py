"""Link artifacts: a task that logs or uses a version links the task run to the version's
page in the cairn UI, when the block names one (`ui_url`)."""

from pathlib import Path
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from cairn.ui import create_app
from cairn_prefect import CairnRepository, log_artifact, use_artifact
from cairn_prefect.links import link_key


@flow
def log_then_use(path: str, root: str, block: str) -> str:
    ref = log_artifact(path, name="raw", project="demo", repository=block)
    use_artifact(ref, root=root, repository=block)
    return ref


def _links(key: str, flow_run_id) -> list:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
    return [a for a in found if a.flow_run_id == flow_run_id]


def test_logging_and_using_a_version_publish_links_to_its_page(repo, data_dir, tmp_path):
    (data_dir / "a.csv").write_text("x,y\n1,2\n")
    CairnRepository(ui_url="http://cairn-ui.internal:8765/").save("ui-links", overwrite=True)

    state = log_then_use(str(data_dir), str(tmp_path / "out"), "ui-links", return_state=True)

    assert state.result() == "demo/raw:v0"
    page = "http://cairn-ui.internal:8765/projects/demo/artifacts/raw/v0"
    found = _links(link_key("demo", "raw"), state.state_details.flow_run_id)
    # a link artifact is markdown holding one link: [text](url)
    assert [(a.type, a.data) for a in found] == [("markdown", f"[demo/raw:v0]({page})")] * 2
    assert sorted(a.description.split()[0] for a in found) == ["logged", "used"]
    # the link leads to that version's page of the UI over this repository
    response = TestClient(create_app(repo)).get(urlsplit(page).path)
    assert response.status_code == 200
    assert "demo/raw:v0" in response.text


def test_without_a_ui_url_no_link_is_published(repo, data_dir, tmp_path):
    (data_dir / "a.csv").write_text("x,y\n1,2\n")
    CairnRepository().save("no-ui", overwrite=True)

    state = log_then_use(str(data_dir), str(tmp_path / "out"), "no-ui", return_state=True)

    assert state.result() == "demo/raw:v0"
    assert _links(link_key("demo", "raw"), state.state_details.flow_run_id) == []


def test_the_block_keeps_its_ui_url():
    CairnRepository(ui_url="http://airflow.internal/cairn").save("ui-url-kept", overwrite=True)
    assert CairnRepository.load("ui-url-kept").ui_url == "http://airflow.internal/cairn"


def test_a_link_names_a_pending_version_by_its_distributed_id(repo, tmp_path: Path):
    from cairn import Artifact
    from cairn_prefect.links import page_url

    part = Artifact("shards", type="dataset")
    with part.new_file("p.txt") as f:
        f.write("p")
    pending = repo.upsert_artifact(part, project="demo", distributed_id="flow-1", writer_id="w")
    assert page_url("http://ui", pending) == "http://ui/projects/demo/artifacts/shards/@flow-1"
