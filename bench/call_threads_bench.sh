#!/usr/bin/env bash
# Threads per call: the same load against two ffn-server processes, one
# with server.call_threads adaptive (the default: each call on the thread
# count its size is served fastest on) and one with `all` (every call on
# every thread of its executor), interleaved point by point and round by
# round. Prints a Markdown table of the medians over ROUNDS: p50, p99 and
# tokens/s of each, and the adaptive server's threads per engine call during
# the point's runs (GetStats before and after each). Run it on a quiet machine.
#
#   bash bench/call_threads_bench.sh            # after scripts/build.sh
#   ROUNDS=5 TOKENS="1 8" CONCURRENCY="1 16" DURATION=3 bash bench/call_threads_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
tokens="${TOKENS:-1 8 64}"
concurrency="${CONCURRENCY:-1 4 16}"
duration="${DURATION:-2}"
threads="${THREADS:-2}"
client=build/client/ffn-client
source bench/servers.sh

for mode in adaptive all; do
  cat > "$work/$mode.yaml" <<YAML
server: {threads: $threads, call_threads: $mode}
models:
  - {name: ffn-768, d_model: 768, d_ff: 3072, activation: gelu, weights: {random: {seed: 1}}}
  - {name: ffn-768-int8, d_model: 768, d_ff: 3072, activation: gelu, weights: {random: {seed: 1}},
     quantization: int8}
YAML
  start_ffn_server "$mode" "$work/$mode.yaml"  # sets $adaptive, $all
done

runs=("ffn-768:gelu f32" "ffn-768:gelu bf16" "ffn-768-int8:gelu f32")
for round in $(seq 1 "$rounds"); do
  for run in "${runs[@]}"; do
    read -r variant dtype <<< "$run"
    for m in $tokens; do
      for c in $concurrency; do
        for mode in adaptive all; do
          echo "round $round: $mode $variant $dtype M=$m concurrency $c" >&2
          point="$work/$round.$mode.$variant.$dtype.$m.$c"
          "$client" stats --target "${!mode}" --json > "$point.before.json"
          "$client" load --target "${!mode}" --variants "$variant" --compute-dtype "$dtype" \
            --tokens "$m" --concurrency "$c" --duration "$duration" --warmup 0.5 \
            --json "$point.json" > /dev/null
          "$client" stats --target "${!mode}" --json > "$point.after.json"
        done
      done
    done
  done
done
python3 - "$work" "$rounds" "$tokens" "$concurrency" "${runs[@]}" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
tokens, concurrency, runs = sys.argv[3].split(), sys.argv[4].split(), sys.argv[5:]

def calls_and_threads(path, model, dtype):
    # GetStats: engine calls of the variant and their threads, summed over sizes.
    calls = threads = 0.0
    for v in json.load(open(path)).get("variants", []):
        key = v["variant"]
        if key["model"] == model and key["dtype"] == ("BFLOAT16" if dtype == "bf16" else "FLOAT32"):
            for b in v.get("batch_sizes", []):
                calls += float(b["batches"])
                threads += float(b["batches"]) * b.get("mean_threads", 0)
    return calls, threads

def mean_threads(point, model, dtype):
    # Threads per engine call during one run (warm-up included).
    c0, t0 = calls_and_threads(point + ".before.json", model, dtype)
    c1, t1 = calls_and_threads(point + ".after.json", model, dtype)
    return (t1 - t0) / (c1 - c0) if c1 > c0 else float("nan")

print("| variant | dtype | M | conc | p50 us adaptive / all | p99 us adaptive / all "
      "| tokens/s adaptive / all | tokens/s ratio | adaptive threads per call |")
print("|---|---|---|---|---|---|---|---|---|")
for run in runs:
    variant, dtype = run.split()
    for m in tokens:
        for c in concurrency:
            got = {}
            threads = statistics.median(
                mean_threads(f"{work}/{r}.adaptive.{variant}.{dtype}.{m}.{c}", variant.split(":")[0], dtype)
                for r in range(1, rounds + 1))
            for mode in ("adaptive", "all"):
                totals = [json.load(open(f"{work}/{r}.{mode}.{variant}.{dtype}.{m}.{c}.json"))["total"]
                          for r in range(1, rounds + 1)]
                got[mode] = {k: statistics.median(t[k] for t in totals)
                             for k in ("p50_us", "p99_us", "tokens_per_second", "mean_server_batch_tokens")}
            a, b = got["adaptive"], got["all"]
            print(f"| {variant} | {dtype} | {m} | {c} | {a['p50_us']:.0f} / {b['p50_us']:.0f} "
                  f"| {a['p99_us']:.0f} / {b['p99_us']:.0f} "
                  f"| {a['tokens_per_second']:.0f} / {b['tokens_per_second']:.0f} "
                  f"| {a['tokens_per_second'] / b['tokens_per_second']:.2f} "
                  f"| {threads:.2f} (mean batch {a['mean_server_batch_tokens']:.1f}) |")
PY
