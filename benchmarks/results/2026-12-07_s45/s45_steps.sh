#!/usr/bin/env bash
# The steps session 45's device calls share (sourced after benchmarks/run_concurrent.sh and start_device_call; trees
# packed in .ab by ab_branches.sh). Each step archives what it wrote.
# graph_counts SECONDS TREE...: graph_breaks.py (this folder) in each tree -> $OUT/graph_breaks_TREE.log, summary printed
graph_counts() {
  local seconds=$1 tree
  shift
  for tree in "$@"; do
    in_packed_tree "$tree" timeout "$seconds" python3 "$PWD/benchmarks/results/2026-12-07_s45/graph_breaks.py" \
      "$tree" >"$OUT/graph_breaks_$tree.log" 2>&1
    grep -v Warning "$OUT/graph_breaks_$tree.log" | grep -E '^\{|is_autocast' | cut -c1-600
    archive
  done
}
# bench TREE NAME MODELS SECONDS [bench_models.py options]: training steps (--quick) in TREE -> $OUT/NAME.jsonl, cases
# printed
bench() {
  local tree=$1 name=$2 models=$3 seconds=$4
  shift 4
  in_packed_tree "$tree" timeout "$seconds" python3 benchmarks/bench_models.py --models $models --modes train \
    --quick --out "$OUT/$name.jsonl" "$@" >"$OUT/$name.log" 2>&1
  grep '"case"' "$OUT/$name.jsonl" | cut -c1-300
  archive
}
