#!/usr/bin/env bash
# Soak: one ffn-server (embedded default models) under a mixed load for a long
# time, its resident memory and open file descriptors sampled every 10 s.
#
#   bench/soak.sh [MINUTES] [OUT_DIR]     (default 30 minutes, build/soak)
#
# The load, all at once for the whole run:
#   - unary closed loop over every variant, 1-512 tokens (mostly small), 4 in flight;
#   - streams: `ffn-client load --stream` runs of 20 s, each on a new connection
#     (a client that reconnects), 1-64 tokens, 4 in flight;
#   - cancellations: runs whose 2 ms deadline cuts calls of 256-512 tokens off;
#   - bad requests, about 1 % of the traffic: unknown models, wrong activations,
#     tokens over the limit, one after another.
# Passes when, after the warm-up (the first WARMUP_PCT % of the run, default
# 20: per-thread buffers and cached primitives grow to the largest batch
# first), RSS grows less than RSS_GROWTH_PCT (default 1 %: the lowest sample
# of the last quarter against the lowest of the first, a quarter being at
# least three samples), the open fds are flat (within 4), the unary and
# stream loads had no failed request, and every bad request was refused with
# the status it should get. Writes samples.csv, soak.svg (gnuplot) and a
# summary to OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
out="${2:-build/soak}"
growth_limit="${RSS_GROWTH_PCT:-1}"
warmup_pct="${WARMUP_PCT:-20}"
server=build/server/ffn-server
client=build/client/ffn-client
seconds=$(python3 -c "print(int(float('$minutes') * 60))")
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n "${server_pid:-}" ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" || true
  rm -rf "$work"
}
trap cleanup EXIT

"$server" --address 127.0.0.1:0 --port-file "$work/port" --threads 2 > "$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 1200); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { cat "$out/server.log"; echo "soak: the server did not start" >&2; exit 1; }
target="127.0.0.1:$(cat "$work/port")"
echo "soak: server pid $server_pid on $target for $minutes min; samples in $out"
end=$(( $(date +%s) + seconds ))

# Unary: one run for the whole time; exit 0 only if every call succeeded.
"$client" load --target "$target" --variants all --tokens 1-8=70,9-64=20,65-512=10 \
  --concurrency 4 --warmup 0 --duration "$seconds" --seed 1 --json "$work/unary.json" \
  > "$out/unary.txt" 2>&1 &
unary_pid=$!
pids+=("$unary_pid")

# Streams on fresh connections; cancellations; bad requests: loops until the end.
(
  status=0 round=0
  while (( $(date +%s) + 20 <= end )); do
    round=$((round + 1))
    "$client" load --target "$target" --stream --variants all --tokens 1-64 --concurrency 4 \
      --warmup 0 --duration 20 --seed "$round" > "$work/stream.txt" 2>&1 || { status=1; cat "$work/stream.txt"; }
  done
  echo "$round" > "$work/stream_rounds"
  exit "$status"
) > "$out/stream.txt" 2>&1 &
stream_pid=$!
pids+=("$stream_pid")
(
  while (( $(date +%s) + 5 <= end )); do
    # Deadlines shorter than the compute: DEADLINE_EXCEEDED, expected.
    "$client" load --target "$target" --variants ffn-768:gelu --tokens 256-512 --concurrency 2 \
      --timeout 0.002 --warmup 0 --duration 3 > /dev/null 2>&1 || true
    sleep 2
  done
) &
pids+=("$!")
(
  bad=0 wrong=0
  while (( $(date +%s) + 1 <= end )); do
    for args in "--model nope" "--model ffn-768 --activation swiglu" \
                "--model glu-768 --activation gelu" "--model ffn-768 --tokens 9000"; do
      # shellcheck disable=SC2086
      if "$client" infer --target "$target" $args > "$work/bad.txt" 2>&1; then
        wrong=$((wrong + 1))  # accepted: should not have been
      elif ! grep -qE "NOT_FOUND|INVALID_ARGUMENT" "$work/bad.txt"; then
        wrong=$((wrong + 1)); cat "$work/bad.txt"
      fi
      bad=$((bad + 1))
      sleep 0.25
    done
  done
  echo "$bad $wrong" > "$work/bad_counts"
) > "$out/bad.txt" 2>&1 &
bad_pid=$!
pids+=("$bad_pid")

