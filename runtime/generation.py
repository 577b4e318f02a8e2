"""Generating completions: `model.generate` with a stop at the end of the test, cancellation and a
per-token progress callback.

The stop is checked per row with `unitune.stopping.StopScanner` on incrementally decoded text, so each
step decodes only the new token (the cost stays flat as the test grows). Cancellation is a
`threading.Event` checked between tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unitune.errors import GenerationCancelled
from unitune.logs import get_logger, log_event, new_request_id
from unitune.stopping import StopScanner

log = get_logger("generation")


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample: greedy for one candidate, temperature sampling for several."""

    max_new_tokens: int = 256
    candidates: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int | None = None


@dataclass
class Completion:
    """One generated completion, cut where its test ended (or where tokens ran out)."""

    text: str
    tokens: int
    ended: bool  # the stop rule saw the end of the test


@dataclass
class GenerationStats:
    request_id: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    truncated_prompt: bool = False
    completions: list[Completion] = field(default_factory=list)


class IncrementalDecoder:
    """Decodes a growing list of token ids piece by piece without re-decoding the whole sequence.

    Byte-level tokenizers can split one character over several tokens; text is only released once
    it no longer ends in a partial character (U+FFFD)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix = self.tokenizer.decode(self.ids[self.prefix_offset:self.read_offset], skip_special_tokens=True)
        text = self.tokenizer.decode(self.ids[self.prefix_offset:], skip_special_tokens=True)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(prefix):]
        return ""


class _TestEnd:
    """A transformers stopping criterion: per row, stop when the test has ended; all rows when
    cancelled. Also reports progress after every generated token."""

    def __init__(self, tokenizer, prompt_length: int, rows: int,
                 make_scanner: Callable[[], StopScanner] | list[Callable[[], StopScanner]],
                 cancel: threading.Event | None, on_token: Callable[[int], None] | None, eos_ids: set[int]):
        self.prompt_length = prompt_length
        self.decoders = [IncrementalDecoder(tokenizer) for _ in range(rows)]
        makers = make_scanner if isinstance(make_scanner, list) else [make_scanner] * rows
        self.scanners = [make() for make in makers]
        self.texts = ["" for _ in range(rows)]
        self.end_at: list[int | None] = [None] * rows
        self.tokens = [0] * rows
        self.cancel = cancel
        self.on_token = on_token
        self.eos_ids = eos_ids
        self.cancelled = False
        self.steps = 0

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.steps += 1
        done = []
        length = input_ids.shape[1]
        for row in range(input_ids.shape[0]):
            if self.end_at[row] is not None:
                done.append(True)
                continue
            # Prompt-lookup decoding can accept several tokens in one step: read every new one.
            start = self.prompt_length + self.tokens[row]
            for token in input_ids[row, start:length].tolist():
                self.tokens[row] += 1
                if token in self.eos_ids:
                    self.end_at[row] = len(self.texts[row])
                    break
                piece = self.decoders[row].push(token)
                self.texts[row] += piece
                end = self.scanners[row].feed(piece) if piece else None
                if end is not None:
                    self.end_at[row] = end
                    break
            done.append(self.end_at[row] is not None)
        if self.on_token is not None:
            self.on_token(max(self.tokens))
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
            done = [True] * len(done)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def completions(self) -> list[Completion]:
        """Each row's text, cut where the stop rule (or an end-of-text token) ended its test."""
        return [Completion(text[:end] if end is not None else text, tokens, end is not None)
                for text, end, tokens in zip(self.texts, self.end_at, self.tokens)]


