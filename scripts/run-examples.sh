#!/usr/bin/env bash
# Sets up, builds, and analyzes every bundled example spec.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/bin/einstruct analyze examples/*.json
