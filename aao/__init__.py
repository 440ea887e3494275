"""Ambiguity Awareness Optimization (AAO, Li et al., EMNLP 2025): token re-weighted DPO.

One module per concept of the method spec (section 3):

* :mod:`aao.config`      -- every [choice] of the spec as a named knob with its default;
* :mod:`aao.similarity`  -- Eq. 7, token similarity against the other response, min-max normalised;
* :mod:`aao.weights`     -- Eqs. 14-16 (three token classes, piecewise-linear weights) and Eq. 17 (soft gates);
* :mod:`aao.thresholds`  -- the AW module, adaptive thresholds 1 >= a > b >= 0 from policy statistics;
* :mod:`aao.losses`      -- weighted DPO term, fine-grained contrastive suppression, reward enhancement;
* :mod:`aao.method`      -- the registered :class:`suite.methods.Method` (``aao``).
"""

from aao.config import AAOConfig
from aao.similarity import SimilarityOutput, token_similarity
from aao.thresholds import AmbiguityThresholds
from aao.weights import hard_weights, renormalise, soft_weights, token_weights

__all__ = [
    "AAOConfig",
    "AmbiguityThresholds",
    "SimilarityOutput",
    "hard_weights",
    "renormalise",
    "soft_weights",
    "token_similarity",
    "token_weights",
]
