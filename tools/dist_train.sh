#!/usr/bin/env bash
# Distributed training on one machine: N processes with torchrun (gloo on CPU, NCCL on GPUs).
#   tools/dist_train.sh CONFIG N [tools/train.py args...]
# e.g. tools/dist_train.sh configs/centerpoint/centerpoint_nuscenes.py 8 --amp
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
# Slurm: see the docstring of tools/train.py (srun ... --launcher slurm).
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCESSES [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$DIR/train.py" "$CONFIG" --launcher pytorch "$@"
