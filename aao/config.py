"""Every [choice] of the method spec (section 3) as one named knob, with the spec's default.

The workflow config passes a method's hyperparameters as keyword arguments of
its loss (over ``Method.defaults``); :class:`AAOConfig` is the single place
where AAO's knobs, their defaults and their valid values live, so that a typo
in the config fails with the list of valid names instead of being ignored.
``docs/aao-choices.md`` explains each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

REPRESENTATIONS = ("hidden", "embedding", "reference")
REDUCTIONS = ("max", "mean")
GATINGS = ("soft", "hard")
THRESHOLDS = ("adaptive", "fixed")
AW_FEATURES = ("logp_entropy", "logp")
REWARD_REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class AAOConfig:
    """AAO's hyperparameters; see ``docs/aao-choices.md`` for why each default."""

    beta: float = 0.01  # DPO temperature (the protocol's DPO default)
    # Eq. 7: token similarity
    representation: str = "hidden"  # hidden | embedding | reference
    reduction: str = "max"  # max | mean: one score per token against the other response
    minmax_eps: float = 1e-4  # eps of the min-max normalisation (above float32 cosine noise)
    # Eqs. 14-17: weights
    w_min: float = 0.5  # weight at s = 1 (most ambiguous)
    w_max: float = 1.5  # weight at s = 0 (most key)
    gating: str = "soft"  # soft (Eq. 17) | hard (Eqs. 14-16 with indicators)
    tau: float = 0.05  # temperature of the soft gates
    renormalise: bool = True  # weights rescaled to mean 1 over each response's tokens
    # AW module: thresholds
    thresholds: str = "adaptive"  # adaptive (AW module) | fixed (ablation)
    fixed_a: float = 0.7  # a of the fixed ablation, and the AW module's initial a
    fixed_b: float = 0.3  # b of the fixed ablation, and the AW module's initial b
    aw_features: str = "logp_entropy"  # logp_entropy | logp
    aw_hidden: int = 32  # hidden width of the AW MLP
    aw_learning_rate: float = 1e-3  # own learning rate of the AW parameters
    # losses
    contrastive: bool = True  # add lambda_con * L_con
    lambda_con: float = 0.1
    reward: bool = True  # add lambda_rew * L_rew
    lambda_rew: float = 0.01
    reward_reduction: str = "sum"  # sum | mean of the chosen log-probs in R_chosen

    def __post_init__(self) -> None:
        _one_of("representation", self.representation, REPRESENTATIONS)
        _one_of("reduction", self.reduction, REDUCTIONS)
        _one_of("gating", self.gating, GATINGS)
        _one_of("thresholds", self.thresholds, THRESHOLDS)
        _one_of("aw_features", self.aw_features, AW_FEATURES)
        _one_of("reward_reduction", self.reward_reduction, REWARD_REDUCTIONS)
        if not 0.0 <= self.w_min <= 1.0 <= self.w_max:
            raise ValueError(f"aao: need 0 <= w_min <= 1 <= w_max, got w_min={self.w_min}, w_max={self.w_max}")
        if not 0.0 <= self.fixed_b < self.fixed_a <= 1.0:
            raise ValueError(f"aao: need 0 <= fixed_b < fixed_a <= 1, got a={self.fixed_a}, b={self.fixed_b}")
        for name in ("beta", "tau", "minmax_eps", "aw_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"aao: {name} must be > 0, got {getattr(self, name)}")
        if self.aw_hidden < 1:
            raise ValueError(f"aao: aw_hidden must be >= 1, got {self.aw_hidden}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AAOConfig:
        """Build from the loss's keyword arguments; an unknown name lists the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"aao: unknown parameter(s) {unknown}; valid: {', '.join(sorted(known))}")
        return cls(**params)


def _one_of(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"aao: {name}={value!r} is not one of {', '.join(valid)}")


DEFAULTS: dict[str, Any] = asdict(AAOConfig())

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
# The JSON Schema of every knob (checked when the workflow starts); rules across knobs: AAOConfig.__post_init__.
PARAMS_SCHEMA: dict[str, dict[str, Any]] = {
    "beta": _POSITIVE,
    "representation": {"enum": list(REPRESENTATIONS)},
    "reduction": {"enum": list(REDUCTIONS)},
    "minmax_eps": _POSITIVE,
    "w_min": _UNIT,
    "w_max": {"type": "number", "minimum": 1},
    "gating": {"enum": list(GATINGS)},
    "tau": _POSITIVE,
    "renormalise": {"type": "boolean"},
    "thresholds": {"enum": list(THRESHOLDS)},
    "fixed_a": _UNIT,
    "fixed_b": _UNIT,
    "aw_features": {"enum": list(AW_FEATURES)},
    "aw_hidden": {"type": "integer", "minimum": 1},
    "aw_learning_rate": _POSITIVE,
    "contrastive": {"type": "boolean"},
    "lambda_con": {"type": "number", "minimum": 0},
    "reward": {"type": "boolean"},
    "lambda_rew": {"type": "number", "minimum": 0},
    "reward_reduction": {"enum": list(REWARD_REDUCTIONS)},
}


def check_params(params: Mapping[str, Any]) -> None:
    """The rules that span several knobs (w_min <= 1 <= w_max, fixed_b < fixed_a ...): AAOConfig's own checks."""
    AAOConfig.from_params(params)


__all__ = ["DEFAULTS", "PARAMS_SCHEMA", "AAOConfig", "check_params"]
