#!/usr/bin/env python3
"""Rewrites a `bench_data` CSV as NDJSON events in the agent's event shape, for the NDJSON
`assess` benchmark: `python3 scripts/bench/to_ndjson.py IN.csv OUT.ndjson`."""

import csv
import json
import sys

NUMERIC = [f"n{i}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]

with open(sys.argv[1], newline="") as src, open(sys.argv[2], "w") as out:
    for row in csv.DictReader(src):
        features = {k: float(row[k]) for k in NUMERIC}
        features.update({k: row[k] for k in CATEGORICAL})
        event = {
            "id": row["id"],
            "ts": row["ts"],
            "features": features,
            "attributes": {"gender": row["gender"], "band": row["band"]},
            "prediction": {"label": row["prediction"], "score": float(row["score"])},
            "label": row["label"],
            "latency_ms": float(row["latency_ms"]),
        }
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
