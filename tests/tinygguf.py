"""A tiny GGUF file for tests: a Llama-style model saved by `tinymodels`, written with `gguf.GGUFWriter`
the way llama.cpp's converter writes one (F32 tensors, q/k rows permuted, a byte-level "gpt2"
tokenizer), so that transformers' GGUF loader rebuilds the same model and tokenizer from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# transformers name (inside `model.layers.N.`) -> llama.cpp name (inside `blk.N.`)
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def llama_cpp_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's reordering of q/k rows (rotary halves -> interleaved pairs), which transformers'
    `LlamaTensorProcessor._reverse_permute_weights` undoes when it reads the file."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def save_gguf(model_folder: Path, out: Path) -> Path:
    """Write the Llama model and byte-level BPE tokenizer saved in `model_folder` as the GGUF file `out`."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((model_folder / "config.json").read_text("utf-8"))
    if config.get("model_type") != "llama":
        raise ValueError(f"{model_folder} is not a Llama model")
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    rope = config.get("rope_parameters") or {}
    rope_theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))

    weights = {}
    for file in sorted(model_folder.glob("*.safetensors")):
        weights.update(load_file(file))
    if "lm_head.weight" not in weights and not config.get("tie_word_embeddings"):
        raise ValueError("the model has no lm_head.weight")

    tokenizer = json.loads((model_folder / "tokenizer.json").read_text("utf-8"))
    model = tokenizer["model"]
    if model["type"] != "BPE":
        raise ValueError("the tokenizer is not BPE")
    vocab = dict(model["vocab"])
    for added in tokenizer.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise ValueError("the tokenizer's ids are not contiguous")
    special = {added["content"] for added in tokenizer.get("added_tokens", []) if added.get("special")}
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]

    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name(model_folder.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(rope_theta)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL
                            for token in tokens])
    writer.add_token_merges(merges)
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id)):
        if isinstance(config.get(key), int):
            add(config[key])
    writer.add_add_bos_token(False)  # the source tokenizer adds no BOS either

    for name, gguf_name in _GLOBAL_TENSORS.items():
        if name in weights:
            writer.add_tensor(gguf_name, weights[name].astype(np.float32))
    for layer in range(config["num_hidden_layers"]):
        for name, gguf_name in _LAYER_TENSORS.items():
            tensor = weights[f"model.layers.{layer}.{name}"].astype(np.float32)
            if gguf_name == "attn_q.weight":
                tensor = llama_cpp_permute(tensor, heads)
            elif gguf_name == "attn_k.weight":
                tensor = llama_cpp_permute(tensor, kv_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}", np.ascontiguousarray(tensor))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
