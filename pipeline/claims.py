"""The paper's claims, checked: each with our measured figure, its 95% interval and a verdict.

A claim (``claims:`` in the published-numbers file) is about the treatment
(AAO) minus the control (DPO) on one benchmark of one experiment, over its
settings; the evidence is each setting's paired interval from
``<experiment>_comparisons.csv`` (``pipeline.tables``). Verdicts, by kind:

* ``gain_everywhere`` (``direction: higher``, or ``lower`` for a quantity
  that should fall): **supported** when every setting's interval lies on the
  claimed side of 0, **contradicted** when some setting's lies entirely on
  the other side, else **inconclusive**. Figure: the weakest setting.
* ``gain_up_to`` (``value``: the largest gain the paper reports): in the
  setting with our largest gain, **contradicted** when its interval excludes
  the value, **supported** when it holds the value and excludes 0,
  **inconclusive** when it holds both.
* ``within`` (``margin``; ``bound: upper`` for "not more than"): **supported**
  when every interval lies inside the margin, **contradicted** when one lies
  entirely outside, else **inconclusive**. Figure: the setting farthest out.

A claim whose comparison was not made (benchmark not run, diagnostic off) is
**not measured**, with the reason.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.aggregate import write_table
from pipeline.published import Claim, Published, load_published
from pipeline.tables import Table, method_label, number
from suite.stats import Interval

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not measured"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    setting: str | None = None
    interval: Interval | None = None
    reason: str = ""


def gain_everywhere(evidence: Mapping[str, Interval], direction: str = "higher") -> Verdict:
    sign = 1 if direction == "higher" else -1
    claimed = {s: (i.low > 0 if sign > 0 else i.high < 0) for s, i in evidence.items()}
    against = {s: (i.high < 0 if sign > 0 else i.low > 0) for s, i in evidence.items()}
    weakest = min(evidence, key=lambda s: sign * evidence[s].estimate)
    if any(against.values()):
        worst = next(s for s, bad in against.items() if bad)
        return Verdict(CONTRADICTED, worst, evidence[worst])
    return Verdict(SUPPORTED if all(claimed.values()) else INCONCLUSIVE, weakest, evidence[weakest])


def gain_up_to(evidence: Mapping[str, Interval], value: float) -> Verdict:
    best = max(evidence, key=lambda s: evidence[s].estimate)
    interval = evidence[best]
    if interval.excludes(value):
        return Verdict(CONTRADICTED, best, interval)
    return Verdict(INCONCLUSIVE if not interval.excludes(0.0) else SUPPORTED, best, interval)


def within(evidence: Mapping[str, Interval], margin: float, bound: str = "both") -> Verdict:
    def inside(i: Interval) -> bool:
        return i.high < margin and (bound == "upper" or i.low > -margin)

    def outside(i: Interval) -> bool:
        return i.low > margin or (bound == "both" and i.high < -margin)

    def distance(s: str) -> float:
        i = evidence[s]
        return i.high if bound == "upper" else max(abs(i.low), abs(i.high))

    farthest = max(evidence, key=distance)
    out = [s for s, i in evidence.items() if outside(i)]
    if out:
        return Verdict(CONTRADICTED, out[0], evidence[out[0]])
    return Verdict(
        SUPPORTED if all(inside(i) for i in evidence.values()) else INCONCLUSIVE, farthest, evidence[farthest]
    )


def evidence_for(claim: Claim, compared: Mapping[str, pd.DataFrame], treatment: str) -> dict[str, Interval]:
    frame = compared.get(claim.experiment)
    if frame is None or frame.empty:
        return {}
    rows = frame[(frame["method"] == treatment) & (frame["benchmark"] == claim.benchmark)]
    return {r["setting"]: Interval(r["estimate"], r["low"], r["high"], int(r["n_items"])) for _, r in rows.iterrows()}


def check(claim: Claim, evidence: Mapping[str, Interval]) -> Verdict:
    if not evidence:
        return Verdict(NOT_MEASURED, reason=f"no {claim.benchmark} comparison in experiment {claim.experiment}")
    if claim.kind == "gain_everywhere":
        return gain_everywhere(evidence, claim.direction)
    if claim.kind == "gain_up_to":
        assert claim.value is not None
        return gain_up_to(evidence, claim.value)
    assert claim.margin is not None
    return within(evidence, claim.margin, claim.bound)


def claims_table(
    published: Published, compared: Mapping[str, pd.DataFrame], scale: str, control: str, treatment: str
) -> tuple[Table, pd.DataFrame]:
    rows, tidy = [], []
    contrast = f"{method_label(treatment)} − {method_label(control)}"
    for claim in published.claims:
        evidence = evidence_for(claim, compared, treatment)
        result = check(claim, evidence)
        i = result.interval
        where = published.label(result.setting) if result.setting else "—"
        rows.append(
            [
                claim.text,
                number(i.estimate, 2, sign=True) if i else "—",
                f"[{number(i.low, 2, sign=True)}, {number(i.high, 2, sign=True)}]" if i else "—",
                result.verdict,
                f"{where}; {len(evidence)} setting{'s' * (len(evidence) != 1)}" if i else result.reason,
            ]
        )
        tidy.append(
            {
                "id": claim.id,
                "claim": claim.text,
                "source": claim.source,
                "kind": claim.kind,
                "experiment": claim.experiment,
                "benchmark": claim.benchmark,
                "setting": result.setting,
                "estimate": i.estimate if i else None,
                "low": i.low if i else None,
                "high": i.high if i else None,
                "n_settings": len(evidence),
                "verdict": result.verdict,
                "scale": scale,
            }
        )
    notes = [
        f"Figure: {contrast} in the setting the verdict rests on (the weakest, the largest or the farthest out, "
        "by kind), with its paired 95% bootstrap interval; rules in pipeline/claims.py.",
        f"Sources: {'; '.join(sorted({published.cite(c.source) for c in published.claims}))}.",
    ]
    if scale == "cpu":
        notes.insert(0, "CPU scale: tiny models and the offline stand-in judge; verdicts here test the machinery only.")
    columns = ["Claim", contrast, "95% interval", "Verdict", "Basis"]
    return Table("The paper's claims, checked", columns, rows, notes, label="claims"), pd.DataFrame(tidy)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.claims", description=__doc__)
    parser.add_argument("--comparisons", nargs="+", required=True, help="EXPERIMENT=path/to/<exp>_comparisons.csv")
    parser.add_argument("--published", type=Path, required=True)
    parser.add_argument("--scale", choices=["cpu", "paper"], required=True)
    parser.add_argument("--control", default="dpo")
    parser.add_argument("--treatment", default="aao")
    parser.add_argument("--prefix", type=Path, required=True, help="writes <prefix>.md, .tex, .html, .csv")
    args = parser.parse_args(argv)
    compared = {}
    for entry in args.comparisons:
        experiment, _, path = entry.partition("=")
        compared[experiment] = pd.read_csv(path)
    table, tidy = claims_table(load_published(args.published), compared, args.scale, args.control, args.treatment)
    write_table(table, args.prefix, tidy)


if __name__ == "__main__":
    main()
