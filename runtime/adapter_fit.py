"""Whether a LoRA adapter's saved weights fit the base model they are put into, checked before PEFT
builds anything: each matrix must belong to a linear layer the base has, with that layer's input and
output sizes, at a rank that layer can hold. An adapter that lists and imports cleanly but was made for
another model, or whose config was edited (`r: 1000000000` once tried to allocate 256 GB), is refused
with a message instead of a traceback or an allocation that takes the machine down."""

from __future__ import annotations

import re
from pathlib import Path

from unitune.adapters.errors import CorruptAdapterError

_LORA_MATRIX = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")


def check_lora_fits(folder: Path, config, weights: dict, base_model) -> None:
    """Raise `CorruptAdapterError` naming the first matrix of `weights` (PEFT's saved names) that does not
    fit `base_model` (a torch model), or the rank `config` gives that no targeted layer can hold."""
    modules = dict(base_model.named_modules())
    rank = getattr(config, "r", None)
    for name, tensor in weights.items():
        match = _LORA_MATRIX.match(name)
        if match is None:
            continue
        module = modules.get(match["module"])
        if module is None:
            raise CorruptAdapterError(f"{folder}: {name} adapts {match['module']}, which this base model does not have; "
                                      "the adapter was trained on another model")
        inputs, outputs = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if inputs is None or outputs is None:
            raise CorruptAdapterError(f"{folder}: {name} adapts {match['module']}, which is not a linear layer here")
        shape = tuple(tensor.shape)
        expected_rank = shape[0] if match["which"] == "A" else shape[-1]
        expected = (expected_rank, inputs) if match["which"] == "A" else (outputs, expected_rank)
        if len(shape) != 2 or shape != expected:
            raise CorruptAdapterError(f"{folder}: {name} has shape {list(shape)}, but {match['module']} takes "
                                      f"{inputs} inputs and gives {outputs} outputs; re-save the adapter")
        if isinstance(rank, int) and expected_rank != rank and not getattr(config, "rank_pattern", None):
            raise CorruptAdapterError(f"{folder}: {name} has rank {expected_rank}, its config says r = {rank}; "
                                      "re-save the adapter")
        if expected_rank > min(inputs, outputs):
            raise CorruptAdapterError(f"{folder}: rank {expected_rank} is more than {match['module']} can hold "
                                      f"({min(inputs, outputs)}); re-train the adapter with a smaller --rank")
