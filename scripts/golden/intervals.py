"""Golden fixtures for the fairness confidence intervals.

Writes core/tests/fixtures/intervals/statsmodels.json: seeded (count, nobs) cases, zero cells
and groups of size 1 to 5 included, with the intervals statsmodels computes:

  rate        proportion_confint(count, nobs, alpha, method="wilson")
  difference  confint_proportions_2indep(c1, n1, c2, n2, compare="diff", method="newcomb")
  ratio       confint_proportions_2indep(..., compare="ratio", method="log"), and
              method="log-adjusted" where a count is zero (Katz's log interval is degenerate
              there; the Rust code switches to the adjusted form and says so)

and per-attribute cases: group counts, with the parity metrics' intervals computed the way
DESIGN.md defines them (the highest and the lowest group's rates, alpha divided by the number
of groups; against the reference group, alpha divided by the number of other groups), using
the same statsmodels functions.

Run from the repository root, with the pinned versions (scripts/golden/requirements-intervals.txt):

    python -m venv venv && venv/bin/pip install -r scripts/golden/requirements-intervals.txt \
        && venv/bin/python scripts/golden/intervals.py
"""

from __future__ import annotations

import json
import os

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

OUT = "core/tests/fixtures/intervals/statsmodels.json"
ALPHAS = [0.05, 0.01, 0.1, 0.05 / 3, 0.2]


def f(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def wilson(c, n, alpha):
    lo, hi = proportion_confint(c, n, alpha=alpha, method="wilson")
    return [f(lo), f(hi)]


def newcomb(c1, n1, c2, n2, alpha):
    lo, hi = confint_proportions_2indep(c1, n1, c2, n2, compare="diff", method="newcomb", alpha=alpha)
    return [f(lo), f(hi)]


def katz(c1, n1, c2, n2, alpha):
    method = "log-adjusted" if c1 == 0 or c2 == 0 else "log"
    with np.errstate(all="ignore"):
        lo, hi = confint_proportions_2indep(c1, n1, c2, n2, compare="ratio", method=method, alpha=alpha)
    return {"method": method, "interval": [f(lo), f(hi)]}


def pair_cases(rng):
    cases = []
    sizes = [(1, 1), (1, 2), (2, 3), (3, 5), (5, 4), (4, 1), (5, 5), (1, 5)]
    for n1, n2 in sizes:
        for c1 in range(n1 + 1):
            for c2 in range(n2 + 1):
                cases.append((c1, n1, c2, n2))
    for _ in range(60):
        n1, n2 = int(rng.integers(6, 5000)), int(rng.integers(6, 5000))
        c1, c2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        cases.append((c1, n1, c2, n2))
    cases += [(0, 40, 0, 40000), (40, 40, 40000, 40000), (31, 40, 30000, 40000), (12, 40000, 0, 17)]
    out = []
    for i, (c1, n1, c2, n2) in enumerate(cases):
        alpha = ALPHAS[i % len(ALPHAS)]
        out.append(
            {
                "count1": c1,
                "nobs1": n1,
                "count2": c2,
                "nobs2": n2,
                "alpha": alpha,
                "wilson1": wilson(c1, n1, alpha),
                "wilson2": wilson(c2, n2, alpha),
                "newcomb": newcomb(c1, n1, c2, n2, alpha),
                "katz": katz(c1, n1, c2, n2, alpha),
            }
        )
    return out


def attribute_cases(rng):
    """Groups' (selected, n): the parity intervals of the selection rates."""
    out = []
    specs = [
        # (group sizes, confidence, min_group_samples)
        ([4000, 3000, 80], 0.95, 0),
        ([4000, 3000, 80], 0.95, 100),
        ([40, 35], 0.9, 0),
        ([1, 2, 3, 4, 5], 0.95, 0),
        ([5000, 5000, 5000, 5000], 0.99, 0),
        ([300, 250, 3, 7], 0.95, 5),
    ]
    for sizes, confidence, min_group in specs:
        groups = []
        for j, n in enumerate(sizes):
            p = float(rng.uniform(0.2, 0.8))
            groups.append({"name": f"g{j}", "n": n, "selected": int(rng.binomial(n, p))})
        alpha = 1 - confidence
        kept = [g for g in groups if g["n"] >= min_group]
        rates = [g["selected"] / g["n"] for g in kept]
        hi = kept[int(np.argmax(rates))]
        lo = kept[int(np.argmin(rates))]
        m = len(kept)
        a = alpha / m
        ref = kept[0]
        others = kept[1:]
        worst = min(others, key=lambda g: g["selected"] / g["n"])
        a_ref = alpha / len(others)
        out.append(
            {
                "groups": groups,
                "reference_group": ref["name"],
                "confidence": confidence,
                "min_group_samples": min_group,
                "too_small": {g["name"]: g["n"] for g in groups if g["n"] < min_group},
                "demographic_parity_difference": {
                    "value": max(rates) - min(rates),
                    "between": [hi["name"], lo["name"]],
                    "interval": newcomb(hi["selected"], hi["n"], lo["selected"], lo["n"], a),
                    "confidence": 1 - a,
                },
                "demographic_parity_ratio": {
                    "value": min(rates) / max(rates),
                    "between": [hi["name"], lo["name"]],
                    "interval": katz(lo["selected"], lo["n"], hi["selected"], hi["n"], a)["interval"],
                    "confidence": 1 - a,
                },
                "disparate_impact": {
                    "value": (worst["selected"] / worst["n"]) / (ref["selected"] / ref["n"]),
                    "between": [worst["name"], ref["name"]],
                    "interval": katz(worst["selected"], worst["n"], ref["selected"], ref["n"], a_ref)["interval"],
                    "confidence": 1 - a_ref,
                },
                "statistical_parity_difference": {
                    "value": worst["selected"] / worst["n"] - ref["selected"] / ref["n"],
                    "between": [worst["name"], ref["name"]],
                    "interval": newcomb(worst["selected"], worst["n"], ref["selected"], ref["n"], a_ref),
                    "confidence": 1 - a_ref,
                },
                "selection_rate": {
                    g["name"]: wilson(g["selected"], g["n"], alpha) for g in groups
                },
            }
        )
    return out


def main():
    rng = np.random.default_rng(18)
    import statsmodels

    doc = {
        "generator": "scripts/golden/intervals.py",
        "statsmodels": statsmodels.__version__,
        "pairs": pair_cases(rng),
        "attributes": attribute_cases(rng),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"wrote {OUT}: {len(doc['pairs'])} pairs, {len(doc['attributes'])} attributes")


if __name__ == "__main__":
    main()
