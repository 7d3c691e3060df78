#!/usr/bin/env python3
"""Builds the Hugging Face checkpoint fixtures of tests/fixtures/huggingface.

Each fixture is a tiny random model of one architecture, made and saved by
transformers itself (save_pretrained: config.json + model.safetensors, or
shards + model.safetensors.index.json), plus expected.safetensors holding
inputs and what the architecture's own modules compute on them:

  x                 [5, d_model] f32 inputs (exact in the stored dtype)
  LAYER.mlp         the MLP module's output, run in float32
  LAYER.sublayer    the FFN sub-layer around it (norms, residual), float32
  LAYER.mlp.native / LAYER.sublayer.native
                    the same run in the stored dtype (bf16 fixtures only)

LAYER is 0, 1 (T5: encoder.0, ..., decoder.1), as ffn-server names layers.
The weights are redrawn so that activations are O(1) (transformers'
initialisation would make every output nearly 0 and every activation nearly
linear): matrices U(-a, a) with a = sqrt(3 / fan_in), biases and norm
weights around their neutral values.

Run by hand (needs torch and transformers; tests only read the results):
  python3 -m venv build/venv-hf
  build/venv-hf/bin/pip install torch transformers safetensors
  build/venv-hf/bin/python tools/make_hf_fixtures.py tests/fixtures/huggingface [NAME ...]
"""
import json
import math
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

D_MODEL, D_FF, LAYERS, HEADS, VOCAB, TOKENS = 32, 72, 2, 4, 16, 5


def common(**extra):
    return dict(hidden_size=D_MODEL, intermediate_size=D_FF, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, vocab_size=VOCAB, max_position_embeddings=32,
                pad_token_id=0, bos_token_id=1, eos_token_id=2, **extra)


def decoder_layers(model):
    return model.model.layers


# name -> (config, model class, stored dtype, shard?, layers(model) ->
#          [(id, mlp(x), sublayer(x))])
def gated_layers(attr_norm, attr_post=None, batched=False):
    """batched: the MLP takes [batch, tokens, d_model] (sparse MoE blocks)."""
    def layers(model):
        out = []
        for i, layer in enumerate(decoder_layers(model)):
            norm = getattr(layer, attr_norm)
            post = getattr(layer, attr_post) if attr_post else None

            def mlp(x, layer=layer):
                return layer.mlp(x[None])[0] if batched else layer.mlp(x)

            def sub(x, mlp=mlp, norm=norm, post=post):
                h = mlp(norm(x))
                return x + (post(h) if post is not None else h)

            out.append((str(i), mlp, sub))
        return out
    return layers


def gpt2_layers(model):
    return [(str(i), b.mlp, lambda x, b=b: x + b.mlp(b.ln_2(x)))
            for i, b in enumerate(model.transformer.h)]


def neox_layers(model):
    return [(str(i), l.mlp, lambda x, l=l: x + l.mlp(l.post_attention_layernorm(x)))
            for i, l in enumerate(model.gpt_neox.layers)]


def opt_layers(model):
    out = []
    for i, l in enumerate(model.model.decoder.layers):
        def mlp(x, l=l):
            return l.fc2(l.activation_fn(l.fc1(x)))

        def sub(x, l=l, mlp=mlp):
            if l.do_layer_norm_before:
                return x + mlp(l.final_layer_norm(x))
            return l.final_layer_norm(x + mlp(x))
        out.append((str(i), mlp, sub))
    return out


def bert_layers(encoder):
    def layers(model):
        return [(str(i), lambda x, l=l: l.output.dense(l.intermediate(x)),
                 lambda x, l=l: l.output(l.intermediate(x), x))
                for i, l in enumerate(encoder(model).layer)]
    return layers


def t5_layers(model):
    out = []
    for stack, index in ((model.encoder, 1), (model.decoder, 2)):
        name = "encoder" if stack is model.encoder else "decoder"
        for i, block in enumerate(stack.block):
            ff = block.layer[index]
            out.append((f"{name}.{i}", ff.DenseReluDense, ff))
    return out


