#!/usr/bin/env bash
# Session 49, call E (.whl and .ab carried): the eager models table of main (hydra_vit_base and ViT-B at every size,
# training and inference, the 8 top kernels), to restate the eager targets on today's main.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s49_e
packed_models_table main 380
end_archived_call
