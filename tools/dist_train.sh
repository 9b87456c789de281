#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NUM_PROCESSES [tools/train.py options]
# Without CUDA the processes use the gloo backend (cat_seg.cli).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCESSES [tools/train.py options]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=$1
NPROC=$2
shift 2
exec "$TOOLS/torchrun.sh" "$NPROC" "$TOOLS/train.py" "$CONFIG" "$@"
