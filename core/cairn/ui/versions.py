"""A version's overview page: what it is, who made and used it, and how to use it."""

from __future__ import annotations

from ..foundation.names import check_name
from ..repository import Repository
from ..version import ArtifactVersion
from . import links
from .pages import Pages
from .state import UI, UIState
from .views import Doc, run_doc, version_doc

pages = Pages()

#: versions listed beside a version's page; the collection's page lists them all
SIBLINGS = 30
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".json", ".jsonl")


def resolve(repo: Repository, project: str, name: str, selector: str) -> ArtifactVersion:
    """The version a page's URL names: `vN`, an alias, or `@<distributed id>` (pending)."""
    base = f"{check_name(project, kind='project')}/{check_name(name)}"
    if selector.startswith("@"):
        return repo.artifact(f"{base}@{selector[1:]}")
    return repo.artifact(f"{base}:{selector}")


def header(ui: UIState, v: ArtifactVersion) -> Doc:
    """What every tab of a version's page shows above its content."""
    repo, project, name = ui.repo, v.project, v.name
    # the newest versions (pending ones first), and the one before this: a collection of
    # thousands of versions costs what one of a few does
    siblings = repo.search_versions(
        "", project=project, name=name, order_by="-version", limit=SIBLINGS
    )
    listed = [version_doc(s) for s in siblings]
    if v not in siblings:
        listed.append(version_doc(v))
    older = []
    if v.index is not None:
        query = "version < :i AND state = 'COMMITTED'"
        older = repo.search_versions(
            query, project=project, name=name, order_by="-version", limit=1, params={"i": v.index}
        )
    return {
        "version": version_doc(v),
        "collection": {
            "project": v.project,
            "name": v.name,
            "type": v.type,
            "versions": repo.count_versions(project=project, name=name),
            "url": links.collection(v.project, v.name),
            "project_url": links.project(v.project),
        },
        "siblings": listed,
        "previous": links.selector(older[0]) if older else None,
        "tabs": _tabs(v),
    }


def _tabs(v: ArtifactVersion) -> list[Doc]:
    base = links.of_version(v)
    tabs: list[Doc] = [{"id": "overview", "label": "Overview", "url": base}]
    if v.digest is None:
        return tabs  # pending: no files yet, and its parts' runs are on the overview
    files: Doc = {"id": "files", "label": "Files", "url": links.files(base), "count": v.file_count}
    lineage: Doc = {"id": "lineage", "label": "Lineage", "url": links.lineage(base)}
    return [*tabs, files, lineage]


@pages.page("/projects/{project}/artifacts/{name}/@{distributed_id:path}", "version.html")
def pending_version_page(ui: UI, project: str, name: str, distributed_id: str) -> Doc:
    """A distributed version being assembled (its id may hold any character, '/' too)."""
    return version_page(ui, project, name, f"@{distributed_id}")


@pages.page("/projects/{project}/artifacts/{name}/{version}", "version.html")
def version_page(ui: UI, project: str, name: str, version: str) -> Doc:
    v = resolve(ui.repo, project, name, version)
    run = v.logged_by()
    doc = header(ui, v)
    doc.update(
        logged_by=run_doc(run) if run is not None else None,
        used_by=[run_doc(r) for r in v.used_by()],
        contributors=[run_doc(r) for r in v.contributors()],
        usage=usage(v, _table_file(ui, v)),
    )
    return doc


def _table_file(ui: UIState, v: ArtifactVersion) -> str | None:
    """A file the pandas snippet can read: the first table-like one, if there is one."""
    if v.digest is None:
        return None
    return ui.tree(v).first_path_ending(TABLE_SUFFIXES)


def usage(v: ArtifactVersion, table: str | None) -> Doc:
    """Snippets that use this exact version from Python, the CLI, pandas and the
    orchestrators (the ref names the version number, so they keep working when aliases
    move on)."""
    ref = v.ref
    if v.state == "PENDING":
        return {}
    folder = f"{v.name}-{v.version}"
    python = (
        "from cairn import Repository\n\n"
        "repo = Repository.open()\n"
        f'v = repo.artifact("{ref}")\n'
        f'path = v.download("{folder}")  # verified, from the local cache when it can\n\n'
        "# or record that a run of yours used it (lineage):\n"
        f'with repo.run(project="{v.project}", name="my-step") as run:\n'
        f'    path = run.use_artifact("{ref}").download("{folder}")\n'
    )
    cli = f"cairn get {ref} --root {folder}\ncairn show {ref}\ncairn lineage {ref}\n"
    if table is not None:
        reader = {
            ".parquet": "read_parquet",
            ".json": "read_json",
            ".jsonl": "read_json",
            ".tsv": "read_csv",
        }.get("." + table.rsplit(".", 1)[-1], "read_csv")
        extra = ", lines=True" if table.endswith(".jsonl") else ""
        extra += ', sep="\\t"' if table.endswith(".tsv") else ""
        pandas = (
            "import pandas as pd\n\n"
            "# cairn:// reads straight from the store, verified, without a download\n"
            f'df = pd.{reader}("cairn://{ref}/{table}"{extra})\n'
        )
    else:
        pandas = (
            "import fsspec\n\n"
            "# cairn:// reads straight from the store, verified, without a download\n"
            f'with fsspec.open("cairn://{ref}/PATH/IN/ARTIFACT", "rb") as f:\n'
            "    data = f.read()\n"
        )
    airflow = (
        "from cairn_airflow import UseArtifactOperator\n\n"
        f'fetch = UseArtifactOperator(task_id="fetch", ref="{ref}")\n'
        "# XCom: the local folder; the exact ref is pushed as `ref`\n"
    )
    prefect = (
        "from cairn_prefect import use_artifact\n\n"
        f'path = use_artifact("{ref}")  # inside a flow: the local folder\n'
    )
    return {"python": python, "cli": cli, "pandas": pandas, "airflow": airflow, "prefect": prefect}
