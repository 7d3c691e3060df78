#!/usr/bin/env bash
# Installs the dependencies and builds ffnserve in Release into build/.
# Extra arguments go to cmake (e.g. -DFFN_BUILD_TESTS=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
werror=OFF
if [[ "${CI:-}" == "true" ]]; then werror=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFFN_WERROR="$werror" "$@"
cmake --build build --parallel "$(nproc)"
