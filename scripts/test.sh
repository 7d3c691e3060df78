#!/usr/bin/env bash
# Installs, builds and runs the whole test suite with CTest.
#
#   scripts/test.sh                     Release build in build/: every test
#   scripts/test.sh --sanitize address  clang ASan+UBSan build in build-asan/: every
#                                       test, then each libFuzzer target of tests/fuzz
#                                       for FFN_FUZZ_SECONDS (default 60) from its seed
#                                       corpus
#   scripts/test.sh --sanitize thread   clang TSan build in build-tsan/: the tests of
#                                       our own concurrent units (scheduler, stats,
#                                       memory budget, the REST front end), OpenMP on
#                                       one thread
#
# A sanitized run fails on any report from any process, the ffn-server and
# ffn-client binaries the integration tests start included: every process
# writes its reports into build-*/sanitizer-reports/, which must stay empty.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=""
case "${1:-}" in
  "") ;;
  --sanitize) sanitize="${2:-}" ;;
  --sanitize=*) sanitize="${1#--sanitize=}" ;;
  *) echo "usage: $0 [--sanitize address|thread]" >&2; exit 2 ;;
esac

if [[ -z "$sanitize" ]]; then
  bash scripts/build.sh -DFFN_BUILD_TESTS=ON -DFFN_BUILD_BENCH=ON
  ctest --test-dir build --output-on-failure --timeout 600 -j "$(nproc)"
  exit 0
fi

case "$sanitize" in
  address) dir=build-asan; flags=(-DFFN_SANITIZE=address,undefined -DFFN_FUZZ=ON) ;;
  thread) dir=build-tsan; flags=(-DFFN_SANITIZE=thread) ;;
  *) echo "usage: $0 [--sanitize address|thread]" >&2; exit 2 ;;
esac
bash scripts/install-deps.sh
bash scripts/install-deps.sh --sanitize
CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFFN_BUILD_TESTS=ON -DFFN_BUILD_BENCH=OFF "${flags[@]}"

reports="$PWD/$dir/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
suppressions="$PWD/tests/sanitizers"
export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$suppressions/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$suppressions/tsan.supp:halt_on_error=0:second_deadlock_stack=1"
# Discovery runs the test binaries during the build: they report there too.
if [[ "$sanitize" == address ]]; then
  cmake --build "$dir" --parallel "$(nproc)"
else
  cmake --build "$dir" --parallel "$(nproc)" --target config_test service_test common_test
fi

status=0
if [[ "$sanitize" == address ]]; then
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" || status=1
  seconds="${FFN_FUZZ_SECONDS:-60}"
  for target in infer_request config safetensors huggingface kserve_request; do
    # New inputs go to a scratch folder; the seeds in git stay as they are.
    work="$dir/fuzz-corpus/$target"
    mkdir -p "$work"
    echo "fuzzing $target for $seconds s"
    "$dir/tests/fuzz/${target}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$work" "tests/fuzz/corpus/$target" 2>&1 | tail -n 12 || status=1
  done
else
  # gRPC, protobuf and libgomp are not instrumented: TSan is pointed at our
  # own concurrent units, driven in-process, with OpenMP on one thread.
  OMP_NUM_THREADS=1 ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" \
    -R '^(SchedulerTest|MemoryBudgetTest|LatencyHistogramTest|ServerStatsTest|KServeHttpTest)\.' || status=1
fi

if compgen -G "$reports/*" > /dev/null; then
  echo "sanitizer reports:" >&2
  for report in "$reports"/*; do
    echo "== $report" >&2
    head -n 60 "$report" >&2
  done
  status=1
fi
exit "$status"
