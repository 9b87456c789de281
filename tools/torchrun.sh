#!/usr/bin/env bash
# Shared launcher of dist_train.sh / dist_test.sh: torchrun.sh NUM_PROCESSES SCRIPT [ARGS...]
# Uses the repository's .venv when present; NNODES, NODE_RANK, MASTER_ADDR, PORT as in MMSeg.
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python)}
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" "$SCRIPT" "$@" --launcher pytorch
