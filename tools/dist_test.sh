#!/usr/bin/env bash
# Distributed testing: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
exec "$TOOLS/torchrun.sh" "$NPROC" "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" "$@"
