#!/usr/bin/env bash
# Shows that a training step allocates no heap memory: runs `fledge bench train` with an allocation-counting
# shim preloaded; the benchmark's last column is then the heap allocations per step (forward, backward,
# clipping, AdamW), which must be 0.
set -euo pipefail
cd "$(dirname "$0")/.."
gcc -O2 -shared -fPIC -o /tmp/fledge_count_allocations.so Scripts/count_allocations.c
LD_PRELOAD=/tmp/fledge_count_allocations.so .build/release/fledge bench train --configs "${1:-a,b,c}" --steps 3 --warmup 1 \
    | grep -E '^(config|[abc] )'
