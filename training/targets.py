"""Which modules each PEFT method adapts, per model architecture (the study's choices).

LoRA adapts the attention query and value projections; (IA)³ the key and value projections and the
MLP down-projection (its feed-forward module). Architectures name these differently; a fused
query-key-value projection (GPT-2, CodeGen, GPT-NeoX) is adapted as a whole.
"""

from __future__ import annotations

from unitune.errors import UnituneError

# model_type -> (LoRA targets, (IA)³ targets, (IA)³ feed-forward modules)
TARGETS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "llama": (["q_proj", "v_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "mistral": (["q_proj", "v_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "qwen2": (["q_proj", "v_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "qwen3": (["q_proj", "v_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "gemma": (["q_proj", "v_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "gemma2": (["q_proj", "v_proj"], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "phi3": (["qkv_proj"], ["qkv_proj", "down_proj"], ["down_proj"]),
    "starcoder2": (["q_proj", "v_proj"], ["k_proj", "v_proj", "c_proj"], ["c_proj"]),
    "gpt2": (["c_attn"], ["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    "gpt_bigcode": (["c_attn"], ["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    "codegen": (["qkv_proj"], ["qkv_proj", "fc_out"], ["fc_out"]),
    "gpt_neox": (["query_key_value"], ["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
}


class UnknownArchitectureError(UnituneError):
    exit_code = 2


def lora_targets(model_type: str, override: str | None = None) -> list[str]:
    if override:
        return [name.strip() for name in override.split(",") if name.strip()]
    return _lookup(model_type)[0]


def ia3_targets(model_type: str, override: str | None = None) -> tuple[list[str], list[str]]:
    """(target modules, feed-forward modules) for (IA)³."""
    if override:
        targets = [name.strip() for name in override.split(",") if name.strip()]
        return targets, [t for t in targets if any(k in t for k in ("down", "fc_out", "c_proj", "4h_to_h"))]
    _, targets, feedforward = _lookup(model_type)
    return targets, feedforward


def _lookup(model_type: str):
    if model_type not in TARGETS:
        raise UnknownArchitectureError(
            f"unitune does not know which modules to adapt in a {model_type!r} model; pass --target-modules "
            "(for example q_proj,v_proj)"
        )
    return TARGETS[model_type]
