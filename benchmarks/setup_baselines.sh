#!/bin/sh
# Build the baselines' own virtualenvs next to this script (ignored by git: `.venv*/`),
# with the versions bench_log.py was validated against. Needs GNU time for peak RSS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
command -v /usr/bin/time >/dev/null || echo "note: install GNU time first (apt-get install time)" >&2
"$python" -m venv "$here/.venv-dvc"
"$here/.venv-dvc/bin/pip" install -q "dvc==3.67.1" "dvc-s3==3.3.0"  # dvc-s3: bench_cloud.py
"$python" -m venv "$here/.venv-wandb"
"$here/.venv-wandb/bin/pip" install -q "wandb==0.31.0"
"$here/.venv-dvc/bin/dvc" --version
"$here/.venv-wandb/bin/python" -c "import wandb; print('wandb', wandb.__version__)"
