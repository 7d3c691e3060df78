#!/usr/bin/env bash
# Soak: one ffn-server (embedded default models) under a mixed load for a long
# time, its resident memory and open file descriptors sampled every 2 s.
#
#   bench/soak.sh [MINUTES] [OUT_DIR]     (default 30 minutes, build/soak)
#
# The run is a chain of rounds: ROUND_SECONDS (default 56) of load, then 4 s
# with no request, at whose end RSS is read as that round's quiet sample. The
# load of a round, all at once:
#   - unary closed loop over every variant, 1-512 tokens (mostly small), 4 in flight;
#   - streams: one `ffn-client load --stream` run, on a new connection each
#     round (a client that reconnects), 1-64 tokens, 4 in flight;
#   - cancellations: runs whose 2 ms deadline cuts calls of 256-512 tokens off;
#   - bad requests, about 1 % of the traffic: unknown models, wrong activations,
#     tokens over the limit, one after another.
# A leak shows in the quiet samples: with nothing in flight the server hands
# its allocator's free pages back (FfnServer::ReleaseMemoryIfIdle), so what is
# left is what it holds. Under load RSS swings by hundreds of MiB with the
# requests in flight (a 512-token call is 1.5 MiB each way, and the deadline
# runs leave many in flight), which says nothing about leaks.
# Passes when, after the warm-up (the first WARMUP_PCT % of the rounds,
# default 20: per-thread buffers and cached primitives grow to the largest
# batch first), the quiet RSS grows less than RSS_GROWTH_PCT (default 1 %: the
# lowest quiet sample of the last third of the rounds after warm-up against
# the lowest of the first third), the open fds are flat (within 4), the unary
# and stream loads had no failed request, and every bad request was refused
# with the status it should get. Writes samples.csv, quiet.csv, soak.svg
# (gnuplot) and a summary to OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
out="${2:-build/soak}"
growth_limit="${RSS_GROWTH_PCT:-1}"
warmup_pct="${WARMUP_PCT:-20}"
round_seconds="${ROUND_SECONDS:-56}"
quiet_seconds=4
server=build/server/ffn-server
client=build/client/ffn-client
seconds=$(python3 -c "print(int(float('$minutes') * 60))")
rounds=$(( seconds / (round_seconds + quiet_seconds) ))
(( rounds >= 3 )) || { echo "soak: $minutes min makes fewer than 3 rounds of $round_seconds s" >&2; exit 2; }
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
echo "soak: server pid $server_pid on $target, $rounds rounds of $round_seconds s load + $quiet_seconds s quiet; samples in $out"

sample() {  # seconds since start, RSS in MiB, open fds
  local rss_kib
  rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
  printf '%d,%.1f,%d\n' $(( $(date +%s) - start )) "$(echo "$rss_kib / 1024" | bc -l)" \
    "$(ls "/proc/$server_pid/fd" | wc -l)"
}
start=$(date +%s)
echo "seconds,rss_mib,fds" > "$out/samples.csv"
( while kill -0 "$server_pid" 2> /dev/null; do sample >> "$out/samples.csv"; sleep 2; done ) &
pids+=("$!")
echo "round,seconds,rss_mib,fds" > "$out/quiet.csv"
: > "$out/stream.txt"
: > "$out/unary.txt"
bad=0 wrong=0 failed=0
for round in $(seq 1 "$rounds"); do
  end=$(( $(date +%s) + round_seconds ))
  # Unary: exit 0 only if every call succeeded.
  "$client" load --target "$target" --variants all --tokens 1-8=70,9-64=20,65-512=10 \
    --concurrency 4 --warmup 0 --duration "$round_seconds" --seed "$round" \
    --json "$work/unary.$round.json" >> "$out/unary.txt" 2>&1 &
  unary_pid=$!
  "$client" load --target "$target" --stream --variants all --tokens 1-64 --concurrency 4 \
    --warmup 0 --duration "$round_seconds" --seed "$round" >> "$out/stream.txt" 2>&1 &
  stream_pid=$!
  (
    while (( $(date +%s) + 3 <= end )); do
      # Deadlines shorter than the compute: DEADLINE_EXCEEDED, expected.
      "$client" load --target "$target" --variants ffn-768:gelu --tokens 256-512 --concurrency 2 \
        --timeout 0.002 --warmup 0 --duration 3 > /dev/null 2>&1 || true
      sleep 2
    done
  ) &
  deadline_pid=$!
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
  wait "$unary_pid" || { echo "soak: round $round: the unary load had failed requests:"; tail -n 20 "$out/unary.txt"; failed=1; }
  wait "$stream_pid" || { echo "soak: round $round: the stream run had failed requests:"; tail -n 30 "$out/stream.txt"; failed=1; }
  wait "$deadline_pid" || true
  sleep "$quiet_seconds"
  echo "$round,$(sample)" >> "$out/quiet.csv"
done

if (( wrong > 0 )); then echo "soak: $wrong of $bad bad requests were not refused as they should be"; failed=1; fi
"$client" stats --target "$target" > "$out/stats.txt" 2>&1 || true

python3 - "$out/samples.csv" "$out/quiet.csv" "$growth_limit" "$warmup_pct" "$work" "$bad" "$rounds" \
  > "$out/summary.txt" <<'PY' || failed=1
import csv, glob, json, sys
samples = list(csv.DictReader(open(sys.argv[1])))
quiet = list(csv.DictReader(open(sys.argv[2])))
limit, warmup_pct = float(sys.argv[3]), int(sys.argv[4])
warm = quiet[len(quiet) * warmup_pct // 100:]
if len(warm) < 2:
    sys.exit("soak: too few rounds after the warm-up")
# The lowest quiet sample of the first and of the last third of the rounds
# after warm-up (one round each when there are fewer than six).
third = max(1, len(warm) // 3)
rss = [float(r["rss_mib"]) for r in warm]
base, end_rss = min(rss[:third]), min(rss[-third:])
growth = 100.0 * (end_rss - base) / base
after = [r for r in samples if int(r["seconds"]) >= int(warm[0]["seconds"]) - 60]
loaded = [float(r["rss_mib"]) for r in after]
fds = [int(r["fds"]) for r in after]
requests = errors = 0
for name in glob.glob(sys.argv[5] + "/unary.*.json"):
    total = json.load(open(name)).get("total", {})
    requests += total.get("requests", 0)
    errors += total.get("errors", 0)
print(f"rounds {sys.argv[7]} over {samples[-1]['seconds']} s; quiet RSS after warm-up "
      f"{' '.join(f'{x:.1f}' for x in rss)} MiB: {base:.1f} (first third) -> {end_rss:.1f} "
      f"(last third), {growth:+.2f} %; under load {min(loaded):.1f}..{max(loaded):.1f} MiB; "
      f"fds {min(fds)}..{max(fds)}")
print(f"unary requests {requests} ({errors} errors); bad requests {sys.argv[6]}; "
      f"stream runs {sys.argv[7]}")
ok = growth < limit and max(fds) - min(fds) <= 4
print("PASS" if ok else f"FAIL: quiet RSS growth must stay under {limit} % and fds within 4")
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
plot "$out/samples.csv" using 1:2 skip 1 with lines lw 1 title "ffn-server RSS", \
     "$out/quiet.csv" using 2:3 skip 1 with linespoints lw 2 pt 7 title "RSS with nothing in flight", \
     "$out/samples.csv" using 1:3 skip 1 axes x1y2 with lines lw 1 title "open fds"
EOF
fi
exit "$failed"
