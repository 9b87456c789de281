#!/usr/bin/env bash
# Training on a Slurm cluster, with MMSeg's arguments and environment:
#   [GPUS=4] [GPUS_PER_NODE=4] [CPUS_PER_TASK=5] [SRUN_ARGS=...] [GRES=gpu:4] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]
# (the variables are described in slurm_run.sh).
set -euo pipefail
if [ $# -lt 4 ] || [[ $4 == -* ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
exec "$TOOLS/slurm_run.sh" "$PARTITION" "$JOB_NAME" "$TOOLS/train.py" "$CONFIG" \
    --work-dir "$WORK_DIR" "$@"
