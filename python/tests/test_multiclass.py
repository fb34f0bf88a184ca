"""Multiclass probabilities (``prediction.scores``, or one ``score_{class}`` column per class)
through ``assess``, ``record`` and ``record_batch``, as the sidecar and the CLI take them."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
from pathlib import Path
from typing import Dict, List

import pandas as pd
import pytest

import aims_monitor as am
from conftest import REPO

FIXTURE = json.loads((REPO / "core" / "tests" / "fixtures" / "golden" / "multiclass.json").read_text())
SCHEMA = FIXTURE["schema"]
CLASSES = SCHEMA["classes"]


def frame(events: List[dict]) -> pd.DataFrame:
    """The fixture's events as a table: a column per feature and attribute, the predicted class,
    its score, one ``score_{class}`` column per class (empty for an event without them)."""
    rows = []
    for e in events:
        row: Dict = {"id": e["id"], "ts": e["ts"], **e["features"], **e["attributes"],
                     "prediction": e["prediction"]["label"], "score": e["prediction"].get("score")}
        scores = e["prediction"].get("scores")
        for k, c in enumerate(CLASSES):
            row[f"score_{c}"] = None if scores is None else scores[k]
        row["label"] = e["label"]
        row["latency_ms"] = e.get("latency_ms")
        rows.append(row)
    df = pd.DataFrame(rows)
    for c in CLASSES:
        df[f"score_{c}"] = df[f"score_{c}"].astype("float64")
    return df


def config(workdir: Path, agent_id: str) -> dict:
    return {"agent_id": agent_id, "model": SCHEMA, "ship": {"collector_url": ""},
            "window": {"length": "1h"}, "spool": {"dir": str(workdir / f"spool-{agent_id}")}}


def spooled(workdir: Path, agent_id: str) -> Dict[int, dict]:
    out: Dict[int, dict] = {}
    for f in sorted((workdir / f"spool-{agent_id}").glob("[0-9]*-*.json*")):
        data = f.read_bytes()
        if f.suffix == ".gz":
            data = gzip.decompress(data)
        doc = json.loads(data)
        out[doc["window_start_ms"]] = doc["summary"]
    return out


def test_assess_from_tables_reads_the_class_probability_columns(tmp_path: Path) -> None:
    ref, cur = frame(FIXTURE["reference"]), frame(FIXTURE["current"])
    assert cur[[f"score_{c}" for c in CLASSES]].notna().all(axis=1).sum() > 1000
    cfg = config(tmp_path, "assess")
    ref.to_csv(tmp_path / "reference.csv", index=False)
    cur.to_csv(tmp_path / "current.csv", index=False)
    # Two paths take exactly the CLI's code path (CSV `score_{class}` columns).
    from_files = am.assess(str(tmp_path / "reference.csv"), str(tmp_path / "current.csv"), cfg)
    from_tables = am.assess(ref, cur, cfg)
    classification = from_tables["performance"]["classification"]
    assert isinstance(classification["log_loss"], float), "the probabilities were read"
    assert math.isclose(classification["log_loss"], FIXTURE["expected"]["performance"]["log_loss"],
                        rel_tol=1e-9)
    assert dict(from_tables) == dict(from_files)
    # Without the columns, log loss is undefined, not made up from the positive score.
    bare = am.assess(ref, cur.drop(columns=[f"score_{c}" for c in CLASSES]), cfg)
    assert bare["performance"]["classification"]["log_loss"] == {"undefined": "no labelled probabilities"}


def test_record_batch_and_record_carry_the_class_probabilities(tmp_path: Path) -> None:
    # Time-stamped within the last minutes, in the fixture's order.
    now = dt.datetime.now(dt.timezone.utc)
    events = [dict(e) for e in FIXTURE["current"][:600]]
    for i, e in enumerate(events):
        e["ts"] = (now - dt.timedelta(milliseconds=100 * (len(events) - i))).isoformat().replace("+00:00", "Z")
    profile = am.build_reference(frame(FIXTURE["reference"]), config(tmp_path, "ref"))
    with am.Monitor(config(tmp_path, "batch"), profile=profile) as m:
        reply = m.record_batch(frame(events))
        assert (reply["accepted"], reply["rejected"]) == (len(events), 0), reply["errors"]
        assert m.flush(timeout=60)
    with am.Monitor(config(tmp_path, "dicts"), profile=profile) as m:
        for e in events:
            assert m.record(e) is True
        assert m.flush(timeout=60)
    batch, dicts = spooled(tmp_path, "batch"), spooled(tmp_path, "dicts")
    assert batch and batch.keys() == dicts.keys()
    for start in batch:
        a, b = batch[start], dicts[start]
        a.pop("agent_id", None), b.pop("agent_id", None)
        assert a == b
    scored = sum(s["performance"]["class_scores"]["scored"] for s in batch.values())
    labelled_with_scores = sum(1 for e in events if e["label"] is not None and e["prediction"].get("scores"))
    assert scored == labelled_with_scores > 0


def test_bad_class_probabilities_are_refused_per_row_naming_the_column(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    df = frame(FIXTURE["current"][:50])
    df["ts"] = now
    df.loc[3, "score_medium"] = None          # one of three missing
    df.loc[5, "score_high"] = 0.9             # no longer sums to 1
    df.loc[7, "score_low"] = -0.5             # not a probability
    profile = am.build_reference(frame(FIXTURE["reference"]), config(tmp_path, "ref"))
    with am.Monitor(config(tmp_path, "bad"), profile=profile) as m:
        reply = m.record_batch(df)
        assert (reply["accepted"], reply["rejected"]) == (47, 3)
        got = [(e["row"], e["column"], e["reason"]) for e in reply["errors"]]
        assert got == [(3, "score_medium", "missing_field"), (5, "score_low", "invalid_number"),
                       (7, "score_low", "invalid_number")], reply["errors"]
        assert reply["errors"][0]["field"] == "prediction.scores[1]"
        assert m.stats()["aims_agent_events_rejected_total"]["invalid_number"] == 2
        # A table with only some of the columns cannot be read at all.
        with pytest.raises(am.InputError) as info:
            m.record_batch(df.drop(columns=["score_high"]))
        assert info.value.column == "score_high"