def fixtures():
    T = transformers
    yield "llama-f32", T.LlamaConfig(**common(num_key_value_heads=2)), T.LlamaForCausalLM, torch.float32, False, gated_layers("post_attention_layernorm")
    yield "llama-bf16-sharded", T.LlamaConfig(**common(num_key_value_heads=2)), T.LlamaForCausalLM, torch.bfloat16, True, gated_layers("post_attention_layernorm")
    yield "mistral-f16", T.MistralConfig(**common(num_key_value_heads=2)), T.MistralForCausalLM, torch.float16, False, gated_layers("post_attention_layernorm")
    yield "qwen2-bf16", T.Qwen2Config(**common(num_key_value_heads=2)), T.Qwen2ForCausalLM, torch.bfloat16, False, gated_layers("post_attention_layernorm")
    yield "qwen3-f32", T.Qwen3Config(**common(num_key_value_heads=2, head_dim=8)), T.Qwen3ForCausalLM, torch.float32, False, gated_layers("post_attention_layernorm")
    yield "gemma-f32", T.GemmaConfig(**common(num_key_value_heads=1, head_dim=8)), T.GemmaForCausalLM, torch.float32, False, gated_layers("post_attention_layernorm")
    yield "gemma2-bf16", T.Gemma2Config(**common(num_key_value_heads=2, head_dim=8)), T.Gemma2ForCausalLM, torch.bfloat16, False, gated_layers("pre_feedforward_layernorm", "post_feedforward_layernorm")
    yield "phi3-f32", T.Phi3Config(**common(num_key_value_heads=4)), T.Phi3ForCausalLM, torch.float32, False, gated_layers("post_attention_layernorm")
    yield "gpt2-f32", T.GPT2Config(n_embd=D_MODEL, n_inner=D_FF, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB, n_positions=32), T.GPT2LMHeadModel, torch.float32, False, gpt2_layers
    yield "gpt2-f16-sharded", T.GPT2Config(n_embd=D_MODEL, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB, n_positions=32), T.GPT2LMHeadModel, torch.float16, True, gpt2_layers
    yield "gpt-neox-f32", T.GPTNeoXConfig(**common()), T.GPTNeoXForCausalLM, torch.float32, False, neox_layers
    yield "opt-f32", T.OPTConfig(hidden_size=D_MODEL, ffn_dim=D_FF, num_hidden_layers=LAYERS, num_attention_heads=HEADS, vocab_size=VOCAB, max_position_embeddings=32, word_embed_proj_dim=D_MODEL), T.OPTForCausalLM, torch.float32, False, opt_layers
    yield "opt-postnorm-bf16", T.OPTConfig(hidden_size=D_MODEL, ffn_dim=D_FF, num_hidden_layers=LAYERS, num_attention_heads=HEADS, vocab_size=VOCAB, max_position_embeddings=32, word_embed_proj_dim=D_MODEL, do_layer_norm_before=False), T.OPTForCausalLM, torch.bfloat16, False, opt_layers
    yield "bert-f32", T.BertConfig(**common(type_vocab_size=2)), T.BertModel, torch.float32, False, bert_layers(lambda m: m.encoder)
    yield "roberta-quick-gelu-f32", T.RobertaConfig(**common(type_vocab_size=1, hidden_act="quick_gelu")), T.RobertaForMaskedLM, torch.float32, False, bert_layers(lambda m: m.roberta.encoder)
    yield "t5-f32", T.T5Config(d_model=D_MODEL, d_ff=D_FF, d_kv=8, num_layers=LAYERS, num_heads=HEADS, vocab_size=VOCAB, feed_forward_proj="relu"), T.T5ForConditionalGeneration, torch.float32, False, t5_layers
    # Mixtures of experts: the MLP is the sparse MoE block (router, experts,
    # Qwen2-MoE's shared expert).
    yield "mixtral-f32", T.MixtralConfig(**common(num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)), T.MixtralForCausalLM, torch.float32, False, gated_layers("post_attention_layernorm", batched=True)
    yield "qwen2-moe-bf16", T.Qwen2MoeConfig(**common(num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=40, shared_expert_intermediate_size=56, norm_topk_prob=False)), T.Qwen2MoeForCausalLM, torch.bfloat16, False, gated_layers("post_attention_layernorm", batched=True)
    yield "qwen3-moe-f32", T.Qwen3MoeConfig(**common(num_key_value_heads=2, head_dim=8, num_experts=6, num_experts_per_tok=3, moe_intermediate_size=40, norm_topk_prob=True)), T.Qwen3MoeForCausalLM, torch.float32, True, gated_layers("post_attention_layernorm", batched=True)
    yield "t5-v1_1-bf16", T.T5Config(d_model=D_MODEL, d_ff=D_FF, d_kv=8, num_layers=LAYERS, num_decoder_layers=1, num_heads=HEADS, vocab_size=VOCAB, feed_forward_proj="gated-gelu"), T.T5ForConditionalGeneration, torch.bfloat16, False, t5_layers


