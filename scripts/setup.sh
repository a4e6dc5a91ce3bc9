#!/usr/bin/env bash
# Installs what is missing (Debian packages) and builds einstruct into build/.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ llvm-22-dev libmlir-22-dev mlir-22-tools
          llvm-22-tools nlohmann-json3-dev libfmt-dev catch2 libcli11-dev
          python3-numpy libopenblas-dev libeigen3-dev libboost-dev)
scripts/apt-install.sh "${packages[@]}"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
# MLIR-heavy translation units peak near 1 GB each: two jobs fit 2 cores.
cmake --build build -j "$(nproc)"