def generate_completions(
    model: Any,
    tokenizer: Any,
    prompt: str,
    options: SamplingOptions,
    make_scanner: Callable[[], StopScanner],
    *,
    context_length: int = 2048,
    cancel: threading.Event | None = None,
    on_token: Callable[[int], None] | None = None,
    request_id: str | None = None,
    share_prefill: bool = True,
    prompt_lookup_tokens: int = 0,
    **generate_kwargs,
) -> GenerationStats:
    """Sample `options.candidates` completions of `prompt`, each cut where its test ended.

    A prompt longer than the model's context (less the room for new tokens) keeps its end, which holds
    the test header and the opening of the test; `truncated_prompt` says so. Several candidates share
    one prefill of the prompt (`share_prefill`: the prompt's keys and values are computed once and
    copied to every row, instead of once per row). `prompt_lookup_tokens` > 0 turns on prompt-lookup
    decoding for a single greedy candidate (tests copy names from the prompt, so drafts taken from it
    are often accepted). Raises `GenerationCancelled` when `cancel` is set before the end."""
    import torch
    from transformers import StoppingCriteriaList

    request_id = request_id or new_request_id("gen")
    started = time.perf_counter()
    encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    input_ids = encoded["input_ids"]
    room = max(16, context_length - options.max_new_tokens)
    truncated = input_ids.shape[1] > room
    if truncated:
        input_ids = input_ids[:, -room:]
    device = _device_of(model)
    input_ids = input_ids.to(device)
    eos_ids = _eos_ids(model, tokenizer)
    rows = options.candidates
    criterion = _TestEnd(tokenizer, input_ids.shape[1], rows, make_scanner, cancel, on_token, eos_ids)
    sampling: dict[str, Any] = {"do_sample": False}
    if rows > 1:
        sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
        if options.seed is not None:
            torch.manual_seed(options.seed)
    elif prompt_lookup_tokens > 0 and not _is_prompt_learning(model):
        sampling["prompt_lookup_num_tokens"] = prompt_lookup_tokens
    shared = rows > 1 and share_prefill and input_ids.shape[1] > 1 and not _is_prompt_learning(model)
    log_event(log, "generate.start", request_id=request_id, prompt_tokens=input_ids.shape[1],
              candidates=rows, max_new_tokens=options.max_new_tokens, truncated=truncated or None,
              shared_prefill=shared or None, prompt_lookup=sampling.get("prompt_lookup_num_tokens"))
    with torch.inference_mode():
        if shared:
            cache = _prefill(model, input_ids[:, :-1])
            cache.batch_repeat_interleave(rows)
            sampling["past_key_values"] = cache
            input_ids = input_ids.repeat(rows, 1)
        elif rows > 1:
            sampling["num_return_sequences"] = rows
        model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=options.max_new_tokens,
            stopping_criteria=StoppingCriteriaList([criterion]), pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(eos_ids) or None, **sampling, **generate_kwargs,
        )
    seconds = time.perf_counter() - started
    if criterion.cancelled:
        log_event(log, "generate.cancelled", request_id=request_id, seconds=seconds)
        raise GenerationCancelled("generation cancelled; nothing was changed")
    completions = criterion.completions()
    stats = GenerationStats(request_id, int(input_ids.shape[1]), sum(criterion.tokens), seconds, truncated, completions)
    log_event(log, "generate.done", request_id=request_id, new_tokens=stats.new_tokens, seconds=seconds,
              ended=sum(c.ended for c in completions))
    return stats


def _prefill(model, input_ids):
    """The key/value cache of `input_ids` (one row), computed once."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), past_key_values=cache, use_cache=True)
    return cache


def _is_prompt_learning(model) -> bool:
    """A PEFT prompt-tuning model prepends virtual tokens inside `generate`: no shared cache, no lookup."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _device_of(model) -> Any:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return "cpu"


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    options: SamplingOptions,
    make_scanner: Callable[[], StopScanner] | list[Callable[[], StopScanner]],
    *,
    cancel: threading.Event | None = None,
    on_token: Callable[[int], None] | None = None,
    request_id: str | None = None,
    **generate_kwargs,
) -> list[Completion]:
    """Greedy completions of several prompts in one batch (left-padded), e.g. with
    `adapter_names=[...]` so each row uses its own LoRA adapter. `make_scanner` is one stop rule for
    every row, or one per row (prompts of different languages or indentation)."""
    import torch
    from transformers import StoppingCriteriaList

    request_id = request_id or new_request_id("batch")
    started = time.perf_counter()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models continue from the last position
    try:
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    device = _device_of(model)
    encoded = {key: value.to(device) for key, value in encoded.items()}
    eos_ids = _eos_ids(model, tokenizer)
    criterion = _TestEnd(tokenizer, encoded["input_ids"].shape[1], len(prompts), make_scanner, cancel, on_token,
                         eos_ids)
    with torch.inference_mode():
        model.generate(
            **encoded, max_new_tokens=options.max_new_tokens, do_sample=False,
            stopping_criteria=StoppingCriteriaList([criterion]), pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(eos_ids) or None, **generate_kwargs,
        )
    if criterion.cancelled:
        raise GenerationCancelled("generation cancelled; nothing was changed")
    completions = criterion.completions()
    log_event(log, "generate.batch", request_id=request_id, rows=len(prompts), seconds=time.perf_counter() - started)
    return completions
