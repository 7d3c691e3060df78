#!/usr/bin/env bash
# ffnserve's engine against the peers a user would pick instead, in one run on
# one machine, 2 threads each: PyTorch (f32, bf16), ONNX Runtime (f32, dynamic
# int8) and OpenVINO (f32, bf16), on ffn-768 gelu (768x3072) and LLaMA-7B's
# SwiGLU (4096x11008) at 1, 32 and 512 tokens (bench/peers_bench.py), next to
# bench/ffn_block_bench's served path (batch-invariant, the default), its
# fastest strategy and its int8 path (quantization: int8). ROUNDS rounds (default 2), each running every framework
# once in turn; a point's figure is the lower of its rounds' medians. Prints
# a Markdown table.
#
#   bash bench/peers_bench.sh            # after scripts/build.sh
#   ROUNDS=3 SHAPES=ffn-768 bash bench/peers_bench.sh
#
# ONNX Runtime and OpenVINO go into build/venv-peers on first use. PyTorch
# comes from TORCH_PYTHON (default build/venv-hf/bin/python, the fixture
# venv of tools/make_hf_fixtures.py); without it, torch is skipped: PyPI's
# wheel pulls gigabytes of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-2}"
shapes="${SHAPES:-ffn-768,llama-7b}"
tokens="${TOKENS:-1,32,512}"
venv=build/venv-peers
torch_python="${TORCH_PYTHON:-build/venv-hf/bin/python}"
source scripts/venv.sh
ensure_venv "$venv" bin/python "onnx==1.23.2" "onnxruntime==1.32.0" "openvino==2026.4.1" "numpy==2.4.6"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

filter_shapes=$(echo "$shapes" | sed 's/ffn-768/ffn-768\/gelu/; s/llama-7b/llama-7b\/swiglu/; s/,/|/g')
filter="^(${filter_shapes})/((f32|bf16)/(invariant|fused|unfused)|int8/served)/($(echo "$tokens" | tr , '|'))/real_time\$"
export OMP_NUM_THREADS=2 FFN_PEER_THREADS=2
for round in $(seq 1 "$rounds"); do
  echo "round $round: ffnserve" >&2
  build/bench/ffn_block_bench --benchmark_filter="$filter" --benchmark_format=json \
    --benchmark_min_time=0.5 > "$work/ours-$round.json" 2> /dev/null
  if [[ -x $torch_python ]]; then
    echo "round $round: torch" >&2
    "$torch_python" bench/peers_bench.py --framework torch --shapes "$shapes" --tokens "$tokens" \
      --precisions f32,bf16 >> "$work/peers.jsonl"
  fi
  echo "round $round: onnxruntime" >&2
  accuracy=()
  [[ $round == 1 ]] && accuracy=(--accuracy)
  "$venv/bin/python" bench/peers_bench.py --framework ort --shapes "$shapes" --tokens "$tokens" \
    --precisions f32,int8 "${accuracy[@]}" >> "$work/peers.jsonl"
  echo "round $round: openvino" >&2
  "$venv/bin/python" bench/peers_bench.py --framework openvino --shapes "$shapes" \
    --tokens "$tokens" --precisions f32,bf16 >> "$work/peers.jsonl"
done

/usr/bin/python3 - "$work" "$shapes" "$tokens" <<'PY'
import glob, json, os, sys
work, shapes, tokens = sys.argv[1], sys.argv[2].split(","), [int(t) for t in sys.argv[3].split(",")]
best = {}  # (column, shape, m) -> lowest median over rounds, ms
def keep(key, ms):
    best[key] = min(ms, best.get(key, float("inf")))
for path in glob.glob(os.path.join(work, "ours-*.json")):
    for b in json.load(open(path))["benchmarks"]:
        # SHAPE/ACTIVATION/PRECISION/STRATEGY/M/real_time
        shape, _, precision, strategy, m = b["name"].split("/")[:5]
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        ms = b["real_time"] * scale
        keep((f"ffnserve {precision} served", shape, int(m)) if strategy in ("invariant", "served")
             else (f"ffnserve {precision} fastest", shape, int(m)), ms)
        if strategy == "invariant":
            keep((f"ffnserve {precision} fastest", shape, int(m)), ms)
accuracy = {}  # (column, shape, m) -> (relative error, row 0 alone has the same bits)
for line in open(os.path.join(work, "peers.jsonl")):
    r = json.loads(line)
    name = {"torch": "PyTorch", "ort": "ONNX Runtime", "openvino": "OpenVINO"}[r["framework"]]
    keep((f"{name} {r['precision']}", r["shape"], r["m"]), r["ms"])
    if "rel_error" in r:
        accuracy[(f"{name} {r['precision']}", r["shape"], r["m"])] = (r["rel_error"], r["batch_invariant"])
columns = ["ffnserve f32 served", "ffnserve f32 fastest", "ffnserve bf16 served",
           "ffnserve bf16 fastest", "ffnserve int8 served", "PyTorch f32", "PyTorch bf16", "ONNX Runtime f32",
           "ONNX Runtime int8", "OpenVINO f32", "OpenVINO bf16"]
columns = [c for c in columns if any(k[0] == c for k in best)]
print("| shape | tokens | " + " | ".join(columns) +
      " | fastest f32/bf16 peer / ffnserve bf16 served | ONNX Runtime int8 / ffnserve int8 |")
print("|---|---|" + "---|" * (len(columns) + 2))
for shape in shapes:
    for m in tokens:
        cells = [f"{best[(c, shape, m)]:.3g}" if (c, shape, m) in best else "-" for c in columns]
        peers = [(best[(c, shape, m)], c) for c in columns
                 if not c.startswith("ffnserve") and not c.endswith("int8") and (c, shape, m) in best]
        ours = best.get(("ffnserve bf16 served", shape, m))
        ratio = ""
        if peers and ours:
            fastest, who = min(peers)
            ratio = f"{fastest / ours:.2f} ({who})"
        ort8, ours8 = best.get(("ONNX Runtime int8", shape, m)), best.get(("ffnserve int8 served", shape, m))
        ratio8 = f"{ort8 / ours8:.2f}" if ort8 and ours8 else ""
        print(f"| {shape} | {m} | " + " | ".join(cells) + f" | {ratio} | {ratio8} |")
print("\nms per call, the lower of the rounds' medians; 'served': the batch-invariant path "
      "ffn-server runs by default; 'fastest': the fastest of unfused, fused and served. "
      "A ratio above 1: ffnserve is faster.")
if accuracy:
    print("\n| peer | shape | tokens | relative Frobenius error vs float64 | row 0 alone = row 0 in the batch |")
    print("|---|---|---|---|---|")
    for (column, shape, m), (error, invariant) in sorted(accuracy.items()):
        print(f"| {column} | {shape} | {m} | {error:.3g} | {'yes' if invariant else 'no'} |")
PY
