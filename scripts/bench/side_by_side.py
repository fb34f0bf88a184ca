#!/usr/bin/env python3
"""`aims-agent assess` beside Evidently and Fairlearn on the same generated files, in one run.

Runnable locally, not in CI (it needs the pinned comparison environment and minutes of CPU):

    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -r scripts/bench/requirements.txt
    cargo build --release -p aims-agent --bin aims-agent --example bench_data
    target/bench-venv/bin/python scripts/bench/side_by_side.py [--rows N] [--runs K] [--write]

It writes the benchmark's two CSV files (`bench_data`: 20 features, 15 numeric and 5
categorical, attributes gender and band, a binary prediction with score, labels), runs
`aims-agent assess` on them K times (median wall and CPU-seconds of the child, peak RSS), then
loads the same files with pandas and runs Evidently's DataDriftPreset on the 20 features and
Fairlearn's MetricFrame (selection rate, TPR, FPR by gender and by band, labelled rows), and
prints the ratio. With --write it replaces the table between the side-by-side markers in
BENCHMARKS.md with the figures of this run.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- side-by-side:begin -->", "<!-- side-by-side:end -->"


def run_child(cmd):
    """Runs cmd; returns wall seconds, CPU-seconds (user + sys) and peak RSS (MiB) of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far, in KiB on Linux.
    return wall, cpu, after.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=str(ROOT / "target" / "side-by-side"))
    ap.add_argument("--write", action="store_true", help="write the figures into BENCHMARKS.md")
    args = ap.parse_args()
    data = Path(args.dir)
    release = ROOT / "target" / "release"
    agent, gen = release / "aims-agent", release / "examples" / "bench_data"
    for binary in (agent, gen):
        if not binary.exists():
            sys.exit(f"{binary} is missing: cargo build --release -p aims-agent --bin aims-agent --example bench_data")
    subprocess.run([str(gen), str(data), str(args.rows)], check=True)
    ref, cur, cfg = data / "reference.csv", data / "current.csv", data / "agent.toml"
    mib = (ref.stat().st_size + cur.stat().st_size) / 2**20
    print(f"files: {args.rows:,} + {args.rows:,} rows, 20 features, {mib:.0f} MiB of CSV")

    runs = [run_child([str(agent), "assess", "--config", str(cfg), "--reference", str(ref),
                       "--current", str(cur), "--format", "json"]) for _ in range(args.runs)]
    a_wall = statistics.median(r[0] for r in runs)
    a_cpu = statistics.median(r[1] for r in runs)
    a_rss = max(r[2] for r in runs)
    print(f"aims-agent assess: median of {len(runs)}: {a_wall:.2f} s wall, {a_cpu:.2f} CPU-s, "
          f"peak RSS {a_rss:.0f} MiB (runs: {', '.join(f'{r[0]:.2f}' for r in runs)} s)")

    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    t0, c0 = time.perf_counter(), time.process_time()
    reference, current = pd.read_csv(ref), pd.read_csv(cur)
    load_wall, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    features = [f"n{i}" for i in range(15)] + [f"c{i}" for i in range(5)]
    t0, c0 = time.perf_counter(), time.process_time()
    result = Report([DataDriftPreset()]).run(reference_data=reference[features],
                                             current_data=current[features])
    result.dict()
    e_wall, e_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    labelled = current[current["label"].notna()]
    for attribute in ("gender", "band"):
        MetricFrame(
            metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                     "fpr": false_positive_rate},
            y_true=labelled["label"].astype(int),
            y_pred=labelled["prediction"],
            sensitive_features=labelled[attribute],
        ).difference()
    f_wall, f_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio_wall = (e_wall + f_wall) / a_wall
    ratio_cpu = (e_cpu + f_cpu) / a_cpu
    print(f"pandas read_csv of both files: {load_wall:.2f} s wall, {load_cpu:.2f} CPU-s (not counted below)")
    print(f"Evidently DataDriftPreset: {e_wall:.2f} s wall, {e_cpu:.2f} CPU-s")
    print(f"Fairlearn MetricFrame: {f_wall:.2f} s wall, {f_cpu:.2f} CPU-s")
    print(f"peak RSS of the Python side: {rss:.0f} MiB")
    print(f"ratio (Evidently + Fairlearn) / aims-agent assess: {ratio_wall:.1f}x wall, {ratio_cpu:.1f}x CPU")

    if args.write:
        load = os.getloadavg()[0]
        table = "\n".join([
            BEGIN,
            f"Run of `scripts/bench/side_by_side.py --rows {args.rows} --runs {args.runs}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load:.1f} at the end.",
            "",
            "| tool, same files | wall | CPU-s | peak RSS |",
            "|---|---|---|---|",
            f"| `aims-agent assess` (whole catalogue), median of {len(runs)} | {a_wall:.2f} s | {a_cpu:.2f} | {a_rss:.0f} MiB |",
            f"| Evidently `DataDriftPreset`, 20 features (frames already loaded) | {e_wall:.2f} s | {e_cpu:.2f} | |",
            f"| Fairlearn `MetricFrame`, 3 metrics by gender and by band | {f_wall:.2f} s | {f_cpu:.2f} | |",
            f"| the Python side (pandas frames, Evidently, Fairlearn) | | | {rss:.0f} MiB |",
            f"| **ratio** (Evidently + Fairlearn) / assess | **{ratio_wall:.1f}×** | **{ratio_cpu:.1f}×** | |",
            END,
        ])
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + table + "\n"
        path.write_text(text)
        print(f"written to {path}")


if __name__ == "__main__":
    main()
