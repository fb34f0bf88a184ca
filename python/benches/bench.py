"""Benchmarks of the Python package (the figures in BENCHMARKS.md).

    python python/benches/bench.py monitor            # record_batch and record(dict)
    python python/benches/bench.py assess             # assess, then Evidently + Fairlearn on the same frames

Knobs (environment): BENCH_ROUNDS (7), BENCH_BATCH_ROWS (100000), BENCH_RECORD_CALLS (100000),
BENCH_ASSESS_ROWS (1000000). The schema is the agent benchmark's: 20 features (15 numeric, 5
categorical with 8 categories each), attributes gender and age_band, binary task with scores,
about 90 % of the rows labelled. Install the wheel built in release mode (`pip install ./python`)
and, for the comparison, `evidently` and `fairlearn`.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import aims_monitor as am

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 7))
NUMERIC = [f"x{i}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CATEGORIES = [f"cat-{k}" for k in range(8)]
AGE_BANDS = ["18-29", "30-39", "40-49", "50-64", "65+"]


def config(spool: Path, queue: int = 1_000_000) -> dict:
    return {
        "agent_id": "bench",
        "model": {
            "name": "bench",
            "task": "binary",
            "features": [{"name": n, "kind": "numeric"} for n in NUMERIC]
            + [{"name": c, "kind": "categorical"} for c in CATEGORICAL],
            "attributes": [
                {"name": "gender", "groups": ["F", "M"], "reference_group": "M"},
                {"name": "age_band", "groups": AGE_BANDS},
            ],
        },
        "window": {"length": "60s", "queue_events": queue},
        "ship": {"collector_url": ""},
        "spool": {"dir": str(spool)},
    }


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {}
    for i, name in enumerate(NUMERIC):
        data[name] = np.round(rng.normal(10 * i + shift * (i % 3 == 0), 1 + i % 4, n), 3)
    for name in CATEGORICAL:
        data[name] = pd.Categorical.from_codes(rng.integers(0, 8, n), CATEGORIES).astype(str)
    data["gender"] = np.where(rng.random(n) < 0.5, "F", "M")
    data["age_band"] = np.array(AGE_BANDS)[rng.integers(0, 5, n)]
    score = 1 / (1 + np.exp(-(data["x0"] - data["x0"].mean()) / 2 - rng.normal(0, 1, n)))
    data["score"] = np.round(score, 4)
    data["prediction"] = (score >= 0.5).astype(np.int64)
    label = (rng.random(n) < score).astype(float)
    label[rng.random(n) < 0.1] = np.nan
    data["label"] = label
    data["latency_ms"] = np.round(rng.gamma(4, 3, n), 2)
    data["id"] = [f"req-{seed}-{i}" for i in range(n)]
    return pd.DataFrame(data)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch_rounds(m: "am.Monitor", df, rows: int, fold_here: bool, what: str = "pandas frame") -> None:
    """record_batch + flush per round: the caller's CPU, the whole process's CPU (the caller and
    the monitor's thread) and wall time, every row folded into its window and spooled."""
    walls, cpus, e2e, e2e_cpu = [], [], [], []
    for _ in range(ROUNDS):
        t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        reply = m.record_batch(df, fold_here=fold_here)
        t1, c1 = time.perf_counter(), time.thread_time()
        assert reply["accepted"] == rows and reply["dropped"] == 0, reply
        m.flush(120)
        t2, p2 = time.perf_counter(), time.process_time()
        walls.append(rows / (t1 - t0))
        cpus.append(rows / (c1 - c0))
        e2e.append(rows / (t2 - t0))
        e2e_cpu.append(rows / (p2 - p0))
    mode = "fold_here=True (folded on the calling thread)" if fold_here else "fold_here=False (handed to the monitor's thread)"
    print(f"record_batch, {rows:,}-row {what}, 20 features, {ROUNDS} rounds, {mode}:")
    print(f"  calls: median {statistics.median(walls):,.0f} rows/s wall, "
          f"{statistics.median(cpus):,.0f} rows per CPU-second of the calling thread")
    print(f"  end to end (record_batch + flush): median {statistics.median(e2e):,.0f} rows/s wall "
          f"(rounds {', '.join(f'{w:,.0f}' for w in e2e)}), "
          f"{statistics.median(e2e_cpu):,.0f} rows per CPU-second of the whole process")


def bench_monitor() -> None:
    rows = int(os.environ.get("BENCH_BATCH_ROWS", 100_000))
    calls = int(os.environ.get("BENCH_RECORD_CALLS", 100_000))
    with tempfile.TemporaryDirectory() as tmp:
        profile = am.build_reference(frame(20_000, 1), config(Path(tmp) / "spool"))
        df = frame(rows, 2, shift=0.5)
        with am.Monitor(config(Path(tmp) / "spool"), profile=profile) as m:
            m.record_batch(df.head(1000))
            m.flush(60)
            for fold_here in (False, True):
                batch_rounds(m, df, rows, fold_here)
            # The same frame with its string columns as pandas `category` dtype (Arrow
            # dictionaries: record_batch(fold_here=True) maps each dictionary once per batch).
            categorical = df.copy()
            for c in CATEGORICAL + ["gender", "age_band"]:
                categorical[c] = categorical[c].astype("category")
            for fold_here in (False, True):
                batch_rounds(m, categorical, rows, fold_here, what="pandas frame, category columns")
            # The Arrow import alone (pandas -> Arrow, the Python string columns converted by
            # pyarrow), which every record_batch call from a pandas frame includes.
            import pyarrow as pa

            imports = []
            for _ in range(ROUNDS):
                c0 = time.process_time()
                pa.Table.from_pandas(df)
                imports.append((time.process_time() - c0) / rows * 1e6)
            print(f"  pandas -> Arrow import alone: median {statistics.median(imports):.3f} CPU-µs per row")
            table = pa.Table.from_pandas(df)
            for fold_here in (False, True):
                batch_rounds(m, table, rows, fold_here, what="pyarrow Table (no conversion)")

            events = []
            for r in df.head(min(calls, rows)).to_dict("records"):
                label = r["label"]
                events.append({
                    "id": r["id"],
                    "features": {k: r[k] for k in NUMERIC + CATEGORICAL},
                    "attributes": {"gender": r["gender"], "age_band": r["age_band"]},
                    "prediction": {"label": r["prediction"], "score": r["score"]},
                    "label": None if label != label else int(label),
                    "latency_ms": r["latency_ms"],
                })
            record = m.record
            per_call, cpu_call = [], []
            for _ in range(ROUNDS):
                t0, c0 = time.perf_counter(), time.thread_time()
                for e in events:
                    record(e)
                t1, c1 = time.perf_counter(), time.thread_time()
                m.flush(120)
                per_call.append((t1 - t0) / len(events) * 1e6)
                cpu_call.append((c1 - c0) / len(events) * 1e6)
            print(f"record(dict), {len(events):,} calls per round, 20 features: median "
                  f"{statistics.median(per_call):.2f} µs per call wall (rounds {', '.join(f'{p:.2f}' for p in per_call)}), "
                  f"{statistics.median(cpu_call):.2f} µs of the calling thread's CPU")
            dropped = m.stats()["aims_agent_events_dropped_total"]["overload"]
            print(f"  dropped for overload over the whole run: {dropped}")
        print(f"peak RSS {peak_rss_mib():.0f} MiB")


def bench_assess() -> None:
    n = int(os.environ.get("BENCH_ASSESS_ROWS", 1_000_000))
    reference, current = frame(n, 3), frame(n, 4, shift=0.3)
    base_rss = peak_rss_mib()
    print(f"frames: {n:,} reference rows and {n:,} current rows, 20 features (peak RSS {base_rss:.0f} MiB after making them)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(Path(tmp) / "spool")
        times = []
        for _ in range(max(1, ROUNDS // 2)):
            t0, c0 = time.perf_counter(), time.process_time()
            report = am.assess(reference, current, cfg)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        wall = statistics.median(t for t, _ in times)
        cpu = statistics.median(c for _, c in times)
        print(f"aims_monitor.assess: median {wall:.2f} s wall, {cpu:.2f} CPU-s "
              f"(runs {', '.join(f'{t:.2f}' for t, _ in times)}); peak RSS {peak_rss_mib():.0f} MiB; "
              f"{report['dataset_drift']['drifted_features']} drifted features")

    if len(sys.argv) > 2 and sys.argv[2] == "--only-aims":
        return
    try:
        from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    except ImportError:
        print("fairlearn not installed: comparison skipped")
        return
    try:
        from evidently import Report  # evidently >= 0.7
        from evidently.presets import DataDriftPreset
    except ImportError:
        try:
            from evidently.metric_preset import DataDriftPreset  # older evidently
            from evidently.report import Report
        except ImportError:
            print("evidently not installed: comparison skipped")
            return
    features = NUMERIC + CATEGORICAL
    t0, c0 = time.perf_counter(), time.process_time()
    drift = Report([DataDriftPreset()])
    run = drift.run(reference_data=reference[features], current_data=current[features])
    result = run if run is not None else drift
    if hasattr(result, "dict"):
        result.dict()
    elif hasattr(result, "as_dict"):
        result.as_dict()
    t1, c1 = time.perf_counter(), time.process_time()
    labelled = current[current["label"].notna()]
    fair = {}
    for attribute in ("gender", "age_band"):
        fair[attribute] = MetricFrame(
            metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
            y_true=labelled["label"].astype(int),
            y_pred=labelled["prediction"],
            sensitive_features=labelled[attribute],
        ).difference()
    t2, c2 = time.perf_counter(), time.process_time()
    evidently_s, fairlearn_s = t1 - t0, t2 - t1
    print(f"Evidently DataDriftPreset: {evidently_s:.2f} s wall, {c1 - c0:.2f} CPU-s")
    print(f"Fairlearn MetricFrame (2 attributes x 3 metrics, labelled rows): {fairlearn_s:.2f} s wall, {c2 - c1:.2f} CPU-s")
    print(f"peak RSS of the whole run {peak_rss_mib():.0f} MiB")
    print(f"ratio: (Evidently + Fairlearn) / aims_monitor.assess = {(evidently_s + fairlearn_s) / wall:.1f}x (wall)")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "monitor"
    {"monitor": bench_monitor, "assess": bench_assess}[what]()
