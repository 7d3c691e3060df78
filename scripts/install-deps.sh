#!/usr/bin/env bash
# Installs everything ffnserve needs to build, test and run, from Debian 12
# packages only. Used by the README, .ci/run and docker/Dockerfile.
#
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --runtime only the shared libraries ffn-server needs
set -euo pipefail

runtime_packages=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libdnnl2 libspdlog1.10 libfmt9
  libyaml-cpp0.7 libgomp1 ca-certificates
)
build_packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libdnnl-dev libspdlog-dev libfmt-dev libabsl-dev libcli11-dev libyaml-cpp-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
)

packages=("${build_packages[@]}")
if [[ "${1:-}" == "--runtime" ]]; then
  packages=("${runtime_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if (( ${#missing[@]} == 0 )); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if (( EUID != 0 )); then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
