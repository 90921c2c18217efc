#!/usr/bin/env bash
# Session 45, call 2c: call 2b cut again to ~200 s (the session's device time after more failed starts): the compiled
# 224 px training step of hydra_vit_base on main (the graph-break fix) and exp-compiled-ln, then the graph count of
# the forward under autocast before the fix (s45-base) and with it (main). .ab and .whl carried as for call 2.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call2c
for tree in main exp-compiled-ln; do
  in_packed_tree "$tree" timeout 90 python3 benchmarks/bench_models.py --models hydra_vit_base --modes train --quick \
    --img-sizes 224 --compile on --kernel-times 12 --out "$OUT/compiled_$tree.jsonl" >"$OUT/compiled_$tree.log" 2>&1
  grep '"case"' "$OUT/compiled_$tree.jsonl" | cut -c1-300
  archive
done
for tree in s45-base main; do
  in_packed_tree "$tree" timeout 40 python3 "$PWD/benchmarks/results/2026-12-07_s45/graph_breaks.py" "$tree" \
    >"$OUT/graph_breaks_$tree.log" 2>&1
  grep -v Warning "$OUT/graph_breaks_$tree.log" | grep -E '^\{|is_autocast' | cut -c1-600
  archive
done
end_archived_call
