#!/usr/bin/env bash
# How many requests/s ffn-client can drive: closed loop at concurrency 1, 8
# and 64 and open loop at a ladder of rates, against ffn-server with a tiny
# model (d_model 8, d_ff 16: compute is negligible, so the figures are gRPC's
# and the client's) and against bench/echo_server (no server work at all).
# Each setting runs REPS times; the table shows the median run (by req/s),
# the client's own CPU time per request and how far an open loop fell behind.
#
#   bash bench/client_bench.sh                 # binaries in build/
#   BUILD=/tmp/b DURATION=10 REPS=5 bash bench/client_bench.sh
set -euo pipefail

build="${BUILD:-build}"
duration="${DURATION:-5}"
warmup="${WARMUP:-1}"
reps="${REPS:-3}"
rates="${RATES:-2000 5000 10000 15000}"
client="$build/client/ffn-client"
server="$build/server/ffn-server"
echo_server="$build/bench/echo_server"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/tiny.yaml" <<'EOF'
server: {address: "127.0.0.1:0", threads: 1}
models:
  - name: tiny
    d_model: 8
    d_ff: 16
    activation: relu
    weights: {random: {seed: 1}}
EOF
"$server" --config "$work/tiny.yaml" --port-file "$work/port" --log-level warn \
  >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -s "$work/port" ]] && break; sleep 0.1; done
targets=("ffn-server tiny=127.0.0.1:$(cat "$work/port")")
if [[ -x "$echo_server" ]]; then
  "$echo_server" --address 127.0.0.1:50071 --d-model 8 >"$work/echo.log" 2>&1 &
  pids+=($!)
  sleep 0.5
  targets+=("echo_server=127.0.0.1:50071")
fi

# One run: prints "req/s p50_us p99_us cpu_us_per_request lag_p99_us late_%".
run() {
  local target="$1"; shift
  /usr/bin/time -f "%U %S" -o "$work/time" "$client" load --target "$target" \
    --duration "$duration" --warmup "$warmup" --json "$work/run.json" "$@" \
    >/dev/null 2>"$work/client.log" || true
  python3 - "$work/run.json" "$work/time" "$warmup" "$duration" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
t = r["total"]
rps = t["requests_per_second"]
# CPU over every request sent, warmup included (rate x total time).
sent = rps * (float(sys.argv[3]) + float(sys.argv[4]))
o = r["open_loop"] or {}
late = 100.0 * o.get("late_sends", 0) / max(o.get("scheduled", 1), 1)
print(f"{rps:.0f} {t['p50_us']:.0f} {t['p99_us']:.0f} {1e6 * (user + system) / max(sent, 1):.1f} "
      f"{o.get('send_lag_p99_us', 0):.0f} {late:.1f}")
EOF
}

median() { sort -n | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'; }

echo "| server | load | req/s | p50 us | p99 us | client CPU us/req | send lag p99 us | late sends % |"
echo "|---|---|---|---|---|---|---|---|"
for entry in "${targets[@]}"; do
  name="${entry%%=*}" target="${entry#*=}"
  for c in 1 8 64; do
    row="$(for _ in $(seq "$reps"); do run "$target" --concurrency "$c"; done | median)"
    read -r rps p50 p99 cpu lag late <<<"$row"
    echo "| $name | closed, concurrency $c | $rps | $p50 | $p99 | $cpu | | |"
  done
  for c in 8 64; do
    row="$(for _ in $(seq "$reps"); do run "$target" --concurrency "$c" --stream; done | median)"
    read -r rps p50 p99 cpu lag late <<<"$row"
    echo "| $name | InferStream (--stream), concurrency $c | $rps | $p50 | $p99 | $cpu | | |"
  done
  for rate in $rates; do
    row="$(for _ in $(seq "$reps"); do run "$target" --rate "$rate"; done | median)"
    read -r rps p50 p99 cpu lag late <<<"$row"
    echo "| $name | open, $rate req/s | $rps | $p50 | $p99 | $cpu | $lag | $late |"
  done
done
