#!/usr/bin/env bash
# Sets up, builds, and runs every test: the unit, lit + FileCheck, CLI and
# nvcc tests; then the same suite under ASan + UBSan; then each fuzz target
# for a short budget (FUZZ_SECONDS, default 30) so that regressions show.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# PyTorch (CPU, Debian's) for the generated torch module's test only.
scripts/apt-install.sh --no-install-recommends python3-torch
ctest --test-dir build --output-on-failure -j "$(nproc)"
scripts/run-sanitized-tests.sh
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
