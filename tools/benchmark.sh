#!/usr/bin/env bash
# The six zero-shot benchmarks of a checkpoint, as a Markdown table in the paper's column order:
#   tools/benchmark.sh CONFIG CHECKPOINT [NUM_PROCESSES] [tools/benchmark.py options]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG CHECKPOINT [NUM_PROCESSES] [tools/benchmark.py options]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python)}
CONFIG=$1
CHECKPOINT=$2
shift 2
NPROC=1
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    NPROC=$1
    shift
fi
exec "$PYTHON" "$ROOT/tools/benchmark.py" "$CONFIG" "$CHECKPOINT" --nproc "$NPROC" "$@"
