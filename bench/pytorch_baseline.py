#!/usr/bin/python3
"""The FFN blocks of bench/ffn_block_bench in PyTorch, as a user would run them.

Same shapes and token counts, bf16 weights and activations (PyTorch's f32
path on Debian uses the reference BLAS and is no fair comparison; --dtype
f32 runs it anyway), in-process, torch.inference_mode(), the thread count of
OMP_NUM_THREADS (default 2). Prints the median of --repeats timed calls per
point, in ms, after warm-up calls.

  /usr/bin/python3 bench/pytorch_baseline.py            # needs python3-torch
  /usr/bin/python3 bench/pytorch_baseline.py --shapes llama-7b --tokens 1,512
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {
    # name: (d_model, d_ff, gated, activations)
    "ffn-768": (768, 3072, False, ["relu", "gelu", "gelu_tanh", "silu"]),
    "glu-768": (768, 2048, True, ["swiglu", "geglu"]),
    "llama-7b": (4096, 11008, True, ["swiglu", "geglu"]),
}

PLAIN = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}
GATE = {"swiglu": F.silu, "geglu": F.gelu}


def block(d_model, d_ff, gated, activation, dtype):
    g = torch.Generator().manual_seed(1)

    def weight(rows, cols):
        return ((torch.rand(rows, cols, generator=g) * 2 - 1) / cols**0.5).to(dtype)

    w2 = weight(d_model, d_ff)
    if gated:
        wg, wu, act = weight(d_ff, d_model), weight(d_ff, d_model), GATE[activation]
        return lambda x: F.linear(act(F.linear(x, wg)) * F.linear(x, wu), w2)
    w1, b1, b2 = weight(d_ff, d_model), torch.zeros(d_ff, dtype=dtype), torch.zeros(d_model, dtype=dtype)
    act = PLAIN[activation]
    return lambda x: F.linear(act(F.linear(x, w1, b1)), w2, b2)


def median_ms(fn, x, repeats, min_seconds):
    for _ in range(3):
        fn(x)
    times = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
        if len(times) >= 1000:
            break
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--tokens", default="1,8,32,128,512")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    tokens = [int(t) for t in args.tokens.split(",")]
    print(f"# PyTorch {torch.__version__}, {threads} threads, {args.dtype}, median ms per call")
    print("shape/activation/dtype " + " ".join(f"M={m}" for m in tokens))
    with torch.inference_mode():
        for name in args.shapes.split(","):
            d_model, d_ff, gated, activations = SHAPES[name]
            for activation in activations:
                fn = block(d_model, d_ff, gated, activation, dtype)
                row = []
                for m in tokens:
                    x = ((torch.rand(m, d_model) * 2 - 1)).to(dtype)
                    row.append(median_ms(fn, x, args.repeats, args.min_seconds))
                print(f"torch/{name}/{activation}/{args.dtype} " + " ".join(f"{v:.3f}" for v in row),
                      flush=True)


if __name__ == "__main__":
    main()
