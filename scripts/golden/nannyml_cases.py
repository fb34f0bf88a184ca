"""Golden values for CBPE and PCA reconstruction error, computed with NannyML.

Writes core/tests/fixtures/golden/nannyml/cases.json: the seeded reference rows, and per case the
analysis rows and NannyML's per-chunk results with its default chunker (10 chunks in row order).
The Rust tests fit the profile from the same reference rows and compare chunk by chunk.

Run from the repository root with requirements-nannyml.txt installed:
    python scripts/golden/nannyml_cases.py
"""

import json
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
# flaml (through xgboost) is only needed by NannyML's domain classifier, which is not used here.
_flaml = types.ModuleType("flaml")
_flaml.AutoML = None
sys.modules.setdefault("flaml", _flaml)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import nannyml as nml  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "core/tests/fixtures/golden/nannyml/cases.json"
N = 5000
NUMERIC = ["x1", "x2", "x3", "x4"]
CATEGORICAL = ["channel"]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def draw(rng, n, *, shift=0.0, correlated=True, unseen=False):
    x1 = rng.normal(shift, 1.0, n)
    x2 = 0.9 * x1 + np.sqrt(1 - 0.81) * rng.normal(0.0, 1.0, n) if correlated else rng.normal(0.0, 1.0, n)
    x3 = rng.exponential(1.0, n)
    x4 = rng.normal(0.0, 2.0, n)
    cats = np.array(["web", "branch", "phone"] + (["partner"] if unseen else []))
    probs = [0.5, 0.3, 0.2] if not unseen else [0.45, 0.3, 0.15, 0.1]
    channel = rng.choice(cats, n, p=probs).astype(object)
    # Missing values: 5 % of x3 and of channel.
    x3[rng.random(n) < 0.05] = np.nan
    # NaN, as pandas reads a missing CSV cell. (A Python None in an object column is not
    # "missing" to SimpleImputer(missing_values=np.nan), and CountEncoder would then give it a
    # frequency of its own.)
    channel[rng.random(n) < 0.05] = np.nan
    df = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "x4": x4, "channel": channel})
    for c in NUMERIC:
        df[c] = df[c].round(6)
    # The outcome depends on the features the same way in reference and analysis: no
    # concept drift. The model's score is over-confident (needs calibration).
    logit = 0.8 * df["x1"] - 0.6 * df["x4"] / 2 + 0.4 * df["x3"].fillna(1.0) - 0.3
    p = sigmoid(logit)
    df["label"] = (rng.random(n) < p).astype(int)
    df["score"] = sigmoid(1.8 * logit + 0.2).round(6)
    df["pred"] = (df["score"] >= 0.5).astype(int)
    return df


def break_correlation(rng, df):
    """Permute x2 against x1: the marginals hold exactly, the correlation is gone."""
    out = df.copy()
    out["x2"] = rng.permutation(out["x2"].to_numpy())
    return out


def with_segment(seed, df):
    """A protected attribute beside the features: segment "a" with probability sigmoid(x1),
    else "b", so the groups' score distributions (and estimated TPR / FPR) differ. Drawn from
    its own generator, so the rows of the cases before it existed are unchanged."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    out["segment"] = np.where(rng.random(len(df)) < sigmoid(df["x1"].to_numpy()), "a", "b")
    return out


def column(df, c):
    return [None if pd.isna(v) else (v if isinstance(v, str) else float(v)) for v in df[c]]


def run(name, reference, analysis, labels_withheld):
    analysis_in = analysis.copy()
    if labels_withheld:
        analysis_in = analysis_in.drop(columns=["label"])
    metrics = ["roc_auc", "f1", "precision", "recall", "accuracy", "specificity"]
    cbpe = nml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="score",
        y_pred="pred",
        y_true="label",
        metrics=metrics,
    )
    cbpe.fit(reference)
    est = cbpe.estimate(analysis_in).filter(period="analysis").to_df()
    cbpe_chunks = []
    for _, row in est.iterrows():
        chunk = {"start": int(row[("chunk", "start_index")]), "end": int(row[("chunk", "end_index")]) + 1}
        for m in metrics:
            chunk[m] = {
                "value": float(row[(m, "value")]),
                "sampling_error": float(row[(m, "sampling_error")]),
            }
        cbpe_chunks.append(chunk)
    # Per group: NannyML fitted on the whole reference, run on the group's rows alone as one
    # chunk (what the summary's per-group sums give).
    group_chunks = {}
    for group in sorted(analysis_in["segment"].unique()):
        rows = analysis_in[analysis_in["segment"] == group].reset_index(drop=True)
        per_group = nml.CBPE(
            problem_type="classification_binary",
            y_pred_proba="score",
            y_pred="pred",
            y_true="label",
            metrics=metrics,
            chunk_number=1,
        )
        per_group.fit(reference)
        row = per_group.estimate(rows).filter(period="analysis").to_df().iloc[0]
        group_chunks[group] = {"rows": int(len(rows))}
        for m in metrics:
            group_chunks[group][m] = {
                "value": float(row[(m, "value")]),
                "sampling_error": float(row[(m, "sampling_error")]),
            }
    drc = nml.DataReconstructionDriftCalculator(column_names=NUMERIC + CATEGORICAL)
    drc.fit(reference)
    res = drc.calculate(analysis_in).to_df()
    rec_chunks = []
    for _, row in res.iterrows():
        rec_chunks.append(
            {
                "period": row[("chunk", "period")],
                "start": int(row[("chunk", "start_index")]),
                "end": int(row[("chunk", "end_index")]) + 1,
                "value": float(row[("reconstruction_error", "value")]),
                "sampling_error": float(row[("reconstruction_error", "sampling_error")]),
                "alert": bool(row[("reconstruction_error", "alert")]),
            }
        )
    pca = drc._pca
    case = {
        "case": name,
        "labels_withheld": labels_withheld,
        "analysis": {
            c: column(analysis, c)
            for c in NUMERIC + CATEGORICAL + ["score", "pred", "segment"] + ([] if labels_withheld else ["label"])
        },
        "expected": {
            "needs_calibration": bool(cbpe.needs_calibration),
            "cbpe": cbpe_chunks,
            "cbpe_groups": group_chunks,
            "reconstruction": {
                "n_components": int(pca.n_components_),
                "lower_threshold": float(drc.lower_threshold_value),
                "upper_threshold": float(drc.upper_threshold_value),
                "chunks": rec_chunks,
            },
        },
    }
    print(f"{name}: needs_calibration={cbpe.needs_calibration}, "
          f"k={pca.n_components_}, thresholds=({drc.lower_threshold_value:.4f}, {drc.upper_threshold_value:.4f})")
    return case


def main():
    rng = np.random.default_rng(17)
    reference = with_segment(1700, draw(rng, N))
    # Covariate shift in x1 and x4's scale, same outcome model, labels present.
    shifted = with_segment(1701, draw(rng, N, shift=0.7, unseen=True))
    cases = [
        run("cbpe_covariate_shift", reference, shifted, labels_withheld=False),
        # Same shift, labels missing in the analysis window.
        run("cbpe_labels_withheld", reference, with_segment(1702, draw(rng, N, shift=0.7)),
            labels_withheld=True),
        # Correlation broken, every marginal intact.
        run("pca_correlation_break", reference,
            with_segment(1703, break_correlation(rng, draw(rng, N))), labels_withheld=True),
    ]
    out = {
        "nannyml": nml.__version__,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "reference": {c: column(reference, c) for c in NUMERIC + CATEGORICAL + ["score", "pred", "label", "segment"]},
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.name}")


if __name__ == "__main__":
    main()
