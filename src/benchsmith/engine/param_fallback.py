"""Requests sent again without a parameter the endpoint refused (an engine policy).

Some endpoints refuse the reasoning parameter outright: a model without reasoning behind
OpenAI's Responses API ("Unsupported parameter: 'reasoning.effort' is not supported with
this model."), Azure or an older server on Chat ("Unrecognized request argument supplied:
reasoning_effort"), vLLM's strict request models ("... 'reasoning_effort' ... Extra inputs are
not permitted"). Such a 400 would fail every unit of the run. Instead:

- a unit whose request carried the parameter is sent again once without it: the refused
  attempt is recorded (`http_error`, 400) and counts against no retry limit;
- from then on every request of that model leaves the parameter out up front, for the rest
  of the run, resumes included: the set is rebuilt from the ledger's refused attempts, so a
  resumed run (or the next batch file) does not pay one refused request per unit again;
- one warning per model and parameter says so (per run, not per request).

A second refusal naming the parameter for a request that no longer carried it is an
ordinary 400: the unit fails with the server's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# Neutral parameter -> how an endpoint's message may name it.
_NAMES = {"reasoning_effort": r"reasoning(?:[._]effort)?"}
# A message must both name the parameter and say it is refused (a 400 about a schema
# property that happens to be called "reasoning" names no refusal of it).
_REFUSAL = re.compile(
    r"unsupported|unrecognized|unrecognised|not supported|does not support|unknown|"
    r"not permitted|not allowed|extra (?:inputs?|fields?)|invalid (?:value|parameter)|"
    r"unexpected", re.IGNORECASE)
_PATTERNS = {
    param: re.compile(rf"(?<![\w.-]){names}(?![\w-])", re.IGNORECASE)
    for param, names in _NAMES.items()
}
ERROR_PREFIX = "HTTP 400: "
_WIRE = {"reasoning_effort": "the reasoning effort (reasoning.effort / reasoning_effort)"}


# The parameter a refusal names: vLLM's `'loc': ('body', 'reasoning')`, else the one after
# "parameter:", "argument supplied:", "value:" / "value for", else the first quoted name.
_LOC = re.compile(r"""'loc':\s*\(\s*'body',\s*'([^']+)'""")
_SUBJECT = re.compile(r"""(?:parameter|argument(?:\s+supplied)?|value(?:\s+for)?)\s*:?\s*"""
                      r"""['"]?([A-Za-z_][\w.\[\]-]*)""", re.IGNORECASE)
_QUOTED = re.compile(r"""['"]([A-Za-z_][\w.\[\]-]*)['"]""")


def rejected_param(status: int | None, message: str) -> str | None:
    """The neutral parameter (`reasoning_effort`) a 400 answer refuses, or None. The
    parameter the message refuses must be the reasoning one: a refusal of `temperature`
    "with reasoning models" is not one (sent again without reasoning, it would fail again)."""
    if status != 400 or not _REFUSAL.search(message):
        return None
    named = _LOC.search(message) or _SUBJECT.search(message) or _QUOTED.search(message)
    for param, pattern in _PATTERNS.items():
        if named is not None:
            if pattern.fullmatch(named.group(1)):
                return param
        elif pattern.search(message):
            return param
    return None


class ParamFallback:
    """The parameters left out per model for the rest of a run, and the one warning each."""

    def __init__(self, echo: Callable[[str], None] | None = None):
        self._echo = echo or (lambda _m: None)
        self.dropped: dict[str, set[str]] = {}  # model -> neutral parameter names

    def params_for(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        """`params` without what the endpoint refused for `model` (the same dict if nothing)."""
        gone = self.dropped.get(model)
        if not gone or not gone.intersection(params):
            return params
        return {k: v for k, v in params.items() if k not in gone}

    def drop(self, model: str, param: str, message: str) -> bool:
        """Leave `param` out of `model`'s requests from now on; warns the first time. False
        when it was left out already."""
        gone = self.dropped.setdefault(model, set())
        if param in gone:
            return False
        gone.add(param)
        wire = _WIRE.get(param, param)
        self._echo(
            f"warning: the endpoint refused {wire} for model {model} (HTTP 400: "
            f"{message[:160]}); its requests are sent without it for the rest of the run"
        )
        return True

    def load(self, ledger: Any) -> None:
        """Take in the refusals the ledger holds (a resumed run, or answers reconciled since)."""
        for model, error in ledger.db.execute(
            "SELECT DISTINCT model, error FROM attempts WHERE status='http_error' AND "
            "http_status=400 AND error IS NOT NULL"
        ):
            message = str(error).removeprefix(ERROR_PREFIX)
            param = rejected_param(400, message)
            if param is not None:
                self.drop(str(model), param, message)


def refused_before(ledger: Any, unit_id: str, param: str) -> bool:
    """Whether an earlier attempt of the unit was refused for `param` (then its later
    requests went without it: a new refusal is the server's last word)."""
    for (error,) in ledger.db.execute(
        "SELECT error FROM attempts WHERE unit_id=? AND status='http_error' AND http_status=400 "
        "AND error IS NOT NULL", (unit_id,),
    ):
        if rejected_param(400, str(error).removeprefix(ERROR_PREFIX)) == param:
            return True
    return False
