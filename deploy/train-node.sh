#!/bin/sh
# One pod (or machine) per node of a multi-node training run, e.g. a Kubernetes Indexed Job whose
# pods Prefect's Kubernetes work pool starts (docs/speed.md, "Several nodes").
#
#   train-node.sh COMMAND...    node 0 runs COMMAND (the Prefect flow run, or `dvc repro`): every
#                               stage, with the train stage's global rank 0, which writes the outputs;
#                               every other node joins the train stage's rendezvous (`ganops train`).
#
# The node's rank is PET_NODE_RANK, else the Job's JOB_COMPLETION_INDEX. PET_NNODES, PET_MASTER_ADDR
# and PET_MASTER_PORT (node 0's address and a free port) must be set on every node.
set -eu
PET_NODE_RANK="${PET_NODE_RANK:-${JOB_COMPLETION_INDEX:-0}}"
export PET_NODE_RANK
if [ "$PET_NODE_RANK" = "0" ]; then
    exec "$@"
fi
exec ganops train
