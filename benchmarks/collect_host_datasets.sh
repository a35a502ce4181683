#!/usr/bin/env bash
# Measures the shipped host-CPU latency datasets (hours on 2 cores). Resumable: run it again
# and it measures only what is missing. Run it on a quiet machine: nothing else running.
#
# ROUNDS=N then measures every spec N more times, each round in another shuffled order and
# followed by the specs whose medians are not pinned down yet (--remeasure unsettled); read
# the rounds with `canao train --combine drift-median`. SPACES="models" limits the rounds to
# whole models (a round of 3,000 blocks takes 20-40 minutes on 2 cores, of 300 models 5-10).
# THREADS=1 measures at one thread (the shipped 1-thread datasets: THREADS=1 BLOCKS=2000; a
# round of their blocks takes 13-17 minutes); BACKENDS limits the backends.
set -euo pipefail
cd "$(dirname "$0")/.."
CANAO=${CANAO:-.venv/bin/canao}
BLOCKS=${BLOCKS:-3000}
MODELS=${MODELS:-300}
ROUNDS=${ROUNDS:-0}
SPACES=${SPACES:-blocks models}
SHUFFLE=${SHUFFLE:-$(date +%s)}
THREADS=${THREADS:-}
BACKENDS=${BACKENDS:-onnxruntime eager}
profile() {  # profile SPACE BACKEND [ARGS...]: the space's design, seed 0
  local n=$([ "$1" = blocks ] && echo "$BLOCKS" || echo "$MODELS")
  "$CANAO" profile --device host --backend "$2" --space "$1" --samples "$n" --seed 0 \
    ${THREADS:+--threads "$THREADS"} "${@:3}"
}
for space in blocks models; do
  for backend in $BACKENDS; do profile "$space" "$backend"; done
done
for ((r = 1; r <= ROUNDS; r++)); do
  for space in $SPACES; do
    for backend in $BACKENDS; do
      for how in all unsettled; do
        profile "$space" "$backend" --remeasure "$how" --shuffle "$((SHUFFLE + r))"
      done
    done
  done
done
