#!/usr/bin/env bash
# Installs, builds and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DFFN_BUILD_TESTS=ON -DFFN_BUILD_BENCH=ON
ctest --test-dir build --output-on-failure --timeout 600 -j "$(nproc)"
