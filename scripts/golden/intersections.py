"""Golden values for intersectional fairness: Fairlearn's MetricFrame with several sensitive
features, on seeded rows.

Writes core/tests/fixtures/intersections/fairlearn.json. Pinned environment:
requirements-intervals.txt (fairlearn 0.15.0, statsmodels 0.15.0). From the repository root:

    python -m venv venv && venv/bin/pip install -r scripts/golden/requirements-intervals.txt \
      && venv/bin/python scripts/golden/intersections.py

Rows carry gender (F, M; X is undeclared and maps to `other`) and age_band (18-29, 30-44, 45+;
`unknown` maps to `other`), a prediction and, for 90 % of rows, a label. The current model
selects F less often, and F aged 45+ least (an intersectional bias that neither attribute shows
in full on its own). Expected values, per intersection `gender*age_band` (cells named
`F*18-29`), over the cells that occur:

- `groups.<cell>`: n, n_labelled, selection_rate (all rows), tpr and fpr (labelled rows), as
  `MetricFrame(...).by_group` with `sensitive_features=df[["gender", "age_band"]]`;
- `demographic_parity_difference` / `_ratio`: `fairlearn.metrics.demographic_parity_*` with
  both sensitive features (all rows), and `equalized_odds_*` (labelled rows); `equal_opportunity_*`
  is `MetricFrame(tpr).difference()` / `.ratio()`;
- `spd.<cell>`, `di.<cell>` against the cell of both reference groups (`M*30-44`), and their
  minimum;
- `min_group_samples` (30): the same parity metrics over the cells of at least 30 rows, the
  smaller cells listed with their counts;
- `intervals`: Newcombe (`confint_proportions_2indep(compare="diff", method="newcomb")`) and
  Katz (`compare="ratio", method="log"`) between the highest and lowest selection rate at
  alpha / m (m the cells compared, alpha 0.05), with and without the minimum.
Undefined values are null.
"""

import json
import math
import os

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from statsmodels.stats.proportion import confint_proportions_2indep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "core", "tests", "fixtures", "intersections", "fairlearn.json")

GENDERS = ["F", "M"]
AGES = ["18-29", "30-44", "45+"]
MIN_GROUP_SAMPLES = 30
ALPHA = 0.05


def num(x):
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def rows(seed, n):
    rng = np.random.default_rng(seed)
    gender = rng.choice(["F", "M", "X"], size=n, p=[0.47, 0.47, 0.06])
    age = rng.choice(["18-29", "30-44", "45+", "unknown"], size=n, p=[0.3, 0.35, 0.3, 0.05])
    base = 0.5 - 0.12 * (gender == "F") - 0.15 * ((gender == "F") & (age == "45+"))
    y_true = (rng.random(n) < 0.45).astype(int)
    p = np.clip(base + 0.25 * (y_true - 0.45), 0.02, 0.98)
    y_pred = (rng.random(n) < p).astype(int)
    labelled = rng.random(n) < 0.9
    return gender, age, y_true, y_pred, labelled


def mapped(values, declared):
    return np.array([v if v in declared else "other" for v in values])


def cell_name(key):
    return "*".join(key)


def parity(sr, tpr, fpr):
    """Fairlearn's difference() / ratio() over the cells where each rate is defined."""

    def diff(s):
        s = s.dropna()
        return num(s.max() - s.min()) if len(s) else None

    def ratio(s):
        s = s.dropna()
        return num(s.min() / s.max()) if len(s) and s.max() > 0 else None

    def worst(a, b, larger):
        vals = [v for v in (a, b) if v is not None]
        if not vals:
            return None
        return max(vals) if larger else min(vals)

    return {
        "demographic_parity_difference": diff(sr),
        "demographic_parity_ratio": ratio(sr),
        "equal_opportunity_difference": diff(tpr),
        "equal_opportunity_ratio": ratio(tpr),
        "equalized_odds_difference": worst(diff(tpr), diff(fpr), True),
        "equalized_odds_ratio": worst(ratio(tpr), ratio(fpr), False),
    }


def intervals(counts):
    """Newcombe and Katz intervals between the highest and lowest selection rate, alpha / m."""
    rates = {k: c / n for k, (c, n) in counts.items() if n > 0}
    m = len(rates)
    if m < 2:
        return None
    hi = max(rates, key=lambda k: (rates[k], k))
    lo = min(rates, key=lambda k: (rates[k], k))
    a = ALPHA / m
    (c1, n1), (c2, n2) = counts[hi], counts[lo]
    d = confint_proportions_2indep(c1, n1, c2, n2, compare="diff", method="newcomb", alpha=a)
    r = confint_proportions_2indep(c2, n2, c1, n1, compare="ratio", method="log", alpha=a)
    return {
        "groups": m,
        "highest": cell_name(hi),
        "lowest": cell_name(lo),
        "demographic_parity_difference": [num(d[0]), num(d[1])],
        "demographic_parity_ratio": [num(r[0]), num(r[1])],
    }


