#!/usr/bin/env bash
# Installs everything ffnserve needs to build, test and run, from Debian 12
# packages only. Used by the README, .ci/run and docker/Dockerfile.
#
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --runtime only the shared libraries ffn-server and
#                                     ffn-client load (docker/Dockerfile's runtime stage)
#   scripts/install-deps.sh --docker  what docker/smoke-test.sh needs: a Docker engine,
#                                     debootstrap, and the compose/nginx/YAML validators
#   scripts/install-deps.sh --sanitize  clang with its sanitizer and libFuzzer runtimes
#                                     (scripts/test.sh --sanitize)
set -euo pipefail

# The packages of the binaries' direct NEEDED entries (readelf -d); the rest
# (libgrpc29's c-ares, re2, ssl, zlib; libdnnl2's OpenCL loader) come in as
# their dependencies. docker/smoke-test.sh checks with ldd inside the image.
runtime_packages=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libdnnl2 libgomp1
  libspdlog1.10 libfmt9 libyaml-cpp0.7 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  libcpp-httplib0.11
  ca-certificates
)
build_packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libdnnl-dev libspdlog-dev libfmt-dev libabsl-dev libcli11-dev libyaml-cpp-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  libcpp-httplib-dev
  openssl gnuplot-nox python3 python3-venv
)

# Not in the default list: docker.io starts no daemon here (smoke-test.sh runs
# a private one), and nginx is only for `nginx -t` on docker/nginx.conf.
docker_packages=(
  docker.io debootstrap docker-compose nginx python3-yaml python3-venv
)

# clang 14's runtimes (ASan, UBSan, TSan, libFuzzer), omp.h for clang, and
# llvm-symbolizer for readable reports.
sanitize_packages=(
  clang-14 libclang-rt-14-dev libomp-14-dev llvm-14
)

case "${1:-}" in
  "") packages=("${build_packages[@]}") ;;
  --sanitize) packages=("${sanitize_packages[@]}") ;;
  --runtime) packages=("${runtime_packages[@]}") ;;
  --docker) packages=("${docker_packages[@]}") ;;
  *) echo "usage: $0 [--runtime | --docker | --sanitize]" >&2; exit 2 ;;
esac

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
