"""Run a DAG file on its own: `python my_dag.py` tests its DAGs with `dag.test()`.

    if __name__ == "__main__":
        from cairn_airflow.standalone import main

        sys.exit(main(dag))

Airflow reads its home and DAGs folder when it is first imported, which a DAG file has
done by the time `main` runs. So `main` prepares a private setup and runs the file again
in a fresh interpreter: AIRFLOW_HOME (default `$CAIRN_HOME/airflow`, i.e.
`~/.cairn/airflow`), the file's folder as the DAGs folder, no Airflow examples, and a
migrated SQLite metadata DB. There it runs each DAG once per logical date and returns 1
if any DAG run did not succeed. cairn itself uses the embedded default (`$CAIRN_HOME`)
unless an AIRFLOW_CONN_CAIRN_DEFAULT connection says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

_READY = "CAIRN_AIRFLOW_STANDALONE"


def main(
    *dags: Any,
    logical_dates: Sequence[datetime | None] = (None,),
    run_conf: dict[str, Any] | None = None,
) -> int:
    """Test `dags` (in order) once per logical date, with `run_conf` as the runs' conf
    (their params); 0 if every DAG run succeeded."""
    script = os.path.abspath(sys.argv[0])
    if os.environ.get(_READY) != script:
        return _rerun_prepared(script)
    failed = []
    for dag in dags:
        for when in logical_dates:
            options: dict[str, Any] = {"run_conf": run_conf} if run_conf else {}
            if when is not None:
                options["logical_date"] = when
            dr = dag.test(**options)
            print(_summary(dr))
            if dr.state != "success":
                failed.append(f"{dr.dag_id} {dr.run_id}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def prepared_environment(script: str) -> dict[str, str]:
    env = dict(os.environ)
    cairn_home = env.get("CAIRN_HOME") or os.path.expanduser("~/.cairn")
    env.setdefault("AIRFLOW_HOME", os.path.join(cairn_home, "airflow"))
    env["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.dirname(script)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env[_READY] = script
    return env


def _rerun_prepared(script: str) -> int:
    env = prepared_environment(script)
    home = env["AIRFLOW_HOME"]
    os.makedirs(home, exist_ok=True)
    from airflow import __version__ as airflow_version

    stamp = os.path.join(home, f".cairn-db-migrated-{airflow_version}")
    if not os.path.exists(stamp):
        print(f"preparing the Airflow metadata DB in {home} ...", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            print(f"`airflow db migrate` failed in {home}", file=sys.stderr)
            return done.returncode
        open(stamp, "w").close()
    return subprocess.run([sys.executable, script, *sys.argv[1:]], env=env).returncode


def _summary(dr: Any) -> str:
    lines = [f"== {dr.dag_id} {dr.run_id}: {dr.state}"]
    for ti in sorted(dr.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
        lines.append(f"   {ti.task_id}{index}: {ti.state} (try {ti.try_number})")
    return "\n".join(lines)
