#!/usr/bin/env bash
# Measures the shipped host-CPU latency datasets (hours on 2 cores). Resumable: run it again
# and it measures only what is missing. Run it on a quiet machine: nothing else running.
set -euo pipefail
cd "$(dirname "$0")/.."
CANAO=${CANAO:-.venv/bin/canao}
BLOCKS=${BLOCKS:-3000}
MODELS=${MODELS:-300}
for backend in onnxruntime eager; do
  "$CANAO" profile --device host --backend "$backend" --space blocks --samples "$BLOCKS" --seed 0
done
for backend in onnxruntime eager; do
  "$CANAO" profile --device host --backend "$backend" --space models --samples "$MODELS" --seed 0
done
