"""Full fine-tuning sharded with FSDP across the processes of a run (training/distributed.py), when
`accelerate launch` is configured for FSDP: each process holds a slice of every weight, gradient and
optimizer moment instead of a whole copy, so a model too large for one GPU's memory trains on several.

PyTorch's own FSDP (`fully_shard`) does the work: every decoder layer (the model's
`_no_split_modules`) is a unit whose weights are gathered for its forward and backward pass and
sliced again after, then the model as a whole. The accelerate config chooses FSDP; its finer FSDP
options (sharding strategy, offloading, wrapping policy) are not read. Checkpoints and the final model
are gathered whole on the main process, in the files one process writes; resuming gives each process
its slice back from the main process's copy.
"""

from __future__ import annotations

from unitune.errors import UnituneError


class ShardingError(UnituneError):
    exit_code = 2


def shard(model):
    """Shard `model` in place across the process group, layer by layer; returns it."""
    from torch.distributed.fsdp import fully_shard

    layer_types = set(getattr(model, "_no_split_modules", None) or ())
    layers = [module for module in model.modules() if type(module).__name__ in layer_types]
    if not layers:
        raise ShardingError(f"FSDP shards a model layer by layer, and {type(model).__name__} names no layers to "
                            "shard (`_no_split_modules`); launch without FSDP to train it with DDP")
    for layer in layers:
        fully_shard(layer)
    return fully_shard(model)


def _whole(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def full_weights(model) -> dict:
    """The whole model's state dict on the main process (empty on the others, which must call it too)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_whole(cpu_offload=True))


def full_state(model, optimizer) -> tuple[dict, dict]:
    """The trainable weights and the optimizer's state, whole, on the main process (empty on the
    others); every process must call it."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    weights = full_weights(model)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    weights = {name: value.contiguous() for name, value in weights.items() if name in trainable}
    return weights, get_optimizer_state_dict(model, optimizer, options=_whole(cpu_offload=True))


def load_full_state(model, optimizer, weights: dict, optimizer_state: dict) -> None:
    """Give every process its slice of `weights` and `optimizer_state`, which only the main process
    holds (the others pass empty dicts). Tied weights are saved once, under their first name: the
    other names are not expected."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, weights, options=_whole(broadcast_from_rank0=True, strict=False))
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=_whole(broadcast_from_rank0=True))
