"""The one registry of training methods.

Each entry maps a method name to the module that defines it; the module holds a
module-level ``METHOD`` (a :class:`Method`). Modules are imported lazily so the
workflow can list names without importing torch. Adding a method means one
module, one line here and one config entry (see the README).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

METHODS: dict[str, str] = {
    "aao": "aao.method",
    "dpo": "baselines.dpo",
    "dpo_random": "baselines.dpo_random",
    "ipo": "baselines.ipo",
    "kto": "baselines.kto",
    "simpo": "baselines.simpo",
    "tdpo": "baselines.tdpo",
    "tis_dpo": "baselines.tis_dpo",
    "rto": "baselines.rto",
}

Reference = Literal["none", "precomputed", "live"]


@dataclass(frozen=True)
class Method:
    """A preference-optimisation method as the engine sees it: a loss over a batch of per-token log-probs.

    ``reference`` says what the loss needs of the reference model: nothing,
    per-token log-probs computed once by their own rule, or a live model (for
    losses over the reference's full distribution). ``defaults`` are the
    method's hyperparameters; the config overrides them per variant.
    ``build_modules``, if set, returns extra trainable modules (name ->
    (module, learning rate)) that the engine attaches to the policy, so the
    optimizer trains them and checkpoints save and restore them (AAO's AW).
    ``needs_logits`` asks the engine for the policy's logits (and, with a live
    reference, the reference's, from its one forward): losses over the full
    token distribution (TDPO). ``needs_mismatched_pairs`` asks for the summed
    log-probs of policy and live reference on mismatched (prompt, completion)
    pairs of the batch (KTO's KL reference point). ``artifact`` names a
    per-record artifact built by its own rule before training (TIS-DPO's
    token weights): ``suite.train --artifact`` loads it, checks its
    tokenisation and hands it to the loss as ``artifact=``.
    """

    name: str
    loss: Callable[..., Any]
    reference: Reference
    defaults: Mapping[str, Any] = field(default_factory=dict)
    needs_hidden_states: bool = False
    description: str = ""
    build_modules: Callable[[Any, Mapping[str, Any]], Mapping[str, tuple[Any, float]]] | None = None
    needs_logits: bool = False
    needs_mismatched_pairs: bool = False
    artifact: str | None = None


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """Import and return a registered method; an unknown name lists the valid ones."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")
    method = importlib.import_module(METHODS[name]).METHOD
    if method.name != name:
        raise ValueError(f"registry entry {name!r} points to a module defining {method.name!r}")
    return method
