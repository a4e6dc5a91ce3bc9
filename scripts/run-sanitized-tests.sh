#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UBSan (leak checks on); any
# report fails the run. The nvcc compile test and the GPU tests are left out:
# they exercise nvcc and the device, not einstruct's host code; so is the
# install test, whose consumer is an ordinary (uninstrumented) program, and
# the torch test (Python loads the runtime library with ctypes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-sanitized.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-sanitize --output-on-failure -j "$(nproc)" -LE 'cuda|gpu|install|torch'