def redraw(model, gemma):
    """O(1) activations: matrices U(±sqrt(3/fan_in)), biases U(±0.5), norm
    weights 1 + 0.2·U(±1) (Gemma stores w of (1 + w): 0.2·U(±1)), norm
    biases 0.1·U(±1)."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            u = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1
            is_norm = "norm" in name.lower() or "ln_" in name
            if p.dim() >= 2:
                # Stacked experts are [experts, out, in]: fan_in is the last.
                fan_in = p.shape[0] if "c_fc" in name or "c_proj" in name or "c_attn" in name else p.shape[-1]
                value = u * math.sqrt(3.0 / fan_in)
            elif is_norm and name.endswith(("weight", "gamma")):
                value = 0.2 * u if gemma else 1 + 0.2 * u
            elif is_norm:
                value = 0.1 * u
            else:
                value = 0.5 * u
            p.copy_(value.to(p.dtype))


def main(out_root, only):
    out_root = Path(out_root)
    torch.manual_seed(0)
    for name, config, cls, dtype, shard, layers_of in fixtures():
        if only and name not in only:
            continue
        model = cls(config).eval()
        redraw(model, config.model_type.startswith("gemma"))
        model = model.to(dtype)
        folder = out_root / name
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder, max_shard_size="20KB" if shard else "50GB")
        # Inputs exact in the stored dtype, so both runs see the same x.
        x = (torch.randn(TOKENS, D_MODEL, generator=torch.Generator().manual_seed(7)) * 1.5).to(dtype).float()
        expected = {"x": x}
        runs = [("", model.float())]
        if dtype == torch.bfloat16:
            runs.append((".native", cls(config).eval()))
            redraw(runs[1][1], config.model_type.startswith("gemma"))
            runs[1] = (".native", runs[1][1].to(dtype))
        with torch.no_grad():
            for suffix, m in runs:
                xin = x.to(next(m.parameters()).dtype)
                for layer_id, mlp, sub in layers_of(m):
                    expected[f"{layer_id}.mlp{suffix}"] = mlp(xin).float().contiguous()
                    expected[f"{layer_id}.sublayer{suffix}"] = sub(xin).float().contiguous()
        save_file(expected, str(folder / "expected.safetensors"))
        files = sorted(p.name for p in folder.iterdir())
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{name}: {size // 1024} KiB, {files}")
    (out_root / "VERSIONS.json").write_text(json.dumps(
        {"torch": torch.__version__, "transformers": transformers.__version__}, indent=1) + "\n")


if __name__ == "__main__":
    # Optional fixture names after the folder: only those are made again.
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/huggingface", set(sys.argv[2:]))
