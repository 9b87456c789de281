#!/usr/bin/env bash
# Shared launcher of slurm_train.sh / slurm_test.sh: slurm_run.sh PARTITION JOB_NAME SCRIPT [ARGS...]
# srun starts GPUS tasks (default 4, the release's GPU count), GPUS_PER_NODE per node (4), with
# CPUS_PER_TASK cores each (5), each running SCRIPT ARGS --launcher slurm; SRUN_ARGS adds srun
# options (several, space-separated). As in MMSeg, each node requests the generic resource GRES,
# default gpu:GPUS_PER_NODE; GRES= (empty) requests none, for CPU nodes, where tasks use gloo.
# Uses the repository's .venv when present, else PYTHON or python.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
shift 3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:$GPUS_PER_NODE}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python)}
# SRUN_ARGS is split into words on purpose: it may hold several srun options, as in MMSeg.
# shellcheck disable=SC2086
exec srun -p "$PARTITION" --job-name="$JOB_NAME" ${GRES:+--gres="$GRES"} --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} "$PYTHON" -u "$SCRIPT" "$@" --launcher slurm
