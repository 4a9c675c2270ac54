#!/usr/bin/env bash
# GPU check of issue 18 (see benchmarks/gpu_check.py): bf16 eager/compiled throughput of eat_tiny vs Swin-T (and the
# original EAT-T code with --original PATH) and a 200-step training smoke at 224 px; results in
# benchmarks/results/gpu/. No pip installs: it uses the project's .venv (or $PY). Without a GPU it stops at once
# with exit status 3 and a message. A hard limit of 8 minutes (GPU_CHECK_TIMEOUT seconds) keeps it one short call.
#   benchmarks/gpu_check.sh [--original /path/to/orig_eat] [gpu_check.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/gpu_check.py "$@"
