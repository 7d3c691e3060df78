# Sourced by the serving benchmarks: a work folder that goes, with every
# process started through `pids`, when the script exits; and ffn-server
# started on a free loopback port.
#
#   source bench/servers.sh                         # sets $work and the EXIT trap
#   start_ffn_server batched "$work/batched.yaml"   # sets $batched to 127.0.0.1:PORT
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# start_ffn_server NAME CONFIG [FLAG...]: starts build/server/ffn-server with
# CONFIG (and FLAGs), waits up to 60 s for it to serve, and sets the variable
# NAME to its target. Not to be run in a subshell: `pids` must keep its pid.
start_ffn_server() {
  local name="$1" config="$2"
  shift 2
  build/server/ffn-server --config "$config" --address 127.0.0.1:0 \
    --port-file "$work/$name.port" --log-level warn "$@" &
  pids+=($!)
  for _ in $(seq 1 600); do [[ -s "$work/$name.port" ]] && break; sleep 0.1; done
  if [[ ! -s "$work/$name.port" ]]; then
    echo "ffn-server '$name' did not start within 60 s" >&2
    return 1
  fi
  printf -v "$name" '127.0.0.1:%s' "$(cat "$work/$name.port")"
}
