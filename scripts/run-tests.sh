#!/usr/bin/env bash
# Sets up, builds, and runs every test (unit, lit + FileCheck, CLI errors).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
