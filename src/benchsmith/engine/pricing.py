"""Token prices and worst-case cost bounds."""

from __future__ import annotations

from benchsmith.config_sections import Price
from benchsmith.records import Usage

# Per-message framing tokens a chat template may add (role markers, separators).
_FRAMING_TOKENS_PER_MESSAGE = 8
_FRAMING_TOKENS_FIXED = 32


def cost_usd(usage: Usage, price: Price | None, multiplier: float = 1.0) -> float:
    if price is None:
        return 0.0
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    uncached = usage.input_tokens - cached
    total = uncached * price.input + cached * cached_rate + usage.output_tokens * price.output
    return total * multiplier / 1_000_000


def prompt_token_bound(body_bytes: int, n_messages: int) -> int:
    """An upper bound on prompt tokens: BPE tokens cover at least one byte each."""
    return body_bytes + n_messages * _FRAMING_TOKENS_PER_MESSAGE + _FRAMING_TOKENS_FIXED


def worst_case_usd(
    prompt_bytes: int, n_messages: int, max_output_tokens: int, price: Price | None,
    multiplier: float = 1.0,
) -> float:
    if price is None:
        return 0.0
    toks = prompt_token_bound(prompt_bytes, n_messages)
    return (toks * price.input + max_output_tokens * price.output) * multiplier / 1_000_000
