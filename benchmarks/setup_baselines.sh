#!/bin/sh
# Build the baselines' own virtualenvs next to this script (ignored by git: `.venv*/`),
# with the versions bench_log.py was validated against. Needs GNU time for peak RSS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
command -v /usr/bin/time >/dev/null || echo "note: install GNU time first (apt-get install time)" >&2
"$python" -m venv "$here/.venv-dvc"
"$here/.venv-dvc/bin/pip" install -q "dvc==3.67.1" "dvc-s3==3.3.0"  # dvc-s3: bench_cloud.py
# bench_fs.py runs DuckDB over DVC's fsspec filesystem in DVC's environment: the same DVC
# pin plus DuckDB (the version cairn's own environment has), in a virtualenv of its own so
# .venv-dvc stays what bench_log.py and bench_cloud.py were validated against
"$python" -m venv "$here/.venv-dvc-duckdb"
"$here/.venv-dvc-duckdb/bin/pip" install -q "dvc==3.67.1" "duckdb==2.0.1"
"$python" -m venv "$here/.venv-wandb"
"$here/.venv-wandb/bin/pip" install -q "wandb==0.31.0"
"$here/.venv-dvc/bin/dvc" --version
"$here/.venv-dvc-duckdb/bin/python" -c "import duckdb, dvc; print('dvc', dvc.__version__, 'duckdb', duckdb.__version__)"
"$here/.venv-wandb/bin/python" -c "import wandb; print('wandb', wandb.__version__)"
