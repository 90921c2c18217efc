#!/usr/bin/env bash
# Session 45, call 2c: call 2 cut to ~200 s (the session's device time after failed starts): the compiled 224 px
# training step of hydra_vit_base on main (the graph-break fix) and exp-compiled-ln, then the graph count of the
# forward under autocast before the fix (s45-base) and with it (main). .ab and .whl carried as for call 2.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s45_call2c
for tree in main exp-compiled-ln; do
  bench "$tree" "compiled_$tree" hydra_vit_base 90 --img-sizes 224 --compile on --kernel-times 12
done
graph_counts 40 s45-base main
end_archived_call
