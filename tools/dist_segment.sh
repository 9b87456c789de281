#!/usr/bin/env bash
# Distributed labelling: tools/dist_segment.sh INPUT NUM_PROCESSES [tools/segment.py options]
set -euo pipefail
if [ $# -lt 2 ] || [[ $1 == -* ]] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 INPUT NUM_PROCESSES [tools/segment.py options]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INPUT=$1
NPROC=$2
shift 2
exec "$TOOLS/torchrun.sh" "$NPROC" "$TOOLS/segment.py" "$INPUT" "$@"
