"""The contract every training method fulfils (:class:`Method`) and the one registry of methods.

It lives in the foundation, beside the engine that runs methods: the registry
is a table of names and module paths (AAO in ``aao/``, the baselines in
``baselines/``), imported by name only when a method is asked for, so the
foundation imports nothing above it and the workflow can list names without
importing torch. Each module holds a module-level ``METHOD``. Adding a method
means one module, one line here and one config entry (see the README).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

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

# Building blocks of the methods' parameter schemas (JSON Schema, checked with jsonschema).
POSITIVE = {"type": "number", "exclusiveMinimum": 0}
NON_NEGATIVE = {"type": "number", "minimum": 0}
UNIT_INTERVAL = {"type": "number", "minimum": 0, "maximum": 1}
COUNT = {"type": "integer", "minimum": 1}


class MethodParamsError(ValueError):
    """A method's hyperparameters do not fit its schema: ``name`` is the parameter ("" for a rule across several)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}" if name else problem)
        self.name, self.problem = name, problem


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
    ``params_schema`` declares every hyperparameter (a JSON Schema per
    name: type, range, valid values) so that a config slip fails when the
    workflow starts, not hours into a job; ``check_params`` adds the rules
    that span several parameters (e.g. ``low <= high``) and raises
    ``ValueError``. :meth:`resolve_params` applies both.
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
    params_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    check_params: Callable[[Mapping[str, Any]], None] | None = None

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The method's defaults under ``params``, checked against its schema; raises MethodParamsError."""
        merged = {**self.defaults, **params}
        unknown = sorted(set(merged) - set(self.params_schema))
        if unknown:
            raise MethodParamsError(
                "", f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(self.params_schema))}"
            )
        schema = {"type": "object", "properties": dict(self.params_schema), "additionalProperties": False}
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(merged))
        if error is not None:
            raise MethodParamsError("/".join(str(p) for p in error.absolute_path), error.message)
        if self.check_params is not None:
            try:
                self.check_params(merged)
            except ValueError as exc:
                raise MethodParamsError("", str(exc)) from None
        return merged


def ordered(low: str, high: str) -> Callable[[Mapping[str, Any]], None]:
    """A ``check_params`` rule: parameter ``low`` must not exceed parameter ``high``."""

    def check(params: Mapping[str, Any]) -> None:
        if params[low] > params[high]:
            raise ValueError(f"need {low} <= {high}, got {low}={params[low]}, {high}={params[high]}")

    return check


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
