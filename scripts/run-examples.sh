#!/usr/bin/env bash
# Sets up, builds, analyzes every bundled example spec, searches, and runs
# two layers on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/bin/einstruct analyze examples/worked_rows.json examples/named.json \
  examples/einsum.json
build/bin/einstruct search --model examples/gpt2_small.json
# The same model compiled for the GPU: each layer's chosen structure as CUDA
# kernels (.h/.cu) and a manifest (nvcc builds them; no GPU needed here).
build/bin/einstruct compile --model examples/gpt2_small.json -o build/examples-out/gpt2_small
build/bin/einstruct search --d-in 768 --d-out 3072 --max-flops-ratio 0.25 --top 5
# Run a Monarch layer and a routed BTT-MoE on the CPU (MLIR JIT), each
# checked against naive loops.
build/bin/einstruct run --structure 'monarch(16)' --d-in 768 --d-out 3072 \
  --batch 256 --check
build/bin/einstruct run --structure 'btt-moe(experts=8, top_k=2)' --d-in 768 \
  --d-out 3072 --batch 256 --check
# The training sweep's committed rows (bench/scaling_mlp, ~15 min to rerun
# with examples/sweep/scaling_mlp.json): frontiers, fits and the plot.
build/bin/einstruct report bench/scaling_mlp/results.jsonl \
  -o build/examples-out/scaling_report
