#!/usr/bin/env bash
# The Open Inference Protocol figures of docs/BENCHMARKS.md, in one run on one
# machine, client and servers sharing it:
#   1. the cost of the protocol: ffn-client over ffn.v1 vs --protocol v2,
#      both against ffnserve;
#   2. ffnserve vs Seldon MLServer (PyPI mlserver, bench/mlserver_ffn: the
#      same FFN in numpy, the same weights), both driven by
#      ffn-client --protocol v2; MLServer with numpy's OpenBLAS on 1 and on 2
#      threads, each run alone after ffnserve has stopped.
# Closed loop at concurrency 1, 8, 64 with 1 and 32 tokens per request; ffn-768
# shape (d_model 768, d_ff 3072), gelu_tanh, fp32 compute. MLServer and its
# numpy go into build/venv-mlserver on first use.
#
#   bash bench/kserve_bench.sh          # after scripts/build.sh
#   DURATION=10 bash bench/kserve_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-5}"
client=build/client/ffn-client
venv=build/venv-mlserver
source bench/servers.sh

source scripts/venv.sh
ensure_venv "$venv" bin/mlserver "mlserver==1.7.1" "numpy==2.2.6"

# The weights, drawn once, served by both.
"$venv/bin/python" - "$work/ffn.safetensors" <<'PY'
import json, struct, sys
import numpy as np
rng = np.random.default_rng(1)
d, f = 768, 3072
tensors = {"fc1.weight": rng.uniform(-1, 1, (f, d)) / np.sqrt(d), "fc1.bias": rng.uniform(-0.1, 0.1, f),
           "fc2.weight": rng.uniform(-1, 1, (d, f)) / np.sqrt(f), "fc2.bias": rng.uniform(-0.1, 0.1, d)}
header, blobs, offset = {}, [], 0
for name, a in tensors.items():
    b = np.ascontiguousarray(a, "<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
    offset += len(b)
    blobs.append(b)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(sys.argv[1], "wb") as out:
    out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
PY

cat > "$work/ffn.yaml" <<YAML
models:
  - name: ffn
    d_model: 768
    d_ff: 3072
    activation: gelu_tanh
    dtype: f32
    weights:
      safetensors: ffn.safetensors
      tensors: {w1: fc1.weight, b1: fc1.bias, w2: fc2.weight, b2: fc2.bias}
YAML
start_ffn_server ffn "$work/ffn.yaml"  # sets $ffn


# run NAME TARGET PROTOCOL VARIANT CONCURRENCY TOKENS
run() {
  "$client" load --protocol "$3" --target "$2" --variants "$4" --concurrency "$5" \
    --tokens "$6" --duration "$duration" --warmup 1 --timeout 60 \
    --json "$work/$1-$5-$6.json" >/dev/null || true
}
for tokens in 1 32; do
  for c in 1 8 64; do
    run ffn-v1 "$ffn" ffn ffn:gelu_tanh "$c" "$tokens"
    run ffn-v2 "$ffn" v2 ffn "$c" "$tokens"
  done
done
kill -TERM "${pids[0]}"

# MLServer once per OpenBLAS thread count (numpy's matmuls), one at a time
# with nothing else serving: OpenBLAS threads spin between calls, and with 2
# of them on 2 vCPUs next to the load generator a 32-token request can wait
# tens of ms for a preempted one, so both counts are measured and the better
# is the peer.
mkdir -p "$work/mlserver/ffn"
cp bench/mlserver_ffn/runtime.py "$work/mlserver/ffn/"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cat > "$work/mlserver/ffn/model-settings.json" <<JSON
{"name": "ffn", "implementation": "runtime.NumpyFfn",
 "parameters": {"uri": "$work/ffn.safetensors"},
 "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 768]}],
 "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 768]}]}
JSON
mlserver_bin="$PWD/$venv/bin/mlserver"
for blas in 1 2; do
  ml_grpc=$(free_port); ml_http=$(free_port); ml_metrics=$(free_port)
  # parallel_workers 0: inference in MLServer's own process. Its default, one
  # worker process, does not start with the uvloop that mlserver 1.7.1 pulls
  # in on Python 3.11 ("There is no current event loop in thread 'MainThread'").
  cat > "$work/mlserver/settings.json" <<JSON
{"host": "127.0.0.1", "grpc_port": $ml_grpc, "http_port": $ml_http, "metrics_port": $ml_metrics,
 "parallel_workers": 0}
JSON
  (cd "$work/mlserver/ffn" && OPENBLAS_NUM_THREADS=$blas exec "$mlserver_bin" start "$work/mlserver" \
    > "$work/mlserver-$blas.log" 2>&1) &
  ml_pid=$!
  pids+=("$ml_pid")
  mlserver="127.0.0.1:$ml_grpc"
  for _ in $(seq 1 600); do
    "$client" infer --protocol v2 --target "$mlserver" --model ffn --timeout 2 >/dev/null 2>&1 && break
    sleep 0.2
  done
  for tokens in 1 32; do
    for c in 1 8 64; do run "mlserver$blas" "$mlserver" v2 ffn "$c" "$tokens"; done
  done
  kill -TERM "$ml_pid"
  wait "$ml_pid" 2>/dev/null || true
done

/usr/bin/python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def total(name, c, t):
    path = os.path.join(work, f"{name}-{c}-{t}.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))["total"]
print("| tokens | concurrency | ffnserve ffn.v1 req/s, p50/p99 ms | ffnserve v2 req/s, p50/p99 ms "
      "| MLServer v2, 1 BLAS thread | MLServer v2, 2 BLAS threads "
      "| ffnserve v2 / better MLServer throughput |")
print("|---|---|---|---|---|---|---|")
for t in (1, 32):
    for c in (1, 8, 64):
        cells, rates = [], {}
        for name in ("ffn-v1", "ffn-v2", "mlserver1", "mlserver2"):
            r = total(name, c, t)
            if r is None or r["requests"] == 0:
                cells.append("failed")
                continue
            rates[name] = r["requests_per_second"]
            cells.append(f'{r["requests_per_second"]:.0f}, {r["p50_us"]/1000:.2f}/{r["p99_us"]/1000:.2f}'
                         + (f' ({r["errors"]} errors)' if r["errors"] else ""))
        best = max((rates[n] for n in ("mlserver1", "mlserver2") if n in rates), default=None)
        ratio = f'{rates["ffn-v2"] / best:.1f}×' if "ffn-v2" in rates and best else ""
        print(f"| {t} | {c} | " + " | ".join(cells) + f" | {ratio} |")
PY
