"""The FFN blocks of bench/ffn_block_bench run by what a user would pick instead
of ffnserve: PyTorch (F.linear, f32 and bf16), ONNX Runtime (an ONNX graph of
the block, f32 and its dynamic int8 quantization) and OpenVINO (the same graph,
f32 and bf16 inference precision). One framework per process, 2 threads,
in-process calls on one input per token count; prints one JSON line per point:
{"framework", "precision", "shape", "m", "ms"} with the median of the timed
calls. Run by bench/peers_bench.sh, which also runs ffnserve's engine and
prints the table.

  python bench/peers_bench.py --framework ort --shapes ffn-768 --tokens 1,32,512
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

# name: (d_model, d_ff, gated); activations: gelu (exact) for plain, swiglu for gated.
SHAPES = {"ffn-768": (768, 3072, False), "llama-7b": (4096, 11008, True)}
THREADS = int(os.environ.get("FFN_PEER_THREADS", "2"))


def weights(d_model, d_ff, gated):
    """Uniform in ±1/sqrt(fan-in), nn.Linear layout [out, in], float32."""
    rng = np.random.default_rng(1)

    def w(rows, cols):
        return ((rng.random((rows, cols), dtype=np.float32) * 2 - 1) / math.sqrt(cols)).astype(np.float32)

    if gated:
        return {"wg": w(d_ff, d_model), "wu": w(d_ff, d_model), "w2": w(d_model, d_ff)}
    return {"w1": w(d_ff, d_model), "b1": np.zeros(d_ff, np.float32), "w2": w(d_model, d_ff),
            "b2": np.zeros(d_model, np.float32)}


def reference(w, x, gated):
    """The block in float64 (exact gelu), for the error of a peer's answer."""
    x = x.astype(np.float64)
    if gated:
        g, u = x @ w["wg"].T.astype(np.float64), x @ w["wu"].T.astype(np.float64)
        return (g / (1 + np.exp(-g)) * u) @ w["w2"].T.astype(np.float64)
    a = x @ w["w1"].T.astype(np.float64) + w["b1"]
    erf = np.vectorize(math.erf)
    return (0.5 * a * (1 + erf(a / math.sqrt(2)))) @ w["w2"].T.astype(np.float64) + w["b2"]


def accuracy(run, w, x, gated):
    """Relative Frobenius error of run(x) against the float64 block, and
    whether row 0 has the same bits when run alone (batch invariance)."""
    y = run(x)
    ref = reference(w, x, gated)
    error = float(np.linalg.norm(y.astype(np.float64) - ref) / np.linalg.norm(ref))
    return error, bool(np.array_equal(run(x[:1])[0], y[0]))


def median_ms(fn, repeats, min_seconds):
    for _ in range(3):
        fn()
    times, start_all = [], time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
        if len(times) >= 1000:
            break
    return statistics.median(times)


