#!/usr/bin/env bash
# Installs clang 22 and its sanitizer/libFuzzer runtimes and builds einstruct
# with ASan + UBSan, plus the fuzz targets, into build-sanitize/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null # the packages of the normal build

scripts/apt-install.sh clang-22 libclang-rt-22-dev

# -O1: sanitizer reports keep usable stacks, and the build stays quick.
CC=clang-22 CXX=clang++-22 cmake -S . -B build-sanitize -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DEINSTRUCT_FUZZ=ON >/dev/null
cmake --build build-sanitize -j "$(nproc)"
