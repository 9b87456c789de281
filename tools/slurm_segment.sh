#!/usr/bin/env bash
# Labelling on a Slurm cluster, with MMSeg's arguments and environment:
#   [GPUS=4] [GPUS_PER_NODE=4] [CPUS_PER_TASK=5] [SRUN_ARGS=...] [GRES=gpu:4] \
#   tools/slurm_segment.sh PARTITION JOB_NAME INPUT [tools/segment.py options]
# (the variables are described in slurm_run.sh; GRES= for CPU nodes).
set -euo pipefail
if [ $# -lt 3 ] || [[ $3 == -* ]]; then
    echo "usage: $0 PARTITION JOB_NAME INPUT [tools/segment.py options]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARTITION=$1
JOB_NAME=$2
INPUT=$3
shift 3
exec "$TOOLS/slurm_run.sh" "$PARTITION" "$JOB_NAME" "$TOOLS/segment.py" "$INPUT" "$@"
