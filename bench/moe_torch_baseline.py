#!/usr/bin/env python3
"""The Hugging Face eager MoE blocks at the shapes of bench/moe_bench.cc, in
bf16 on the CPU: what a user runs instead of ffnserve for expert layers.

  build/venv-hf/bin/python bench/moe_torch_baseline.py [shape ...]

Shapes: qwen3-30b-a3b (Qwen3MoeSparseMoeBlock, 2048 / 768, 128 experts,
top 8, norm_topk_prob) and mixtral (MixtralSparseMoeBlock, 4096 / 14336, 8
experts, top 2). Random weights U(±sqrt(3/fan_in)); 2 threads unless
OMP_NUM_THREADS says otherwise; median ms per call of 21 calls (5 at
M = 512) on new tokens each call, after one warm-up. Needs torch and
transformers (build/venv-hf, as tools/make_hf_fixtures.py uses); never part
of CI.
"""
import math
import os
import sys
import time

import torch
import transformers as T

SHAPES = {
    "qwen3-30b-a3b": lambda: T.models.qwen3_moe.modeling_qwen3_moe.Qwen3MoeSparseMoeBlock(
        T.Qwen3MoeConfig(hidden_size=2048, moe_intermediate_size=768, num_experts=128,
                         num_experts_per_tok=8, norm_topk_prob=True)),
    "mixtral": lambda: T.models.mixtral.modeling_mixtral.MixtralSparseMoeBlock(
        T.MixtralConfig(hidden_size=4096, intermediate_size=14336, num_local_experts=8,
                        num_experts_per_tok=2)),
}


def main(names):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.set_default_dtype(torch.bfloat16)
    print(f"torch {torch.__version__}, transformers {T.__version__}, {torch.get_num_threads()} threads")
    print("| shape | M | ms per call (median) | tokens/s |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(1)
    for name in names or SHAPES:
        block = SHAPES[name]().eval()
        with torch.no_grad():
            for p in block.parameters():
                fan_in = p.shape[-1]
                p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float32) * 2 - 1) * math.sqrt(3.0 / fan_in))
        for m in (1, 32, 512):
            reps = 5 if m == 512 else 21
            times = []
            with torch.no_grad():
                for r in range(reps + 1):
                    x = torch.randn(1, m, block.gate.weight.shape[1], generator=g, dtype=torch.float32).to(torch.bfloat16) * 1.7
                    start = time.perf_counter()
                    block(x)
                    if r > 0:
                        times.append((time.perf_counter() - start) * 1e3)
            times.sort()
            median = times[len(times) // 2]
            print(f"| {name} | {m} | {median:.3f} | {1e3 * m / median:.0f} |")
        del block


if __name__ == "__main__":
    main(sys.argv[1:])
