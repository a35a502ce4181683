#!/usr/bin/env bash
# The distilled MR finalists of benchmarks/accuracy.py compiled with tuned TVM, verified on this
# host against their predicted latency, ONNX Runtime, eager, bert-base and the MiniLM-L6 base,
# and reported. Needs runs/compress/mr/distilled/{L5-H2,L6-H4-third} (benchmarks/accuracy.py).
#
#     bash benchmarks/finalists.sh          # -> benchmarks/results/finalists/report.md + PNGs
#
# Run it on a quiet machine (about 5 minutes; workloads missing from the database are tuned).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PRED=runs/pred-tvm
OUT=runs/verify-finalists
NAMES=(L5-H2 L6-H4-third)
$BIN/canao train --backend tvm --out "$PRED" --overwrite
compiled=()
for n in "${NAMES[@]}"; do
  $BIN/canao compile "runs/compress/mr/distilled/$n" --out "runs/compiled/$n" --overwrite
  compiled+=("runs/compiled/$n")
done
$BIN/canao verify "${compiled[@]}" --predictor "$PRED" --references bert-base,minilm-l6-h384 --out "$OUT"
$BIN/canao report --verify "$OUT" --out benchmarks/results/finalists