def main():
    gender, age, y_true, y_pred, labelled = rows(20261201, 4000)
    g = mapped(gender, GENDERS)
    a = mapped(age, AGES)
    df = pd.DataFrame({"gender": g, "age_band": a})
    lab = pd.DataFrame({"gender": g[labelled], "age_band": a[labelled]})
    yt, yp = y_true[labelled], y_pred[labelled]

    mf_sr = MetricFrame(metrics=selection_rate, y_true=y_pred, y_pred=y_pred, sensitive_features=df)
    mf_tpr = MetricFrame(metrics=true_positive_rate, y_true=yt, y_pred=yp, sensitive_features=lab)
    mf_fpr = MetricFrame(metrics=false_positive_rate, y_true=yt, y_pred=yp, sensitive_features=lab)
    sr, tpr, fpr = mf_sr.by_group, mf_tpr.by_group, mf_fpr.by_group
    n = df.value_counts()
    n_lab = lab.value_counts()
    selected = pd.Series(y_pred).groupby([g, a]).sum()

    groups = {}
    for key in sr.index:
        groups[cell_name(key)] = {
            "n": int(n[key]),
            "n_labelled": int(n_lab.get(key, 0)),
            "selected": int(selected[key]),
            "selection_rate": num(sr[key]),
            "tpr": num(tpr[key]) if key in tpr.index else None,
            "fpr": num(fpr[key]) if key in fpr.index else None,
        }

    expected = parity(sr, tpr, fpr)
    # The same through Fairlearn's top-level functions with both sensitive features.
    assert math.isclose(demographic_parity_difference(y_pred, y_pred, sensitive_features=df),
                        expected["demographic_parity_difference"], rel_tol=1e-12)
    assert math.isclose(demographic_parity_ratio(y_pred, y_pred, sensitive_features=df),
                        expected["demographic_parity_ratio"], rel_tol=1e-12)
    assert math.isclose(equalized_odds_difference(yt, yp, sensitive_features=lab),
                        expected["equalized_odds_difference"], rel_tol=1e-12)
    assert math.isclose(equalized_odds_ratio(yt, yp, sensitive_features=lab),
                        expected["equalized_odds_ratio"], rel_tol=1e-12)

    reference = ("M", "30-44")
    spd = {cell_name(k): num(sr[k] - sr[reference]) for k in sr.index if k != reference}
    di = {cell_name(k): num(sr[k] / sr[reference]) for k in sr.index if k != reference}
    expected["reference_group"] = cell_name(reference)
    expected["spd"] = spd
    expected["di"] = di
    expected["statistical_parity_difference"] = min(spd.values())
    expected["disparate_impact"] = min(di.values())
    expected["groups"] = groups

    counts = {k: (int(selected[k]), int(n[k])) for k in sr.index}
    expected["intervals"] = intervals(counts)
    big = [k for k in sr.index if n[k] >= MIN_GROUP_SAMPLES]
    small = {cell_name(k): int(n[k]) for k in sr.index if n[k] < MIN_GROUP_SAMPLES}
    with_min = parity(sr[big], tpr[[k for k in big if k in tpr.index]],
                      fpr[[k for k in big if k in fpr.index]])
    with_min["too_small"] = small
    with_min["intervals"] = intervals({k: counts[k] for k in big})
    expected["with_min_group_samples"] = with_min

    # One row per event: [gender, age_band, prediction, label or null].
    events = [
        [str(gender[i]), str(age[i]), int(y_pred[i]), int(y_true[i]) if labelled[i] else None]
        for i in range(len(g))
    ]
    schema = {
        "name": "credit",
        "task": "binary",
        "attributes": [
            {"name": "gender", "groups": GENDERS, "reference_group": "M"},
            {"name": "age_band", "groups": AGES, "reference_group": "30-44"},
        ],
        "intersections": [["gender", "age_band"]],
    }
    out = {
        "description": "seeded rows; Fairlearn MetricFrame with sensitive_features [gender, age_band]",
        "schema": schema,
        "min_group_samples": MIN_GROUP_SAMPLES,
        "alpha": ALPHA,
        "expected": {"gender*age_band": expected},
        "rows": events,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("{\n")
        keys = [k for k in out if k != "rows"]
        for k in keys:
            f.write(f"  {json.dumps(k)}: {json.dumps(out[k], sort_keys=True)},\n")
        f.write('  "rows": [\n')
        f.write(",\n".join("    " + json.dumps(e, separators=(",", ":")) for e in events))
        f.write("\n  ]\n}\n")
    print(f"wrote {OUT}: {len(groups)} cells, {len(small)} under {MIN_GROUP_SAMPLES}")


if __name__ == "__main__":
    main()