echo "seconds,rss_mib,fds" > "$out/samples.csv"
start=$(date +%s)
while (( $(date +%s) < end )); do
  rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
  fds=$(ls "/proc/$server_pid/fd" | wc -l)
  printf '%d,%.1f,%d\n' $(( $(date +%s) - start )) "$(echo "$rss_kib / 1024" | bc -l)" "$fds" \
    >> "$out/samples.csv"
  sleep 10
done

failed=0
wait "$unary_pid" || { echo "soak: the unary load had failed requests:"; tail -n 20 "$out/unary.txt"; failed=1; }
wait "$stream_pid" || { echo "soak: a stream run had failed requests:"; tail -n 30 "$out/stream.txt"; failed=1; }
wait "$bad_pid" || true
read -r bad wrong < "$work/bad_counts"
if (( wrong > 0 )); then echo "soak: $wrong of $bad bad requests were not refused as they should be"; failed=1; fi
"$client" stats --target "$target" > "$out/stats.txt" 2>&1 || true

python3 - "$out/samples.csv" "$growth_limit" "$warmup_pct" "$work/unary.json" "$bad" "$(cat "$work/stream_rounds" 2>/dev/null || echo 0)" \
  > "$out/summary.txt" <<'PY' || failed=1
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
limit = float(sys.argv[2])
warm = rows[len(rows) * int(sys.argv[3]) // 100:]
if len(warm) < 6:
    sys.exit("soak: too few samples")
# A leak raises the floor: the lowest sample of the last quarter after the
# warm-up against the lowest of the first quarter. (RSS moves up and down in
# steps of a few % for minutes as allocator arenas grow and are trimmed.) A
# floor is the lowest of at least three samples: one sample taken while a
# stream's answers are in flight is a peak, not a floor.
quarter = max(3, len(warm) // 4)
rss = [float(r["rss_mib"]) for r in warm]
base, end_rss = min(rss[:quarter]), min(rss[-quarter:])
peak, last = max(rss), rss[-1]
growth = 100.0 * (end_rss - base) / base
fds = [int(r["fds"]) for r in warm]
unary = json.load(open(sys.argv[4]))
total = unary.get("total", {})
print(f"samples {len(rows)} over {rows[-1]['seconds']} s; after warm-up the RSS floor went "
      f"{base:.1f} MiB (first quarter) -> {end_rss:.1f} MiB (last quarter), {growth:+.2f} %; "
      f"peak {peak:.1f}, last {last:.1f} MiB; fds {min(fds)}..{max(fds)}")
print(f"unary requests {total.get('requests', '?')} ({total.get('errors', '?')} errors); "
      f"bad requests {sys.argv[5]}; stream runs of 20 s {sys.argv[6]}")
ok = growth < limit and max(fds) - min(fds) <= 4
print("PASS" if ok else f"FAIL: RSS growth must stay under {limit} % and fds within 4")
sys.exit(0 if ok else 1)
PY
cat "$out/summary.txt"
if command -v gnuplot > /dev/null; then
  gnuplot <<EOF
set terminal svg size 800,400 font "sans,11"
set output "$out/soak.svg"
set datafile separator ","
set key top left
set xlabel "seconds"
set ylabel "RSS (MiB)"
set y2label "open fds"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot "$out/samples.csv" using 1:2 skip 1 with lines lw 2 title "ffn-server RSS", \
     "" using 1:3 skip 1 axes x1y2 with lines lw 1 title "open fds"
EOF
fi
exit "$failed"
