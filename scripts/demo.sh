#!/usr/bin/env bash
# The main job: installs, builds, starts ffn-server with its embedded default
# models on a free loopback port, load-tests every activation with ffn-client
# and prints the per-variant table, then stops the server.
#
#   DURATION=10 CONCURRENCY=4 TOKENS=1 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-8}"
concurrency="${CONCURRENCY:-4}"
tokens="${TOKENS:-1}"

bash scripts/build.sh -DFFN_BUILD_TESTS=OFF -DFFN_BUILD_BENCH=OFF

workdir="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

./build/server/ffn-server --address 127.0.0.1:0 --port-file "$workdir/port" \
  > "$workdir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  [[ -s "$workdir/port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$workdir/server.log"; echo "ffn-server failed to start" >&2; exit 1
  fi
  sleep 0.1
done
[[ -s "$workdir/port" ]] || { cat "$workdir/server.log"; echo "ffn-server did not start" >&2; exit 1; }
target="127.0.0.1:$(cat "$workdir/port")"
cat "$workdir/server.log"
echo
./build/client/ffn-client models --target "$target"
echo
./build/client/ffn-client load --target "$target" --variants all \
  --concurrency "$concurrency" --duration "$duration" --tokens "$tokens"
echo
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
echo "ffn-server stopped cleanly"
