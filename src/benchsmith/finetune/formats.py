"""Training rows of a pair in each format. The supervised formats take positive and
reflection pairs; `dpo` takes preference pairs.

| format | row |
|---|---|
| chatml | `{"text": "<|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n...", "metadata"}` |
| alpaca | `{"instruction": user, "input": "", "output": patch, "system": system, "metadata"}` |
| sharegpt | `{"conversations": [{"from": "system"|"human"|"gpt", "value"}], "metadata"}` |
| openai | `{"messages": [system, user, assistant]}`: no metadata (see below) |
| trl | `{"messages": [system, user, assistant], "metadata"}` (TRL conversational) |
| dpo | `{"prompt": [system, user], "chosen": [assistant], "rejected": [assistant], "metadata"}` |

OpenAI's fine-tuning line (`FineTuneChatRequestInput`) defines `messages`, `tools`,
`parallel_tool_calls` and `functions` only, so openai rows carry no `metadata` key; the
other rows put it under `metadata` (the same keys in every row: Pair.metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchsmith.finetune.pairs import Pair

SUPERVISED = ("chatml", "alpaca", "sharegpt", "openai", "trl")
PREFERENCE = ("dpo",)
FORMATS = SUPERVISED + PREFERENCE


def _messages(p: Pair) -> list[dict[str, str]]:
    return [{"role": "system", "content": p.system}, {"role": "user", "content": p.user},
            {"role": "assistant", "content": p.target}]


def chatml(p: Pair) -> dict[str, Any]:
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in _messages(p))
    return {"text": text, "metadata": p.metadata()}


def alpaca(p: Pair) -> dict[str, Any]:
    return {"instruction": p.user, "input": "", "output": p.target, "system": p.system,
            "metadata": p.metadata()}


def sharegpt(p: Pair) -> dict[str, Any]:
    return {"conversations": [{"from": "system", "value": p.system},
                              {"from": "human", "value": p.user},
                              {"from": "gpt", "value": p.target}],
            "metadata": p.metadata()}


def openai(p: Pair) -> dict[str, Any]:
    return {"messages": _messages(p)}


def trl(p: Pair) -> dict[str, Any]:
    return {"messages": _messages(p), "metadata": p.metadata()}


def dpo(p: Pair) -> dict[str, Any]:
    return {"prompt": [{"role": "system", "content": p.system},
                       {"role": "user", "content": p.user}],
            "chosen": [{"role": "assistant", "content": p.target}],
            "rejected": [{"role": "assistant", "content": p.rejected or ""}],
            "metadata": p.metadata()}


ROW: dict[str, Callable[[Pair], dict[str, Any]]] = {
    "chatml": chatml, "alpaca": alpaca, "sharegpt": sharegpt, "openai": openai, "trl": trl,
    "dpo": dpo,
}


def takes(fmt: str, p: Pair) -> bool:
    """Whether rows of `fmt` are made from pair `p`."""
    return (p.pair_type == "preference") == (fmt in PREFERENCE)