def onnx_model(path, d_model, d_ff, gated, w):
    """The block as an ONNX graph with a dynamic token count: MatMul (+ Add),
    gelu written with Erf (both runtimes fuse it) or SiLU·up, MatMul (+ Add)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))

    if gated:
        init("wg_t", w["wg"].T)
        init("wu_t", w["wu"].T)
        init("w2_t", w["w2"].T)
        nodes += [helper.make_node("MatMul", ["x", "wg_t"], ["g"]),
                  helper.make_node("MatMul", ["x", "wu_t"], ["u"]),
                  helper.make_node("Sigmoid", ["g"], ["sg"]),
                  helper.make_node("Mul", ["g", "sg"], ["silu"]),
                  helper.make_node("Mul", ["silu", "u"], ["h"]),
                  helper.make_node("MatMul", ["h", "w2_t"], ["y"])]
    else:
        init("w1_t", w["w1"].T)
        init("b1", w["b1"])
        init("w2_t", w["w2"].T)
        init("b2", w["b2"])
        init("inv_sqrt2", np.array(1 / math.sqrt(2), np.float32))
        init("one", np.array(1, np.float32))
        init("half", np.array(0.5, np.float32))
        nodes += [helper.make_node("MatMul", ["x", "w1_t"], ["a0"]),
                  helper.make_node("Add", ["a0", "b1"], ["a"]),
                  helper.make_node("Mul", ["a", "inv_sqrt2"], ["a_s"]),
                  helper.make_node("Erf", ["a_s"], ["e"]),
                  helper.make_node("Add", ["e", "one"], ["e1"]),
                  helper.make_node("Mul", ["a", "e1"], ["ae"]),
                  helper.make_node("Mul", ["ae", "half"], ["h"]),
                  helper.make_node("MatMul", ["h", "w2_t"], ["y0"]),
                  helper.make_node("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(
        nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", d_model])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", d_model])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def run_torch(shape, tokens, precisions, repeats, min_seconds):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(THREADS)
    d_model, d_ff, gated = SHAPES[shape]
    w = {k: torch.from_numpy(v) for k, v in weights(d_model, d_ff, gated).items()}
    for precision in precisions:
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[precision]
        t = {k: v.to(dtype) for k, v in w.items()}
        if gated:
            block = lambda x: F.linear(F.silu(F.linear(x, t["wg"])) * F.linear(x, t["wu"]), t["w2"])
        else:
            block = lambda x: F.linear(F.gelu(F.linear(x, t["w1"], t["b1"])), t["w2"], t["b2"])
        for m in tokens:
            x = (torch.rand(m, d_model) * 2 - 1).to(dtype)
            with torch.inference_mode():
                yield precision, m, median_ms(lambda: block(x), repeats, min_seconds), {}


def run_ort(shape, tokens, precisions, repeats, min_seconds):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    d_model, d_ff, gated = SHAPES[shape]
    w = weights(d_model, d_ff, gated)
    with tempfile.TemporaryDirectory() as folder:
        f32 = os.path.join(folder, "ffn.onnx")
        onnx_model(f32, d_model, d_ff, gated, w)
        paths = {"f32": f32}
        if "int8" in precisions:
            paths["int8"] = os.path.join(folder, "ffn-int8.onnx")
            quantize_dynamic(f32, paths["int8"], weight_type=QuantType.QInt8, per_channel=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        for precision in precisions:
            session = ort.InferenceSession(paths[precision], options, providers=["CPUExecutionProvider"])
            for m in tokens:
                x = (np.random.default_rng(2).random((m, d_model), dtype=np.float32) * 2 - 1)
                ms = median_ms(lambda: session.run(["y"], {"x": x}), repeats, min_seconds)
                extra = {}
                if ACCURACY:
                    error, invariant = accuracy(lambda v: session.run(["y"], {"x": v})[0], w, x, gated)
                    extra = {"rel_error": error, "batch_invariant": invariant}
                yield precision, m, ms, extra


def run_openvino(shape, tokens, precisions, repeats, min_seconds):
    import openvino as ov

    d_model, d_ff, gated = SHAPES[shape]
    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ffn.onnx")
        onnx_model(path, d_model, d_ff, gated, weights(d_model, d_ff, gated))
        model = core.read_model(path)
        for precision in precisions:
            compiled = core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": THREADS,
                "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            for m in tokens:
                x = (np.random.default_rng(2).random((m, d_model), dtype=np.float32) * 2 - 1)
                yield precision, m, median_ms(lambda: request.infer({0: x}), repeats, min_seconds), {}


RUNNERS = {"torch": run_torch, "ort": run_ort, "openvino": run_openvino}
ACCURACY = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--shapes", default="ffn-768,llama-7b")
    parser.add_argument("--tokens", default="1,32,512")
    parser.add_argument("--precisions", default="f32,bf16",
                        help="torch: f32,bf16; ort: f32,int8; openvino: f32,bf16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--accuracy", action="store_true",
                        help="ort: also the answers' error against float64 and whether row 0 "
                             "keeps its bits when run alone")
    args = parser.parse_args()
    global ACCURACY
    ACCURACY = args.accuracy
    tokens = [int(t) for t in args.tokens.split(",")]
    for shape in args.shapes.split(","):
        for precision, m, ms, extra in RUNNERS[args.framework](
                shape, tokens, args.precisions.split(","), args.repeats, args.min_seconds):
            print(json.dumps({"framework": args.framework, "precision": precision, "shape": shape,
                              "m": m, "ms": ms, **extra}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
