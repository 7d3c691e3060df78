#!/usr/bin/env bash
# Two ffn-server builds under the same loads, in alternation: before/after.
#
#   bench/serving_ab.sh OLD/build/server/ffn-server build/server/ffn-server [ROUNDS]
#
# Each round starts the old server, then the new one (default config, embedded
# models, loopback), and drives each with build/client/ffn-client:
#   demo:  --variants all --concurrency 4  --tokens 1     (the README's main job)
#   mixed: --variants all --concurrency 16 --tokens 1-16
# for DURATION seconds (default 8). Prints one line per run with the TOTAL row:
# requests/s, tokens/s, p50/p99 latency and the server's mean queue and compute
# time and batch size, from ffn-client's JSON report.
set -euo pipefail
old="$1" new="$2" rounds="${3:-2}"
duration="${DURATION:-8}"
client="$(dirname "$0")/../build/client/ffn-client"
work="$(mktemp -d)"
pid=""
cleanup() { [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; rm -rf "$work"; }
trap cleanup EXIT

serve() {  # starts $1, sets pid and target
  rm -f "$work/port"
  "$1" --address 127.0.0.1:0 --port-file "$work/port" > "$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do [[ -s "$work/port" ]] && break; sleep 0.1; done
  [[ -s "$work/port" ]] || { cat "$work/server.log"; echo "server did not start" >&2; exit 1; }
  target="127.0.0.1:$(cat "$work/port")"
}

printf '%-5s %-3s %-5s %9s %9s %8s %8s %9s %10s %7s\n' round srv load "req/s" "tok/s" "p50 us" "p99 us" \
  "queue us" "compute us" batch
for round in $(seq 1 "$rounds"); do
  for which in old new; do
    serve "${!which}"
    for load in demo mixed; do
      if [[ $load == demo ]]; then args=(--concurrency 4 --tokens 1); else args=(--concurrency 16 --tokens 1-16); fi
      "$client" load --target "$target" --variants all --duration "$duration" "${args[@]}" \
        --json "$work/$load.json" > /dev/null
      python3 - "$work/$load.json" "$round" "$which" "$load" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["total"]
print(f"{sys.argv[2]:<5} {sys.argv[3]:<3} {sys.argv[4]:<5} {t['requests_per_second']:9.0f} "
      f"{t['tokens_per_second']:9.0f} {t['p50_us']:8.0f} {t['p99_us']:8.0f} "
      f"{t['mean_server_queue_us']:9.0f} {t['mean_server_compute_us']:10.0f} "
      f"{t['mean_server_batch_tokens']:7.1f}")
PY
    done
    kill -TERM "$pid"; wait "$pid" || true; pid=""
  done
done
