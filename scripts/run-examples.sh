#!/usr/bin/env bash
# Sets up, builds, and analyzes every bundled example spec.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/bin/einstruct analyze examples/worked_rows.json examples/named.json \
  examples/einsum.json
build/bin/einstruct search --model examples/gpt2_small.json
build/bin/einstruct search --d-in 768 --d-out 3072 --max-flops-ratio 0.25 --top 5
