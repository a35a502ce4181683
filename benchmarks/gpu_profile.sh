#!/usr/bin/env bash
# Collect the inductor (torch.compile) block dataset on a CUDA GPU.
#
#   [BACKEND=inductor-cudagraphs] bash benchmarks/gpu_profile.sh [SECONDS] [SAMPLES] [OUT] [ARGS...]
#
# BACKEND is inductor (default: torch.compile's default mode, launch-bound at batch 1 on a fast
# card) or inductor-cudagraphs (mode="reduce-overhead": one CUDA-graph launch per run).
# Meant for a GPU machine that has python3 with a CUDA build of torch, pandas and pyarrow but
# no canao install (the repository is put on PYTHONPATH). The device is named after the card
# (e.g. nvidia-h100-80gb-hbm3); rows go to OUT/<card>/<backend>/ (OUT: datasets_latency).
# The run is stopped with SIGINT after SECONDS (default 540): every finished row is kept, and
# the next run with the same arguments measures only the specs not stored yet (the design is
# the same seeded block design as the shipped CPU datasets, so the devices share specs).
# ARGS go to `canao profile` as they are: e.g. `--remeasure all --shuffle 1` measures a repeat
# round of the stored rows (each round in its own process, so the medians of the rounds average
# the process's state as well as the timing noise; the H200 card says why that matters there).
set -euo pipefail
secs=${1:-540}
samples=${2:-3000}
out=${3:-datasets_latency}
shift $(( $# < 3 ? $# : 3 ))
backend=${BACKEND:-inductor}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
card=$(python3 -c "
import torch
from canao.profiling.fingerprint import slug
assert torch.cuda.is_available(), 'no CUDA GPU here'
print(slug(torch.cuda.get_device_name()))")
echo "device: $card; torch $(python3 -c 'import torch; print(torch.__version__)')"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv
rc=0
timeout -s INT -k 60 "$secs" python3 -c "import sys; from canao.cli import main; sys.exit(main())" \
    profile --backend "$backend" --device "$card" --samples "$samples" --out "$out" "$@" || rc=$?
# 124: stopped by the time limit, 130: by Ctrl-C (canao profile keeps the rows it measured and
# folds them into a shard; a journal left by a hard kill is read as it is and folded next run)
[[ $rc == 0 || $rc == 124 || $rc == 130 ]] || exit $rc
python3 -c "from canao.cli import main; main(['dataset', 'info', '$out'])"
# on a lent machine ($OUT set by the device tool) the rows come back through $OUT
if [[ -n ${OUT:-} ]]; then cp -r "$out/$card" "$OUT/"; rm -f "$OUT/$card/$backend/.lock"; fi
