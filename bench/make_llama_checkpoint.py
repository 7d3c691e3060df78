#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint folder shaped like LLaMA-7B's MLPs, with
random weights, for the load-time and memory figures of docs/BENCHMARKS.md.

  config.json                        model_type llama, 4096 x 11008, 32 layers
  model-000NN-of-000MM.safetensors   bf16 shards, LAYERS_PER_SHARD layers each
  model.safetensors.index.json       the weight map

Only what the FFN sub-layer reads is written (gate_proj, up_proj, down_proj
and post_attention_layernorm per layer: 8.66 GB in bf16); attention and
embeddings are left out, as ffn-server never reads them. Weights are
U(-a, a) with a = sqrt(3 / fan_in), rounded to bf16.

  python3 -m venv build/venv-bench && build/venv-bench/bin/pip install numpy
  build/venv-bench/bin/python bench/make_llama_checkpoint.py build/llama7b-mlp
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

D_MODEL, D_FF, LAYERS, LAYERS_PER_SHARD = 4096, 11008, 32, 4


def bf16(values):
    """float32 -> bf16 bits, round to nearest even."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def write_shard(path, tensors):
    header, offset = {}, 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for _, data in tensors.values():
            out.write(data.tobytes())


def main(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    shards = LAYERS // LAYERS_PER_SHARD
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {}
        for layer in range(s * LAYERS_PER_SHARD, (s + 1) * LAYERS_PER_SHARD):
            p = f"model.layers.{layer}."
            up = np.sqrt(3.0 / D_MODEL)
            down = np.sqrt(3.0 / D_FF)
            tensors[p + "mlp.gate_proj.weight"] = ((D_FF, D_MODEL), bf16(rng.uniform(-up, up, (D_FF, D_MODEL))))
            tensors[p + "mlp.up_proj.weight"] = ((D_FF, D_MODEL), bf16(rng.uniform(-up, up, (D_FF, D_MODEL))))
            tensors[p + "mlp.down_proj.weight"] = ((D_MODEL, D_FF), bf16(rng.uniform(-down, down, (D_MODEL, D_FF))))
            tensors[p + "post_attention_layernorm.weight"] = ((D_MODEL,), bf16(1 + 0.1 * rng.uniform(-1, 1, D_MODEL)))
        write_shard(folder / name, tensors)
        weight_map.update({t: name for t in tensors})
        print(f"{name}: layers {s * LAYERS_PER_SHARD}-{(s + 1) * LAYERS_PER_SHARD - 1}", flush=True)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=1))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D_MODEL,
        "intermediate_size": D_FF, "num_hidden_layers": LAYERS, "num_attention_heads": 32,
        "hidden_act": "silu", "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16"}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/llama7b-mlp")
