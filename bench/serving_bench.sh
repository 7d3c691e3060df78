#!/usr/bin/env bash
# The serving figures of docs/BENCHMARKS.md, each next to its baseline in the
# same run: bench/echo_server (the gRPC floor) and ffn-server with batching
# on and off, driven by ffn-client on loopback, client and server sharing
# the machine. Every figure is the median of REPEATS runs.
#
#   bash bench/serving_bench.sh            # after scripts/build.sh
#   REPEATS=3 DURATION=5 DTYPE=bf16 bash bench/serving_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${REPEATS:-3}"
duration="${DURATION:-5}"
dtype="${DTYPE:-bf16}"
client=build/client/ffn-client
source bench/servers.sh

# start_ffn NAME MAX_BATCH_TOKENS: starts ffn-server and sets the variable
# NAME to its target.
start_ffn() {
  local name="$1" batch="$2"
  cat > "$work/$name.yaml" <<YAML
server: {max_batch_tokens: $batch, max_queue_tokens: 4096}
models:
  - {name: ffn-768, d_model: 768, d_ff: 3072, activation: gelu, dtype: $dtype, weights: {random: {seed: 1}}}
YAML
  start_ffn_server "$name" "$work/$name.yaml"
}

echo_port=$((20000 + RANDOM % 20000))
build/bench/echo_server --address "127.0.0.1:$echo_port" --d-model 768 > /dev/null &
pids+=($!)
sleep 0.5
echo_target="127.0.0.1:$echo_port"
start_ffn batched 512
start_ffn unbatched 1

# run TARGET VARIANTS ARGS...: one load run; prints "req/s tokens/s p50_us p99_us".
run() {
  local target="$1" variants="$2"
  shift 2
  "$client" load --target "$target" --variants "$variants" --duration "$duration" \
    --warmup 1 --json "$work/run.json" "$@" > /dev/null 2>&1 || true
  python3 - "$work/run.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["total"]
print(f'{t["requests_per_second"]:.0f} {t["tokens_per_second"]:.0f} {t["p50_us"]:.0f} {t["p99_us"]:.0f}')
PY
}

# median_of COLUMN LINES...
median() {
  sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# measure LABEL TARGET VARIANTS ARGS...: median of repeats, as a table row.
measure() {
  local label="$1"
  shift
  : > "$work/rows"
  for _ in $(seq 1 "$repeats"); do run "$@" >> "$work/rows"; done
  local rps tps p50 p99
  rps=$(awk '{print $1}' "$work/rows" | median)
  tps=$(awk '{print $2}' "$work/rows" | median)
  p50=$(awk '{print $3}' "$work/rows" | median)
  p99=$(awk '{print $4}' "$work/rows" | median)
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$rps" "$tps" "$p50" "$p99"
}

echo "| run ($dtype compute, ${duration} s, median of $repeats) | requests/s | tokens/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|"
measure "echo floor, 1 token, c=1" "$echo_target" echo --concurrency 1 --tokens 1
measure "ffn-server, 1 token, c=1" "$batched" ffn-768:gelu --concurrency 1 --tokens 1
measure "echo floor, 1 token, c=64" "$echo_target" echo --concurrency 64 --tokens 1
measure "ffn-server batching on, 1 token, c=64" "$batched" ffn-768:gelu --concurrency 64 --tokens 1
measure "ffn-server batching off, 1 token, c=64" "$unbatched" ffn-768:gelu --concurrency 64 --tokens 1
measure "echo floor, 32 tokens, c=8" "$echo_target" echo --concurrency 8 --tokens 32
measure "ffn-server batching on, 32 tokens, c=8" "$batched" ffn-768:gelu --concurrency 8 --tokens 32
