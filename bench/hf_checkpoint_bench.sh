#!/usr/bin/env bash
# Load time, memory and served compute of a Hugging Face checkpoint's layers
# (docs/BENCHMARKS.md, "Hugging Face checkpoints"):
#   for each layer selection: seconds from start to serving and the peak RSS
#   of ffn-server; then, with one layer, the server-side compute per call at
#   M = 1, 32, 512 tokens (ffn-client load, one call in flight), f32 and bf16.
#
#   build/venv-hf/bin/python bench/make_llama_checkpoint.py build/llama7b-mlp
#   bash bench/hf_checkpoint_bench.sh build/llama7b-mlp "0" "0-7" all
# Run on a quiet machine: nothing else building or testing.
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=$(realpath "$1")
shift
selections=("$@")
[[ ${#selections[@]} -gt 0 ]] || selections=("0")
server=build/server/ffn-server
client=build/client/ffn-client
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=

start_server() {  # selection, dtype -> sets pid, port and load_seconds (to serving)
  local layers=$1 dtype=$2
  [[ $layers == all ]] || layers="\"$layers\""
  cat > "$work/hf.yaml" <<EOF
server: {threads: 2, max_tokens_per_request: 512}
models:
  - {name: m, dtype: $dtype, huggingface: {path: $checkpoint, layers: $layers}}
EOF
  rm -f "$work/port"
  local t0
  t0=$(date +%s.%N)
  "$server" --config "$work/hf.yaml" --address 127.0.0.1:0 --port-file "$work/port" \
    > "$work/server.log" 2>&1 &
  pid=$!
  while [[ ! -s "$work/port" ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server exited: $(tail -n 3 "$work/server.log")" >&2
      pid=
      return 1
    fi
    sleep 0.05
  done
  port=$(cat "$work/port")
  load_seconds=$(echo "$(date +%s.%N) - $t0" | bc)
}

peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; checkpoint $checkpoint"
echo
echo "| layers | load to serving (s) | peak RSS (MiB) | RSS serving (MiB) |"
echo "|---|---|---|---|"
for selection in "${selections[@]}"; do
  if start_server "$selection" bf16; then
    printf '| %s | %.1f | %s | %s |\n' "$selection" "$load_seconds" "$(peak_mib)" "$(rss_mib)"
    kill -TERM "$pid"; wait "$pid" || true; pid=
  else
    echo "| $selection | refused: $(grep -o "error.*" "$work/server.log" | head -n 1 | cut -c7-200) | | |"
  fi
done

echo
echo "| compute | M | server compute, mean (ms) | round trip p50 (ms) | tokens/s |"
echo "|---|---|---|---|---|"
start_server "${selections[0]%%-*}" f32
model=$("$client" models --target "127.0.0.1:$port" --json | python3 -c \
  'import json,sys; d = json.load(sys.stdin); print((d["models"] if isinstance(d, dict) else d)[0]["name"])')
for dtype in f32 bf16; do
  for m in 1 32 512; do
    "$client" load --target "127.0.0.1:$port" --variants "$model" --tokens "$m" \
      --compute-dtype "$dtype" --concurrency 1 --duration 10 --warmup 2 \
      --json "$work/load.json" > /dev/null
    python3 - "$work/load.json" "$dtype" "$m" <<'EOF'
import json, sys
row = json.load(open(sys.argv[1]))["total"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {row['mean_server_compute_us'] / 1000:.2f} | "
      f"{row['p50_us'] / 1000:.2f} | {row['tokens_per_second']:.0f} |")
EOF
  done
done
