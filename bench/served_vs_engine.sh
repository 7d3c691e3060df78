#!/usr/bin/env bash
# Served figures against engine figures: the compute time ffn-server reports
# per engine call (GetStats' batch_sizes, one request at a time so a call is
# one request of M tokens) next to bench/ffn_block_bench's time for the same
# block, M and compute dtype (the served path: batch-invariant, or int8).
# The server runs first, alone; the benchmark after it has stopped (on THREADS
# threads: the served calls may run on fewer, call_threads adaptive). Prints a
# Markdown table.
#
#   bash bench/served_vs_engine.sh            # after scripts/build.sh
#   TOKENS="1 32" DURATION=3 bash bench/served_vs_engine.sh
#   THREADS=1 bash bench/served_vs_engine.sh     # one thread per engine call, both sides
#   SERVER_ENV="OMP_WAIT_POLICY=active" bash bench/served_vs_engine.sh
#   CALL_THREADS=all bash bench/served_vs_engine.sh  # every call on every thread (default adaptive)
set -euo pipefail
cd "$(dirname "$0")/.."
tokens="${TOKENS:-1 32 512}"
duration="${DURATION:-4}"
threads="${THREADS:-2}"
client=build/client/ffn-client
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The shapes and seeds of ffn_block_bench, so the weights are the same.
cat > "$work/config.yaml" <<YAML
server: {threads: $threads, max_batch_tokens: 512, call_threads: ${CALL_THREADS:-adaptive}}
models:
  - {name: ffn-768, d_model: 768, d_ff: 3072, activation: gelu, weights: {random: {seed: 1}}}
  - {name: glu-768, d_model: 768, d_ff: 2048, activation: swiglu, weights: {random: {seed: 2}}}
  - {name: ffn-768-int8, d_model: 768, d_ff: 3072, activation: gelu, weights: {random: {seed: 1}},
     quantization: int8}
YAML
env OMP_NUM_THREADS=$threads ${SERVER_ENV:-} build/server/ffn-server --config "$work/config.yaml" --address 127.0.0.1:0 \
  --port-file "$work/port" --log-level warn &
server_pid=$!
for _ in $(seq 1 300); do [[ -s "$work/port" ]] && break; sleep 0.1; done
target="127.0.0.1:$(cat "$work/port")"

runs=("ffn-768:gelu f32" "ffn-768:gelu bf16" "glu-768:swiglu f32" "glu-768:swiglu bf16"
      "ffn-768-int8:gelu f32")
for run in "${runs[@]}"; do
  read -r variant dtype <<< "$run"
  for m in $tokens; do
    echo "server: $variant $dtype M=$m" >&2
    "$client" load --target "$target" --variants "$variant" --compute-dtype "$dtype" \
      --tokens "$m" --concurrency 1 --duration "$duration" --warmup 1 > /dev/null
  done
done
"$client" stats --target "$target" --json > "$work/stats.json"
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""

echo "engine: ffn_block_bench" >&2
m_filter=$(echo $tokens | tr ' ' '|')
OMP_NUM_THREADS=$threads build/bench/ffn_block_bench \
  --benchmark_filter="^(ffn-768/gelu|glu-768/swiglu)/((f32|bf16)/invariant|int8/served)/(${m_filter})/real_time\$" \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_format=json \
  > "$work/engine.json" 2> /dev/null

/usr/bin/python3 - "$work/stats.json" "$work/engine.json" "$tokens" <<'PY'
import json, sys
stats, engine, tokens = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3].split()
served = {}  # (model, activation, dtype, m) -> mean compute ms of the bucket holding m
for v in stats.get("variants", []):
    var = v["variant"]
    dtype = "bf16" if var.get("dtype") == "BFLOAT16" else "f32"
    for b in v.get("batch_sizes", []):
        for m in tokens:
            if int(b["tokens_from"]) <= int(m) <= int(b["tokens_to"]):
                served[(var["model"], var["activation"], dtype, int(m))] = (
                    b["compute_mean_us"] / 1e3, int(b["batches"]), b.get("mean_threads", 0))
bench = {}
for b in engine["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    shape, act, precision, path, m = b["run_name"].split("/")[:5]
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    bench[(shape, act, precision, int(m))] = b["real_time"] * scale
rows = [("ffn-768", "gelu", "f32", "ffn-768"), ("ffn-768", "gelu", "bf16", "ffn-768"),
        ("glu-768", "swiglu", "f32", "glu-768"), ("glu-768", "swiglu", "bf16", "glu-768"),
        ("ffn-768-int8", "gelu", "f32", "ffn-768")]
print("| model | compute | tokens | engine calls served | served threads per call | served compute ms "
      "| engine bench ms | served / bench |")
print("|---|---|---|---|---|---|---|---|")
for model, act, dtype, shape in rows:
    for m in map(int, tokens):
        precision = "int8" if model.endswith("int8") else dtype
        s, e = served.get((model, act, dtype, m)), bench.get((shape, act, precision, m))
        if s is None or e is None:
            continue
        print(f"| {model} | {precision} | {m} | {s[1]} | {s[2]:.2f} | {s[0]:.3g} | {e:.3g} | {s[0] / e:.2f} |")
PY
