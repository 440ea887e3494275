"""What every generated benchmark's result says about its completeness, and the refusal of a silent partial one.

Every result JSON carries (the contract the results tables read):

* ``n``: items scored; ``n_expected``: items in the prompt set;
* ``partial``: true iff ``n < n_expected``;
* ``missing``: ``{reason: count}`` of the items left out, ``{}`` when complete.

A result over fewer items than its prompt set is an error by default
(:class:`IncompleteResultError`: the evaluate job fails and writes nothing;
the message names the benchmark, how many items are missing and why, and the
first few item ids). With the benchmark's option ``allow_partial: true`` the
result is written, marked partial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Why an item has no score (the keys of ``missing``).
UNPARSED = "judge reply unparsed"
NO_OUTPUT = "no model output"
NO_VERDICT = "no verdict label"
CONFLICTING = "conflicting verdict labels"
UNPARSED_LIKE = frozenset({UNPARSED, NO_VERDICT, CONFLICTING})  # reasons a judge may answer differently next time
SHOWN_IDS = 5


class IncompleteResultError(RuntimeError):
    """A benchmark could not score every item of its prompt set and was not allowed to report a partial result."""


def require_complete(
    benchmark: str, n_expected: int, missing: Mapping[str, Sequence[Any]], allowed: bool, option: str = "allow_partial"
) -> None:
    """Raise :class:`IncompleteResultError` when items are ``missing`` (reason -> ids) and ``allowed`` is false.

    ``option`` is the benchmark option that would allow it; the message names
    the benchmark, the count missing by reason and the first few item ids.
    """
    lost = {reason: list(ids) for reason, ids in missing.items() if ids}
    n_missing = sum(len(ids) for ids in lost.values())
    if n_missing == 0 or allowed:
        return
    why = "; ".join(f"{len(ids)} {reason} (e.g. {_ids(ids)})" for reason, ids in lost.items())
    rerun = (
        " (a rerun asks the judge again for these; answered items come from the cache)"
        if UNPARSED_LIKE & set(lost)
        else ""
    )
    raise IncompleteResultError(
        f"{benchmark}: {n_missing} of {n_expected} items have no score: {why}. No result is written{rerun}. "
        f"Set the benchmark's option {option}: true to report the rest, marked partial"
    )


def completeness(n_expected: int, missing: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The contract's keys for a result over ``n_expected`` items of which ``missing`` (reason -> ids) are unscored."""
    counts = {reason: len(ids) for reason, ids in missing.items() if ids}
    n_missing = sum(counts.values())
    return {"n": n_expected - n_missing, "n_expected": n_expected, "partial": n_missing > 0, "missing": counts}


def _ids(ids: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return shown + (", ..." if len(ids) > SHOWN_IDS else "")
