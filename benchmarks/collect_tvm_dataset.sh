#!/usr/bin/env bash
# Tunes and measures the shipped tuned-TVM dataset of this host (hours on 2 cores). Resumable:
# run it again and it tunes and measures only what is missing. Run it on a quiet machine.
#   1. the search grid (the default: hidden 384, 1-12 heads of 32, FFN 128..1536 / 128,
#      seq_len 128) and what whole models on it add, at 64 trials per workload, then the
#      workloads slower than 300 us again at 256 trials (the FFN GEMMs); 220 whole models;
#   2. the dataset grid (benchmarks/grids/tvm-dataset*.json): FFN in steps of 64, heads of
#      width 32 and 64, seq_len 64 and 128 -- blocks are products of workloads, so a finer grid
#      adds many blocks for few new workloads;
#      then hidden 512 (1-16 heads of 32, 1-8 of 64, FFN 64..2048 / 64, seq_len 64 and 128):
#      864 + 1,536 = 2,400 tuned blocks in all (about 5 hours of tuning);
#   3. the blocks of each dataset grid.
set -euo pipefail
cd "$(dirname "$0")/.."
CANAO=${CANAO:-.venv/bin/canao}
TRIALS=${TRIALS:-64}
MODELS=${MODELS:-220}
RETUNE_TRIALS=${RETUNE_TRIALS:-256}
RETUNE_ABOVE_US=${RETUNE_ABOVE_US:-300}
"$CANAO" tune --trials "$TRIALS"
"$CANAO" tune --retune-above-us "$RETUNE_ABOVE_US" --trials "$RETUNE_TRIALS"
"$CANAO" profile --backend tvm --space grid-models --samples "$MODELS" --seed 0
for grid in benchmarks/grids/tvm-dataset-s128.json benchmarks/grids/tvm-dataset.json \
    benchmarks/grids/tvm-dataset-h512.json; do
  "$CANAO" tune --trials "$TRIALS" --grid "$grid"
  "$CANAO" tune --retune-above-us "$RETUNE_ABOVE_US" --trials "$RETUNE_TRIALS" --grid "$grid"
  n=$(.venv/bin/python -c "import sys; from canao.profiling.tuning import WorkloadGrid as G; \
print(len(G.from_json(open(sys.argv[1]).read()).blocks()))" "$grid")
  "$CANAO" profile --backend tvm --space grid --space-config "$grid" --samples "$n" --seed 0
done
