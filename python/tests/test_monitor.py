"""``Monitor``: in-process recording with the sidecar's windows, spool and shipping."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import urllib.request
from pathlib import Path
from typing import Dict, List

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import aims_monitor as am
from conftest import CONFIG, CURRENT, PROFILE, REPO, Collector, Process, binary, free_port, http_ok, wait_until


def agent_toml(workdir: Path, agent_id: str, collector_url: str, *, listen: str = "127.0.0.1:0",
               window: str = "1h", grace: str = "5s") -> Path:
    """The example agent configuration with this test's names, directories and windows."""
    text = CONFIG.read_text()
    # Each replacement must match: a changed example file fails here, by name, instead of leaving
    # a test on the example's own paths and ports.
    for old, new in [
        ('agent_id = "credit-scoring-agent-1"', f'agent_id = "{agent_id}"'),
        ('path = "examples/profile.json"', f'path = "{PROFILE}"'),
        ('listen = "127.0.0.1:9464"', f'listen = "{listen}"'),
        ('length = "60s"', f'length = "{window}"'),
        ('grace = "5s"', f'grace = "{grace}"'),
        ('collector_url = "http://127.0.0.1:9470"', f'collector_url = "{collector_url}"'),
        ('initial_backoff = "500ms"', 'initial_backoff = "50ms"'),
        ('max_backoff = "60s"', 'max_backoff = "300ms"'),
        ('shutdown_timeout = "5s"', 'shutdown_timeout = "20s"'),
        ('dir = "../data/agent/spool"', f'dir = "{workdir / ("spool-" + agent_id)}"'),
    ]:
        assert old in text, f"config/agent.toml no longer has {old!r}"
        text = text.replace(old, new)
    path = workdir / f"{agent_id}.toml"
    path.write_text(text)
    return path


def offline(workdir: Path, **kw) -> am.Monitor:
    """A monitor that keeps its summaries in its spool (shipping off)."""
    return am.Monitor(agent_toml(workdir, "offline", "", **kw))


def spooled(workdir: Path, agent_id: str = "offline") -> List[dict]:
    out = []
    for f in sorted((workdir / f"spool-{agent_id}").glob("[0-9]*-*.json")):
        data = f.read_bytes()
        if f.suffix == ".gz":
            data = gzip.decompress(data)
        out.append(json.loads(data))
    return out


def events_frame(n: int) -> pd.DataFrame:
    """``n`` rows of the example current data, time-stamped within the last minute."""
    df = pd.read_csv(CURRENT).head(n).copy()
    now = dt.datetime.now(dt.timezone.utc)
    df["ts"] = [(now - dt.timedelta(milliseconds=50 * (n - i))).isoformat().replace("+00:00", "Z")
                for i in range(n)]
    return df


def as_event(row: Dict) -> Dict:
    """A frame row in the agent's HTTP event shape."""
    features = ["income", "age", "debt_ratio", "credit_history_months", "num_accounts", "region", "employment"]
    label = row["label"]
    return {
        "id": row["id"],
        "ts": row["ts"],
        "features": {f: row[f] for f in features},
        "attributes": {"gender": row["gender"], "age_band": row["age_band"]},
        "prediction": {"label": int(row["prediction"]), "score": float(row["score"])},
        "label": None if label is None or (isinstance(label, float) and math.isnan(label)) else int(label),
        "latency_ms": float(row["latency_ms"]),
    }


def test_record_label_flush_and_stats(workdir: Path) -> None:
    with offline(workdir) as m:
        rows = events_frame(40).to_dict("records")
        for row in rows[:30]:
            assert m.record(as_event(row)) is True
        # Late labels: the predictions went without one, the labels follow by id.
        for row in rows[30:]:
            e = as_event(row)
            e["label"] = None
            m.record(e)
            assert m.label(row["id"], 1) is True
        with pytest.raises(am.InputError) as info:
            m.record({**as_event(rows[0]), "prediction": {"label": "maybe"}})
        assert (info.value.field, info.value.reason) == ("prediction.label", "unknown_class")
        with pytest.raises(am.InputError) as info:
            m.record({**as_event(rows[0]), "features": {"income": float("nan")}})
        assert (info.value.field, info.value.reason) == ("features.income", "invalid_number")
        with pytest.raises(am.InputError) as info:
            m.label("c-1", "x")
        assert info.value.reason == "unknown_class"
        assert m.flush(timeout=30) is True
        stats = m.stats()
        assert stats["aims_agent_events_received_total"] == 42
        assert stats["aims_agent_events_accepted_total"] == 40
        assert stats["aims_agent_events_rejected_total"]["unknown_class"] == 1
        assert stats["aims_agent_events_rejected_total"]["invalid_number"] == 1
        assert stats["aims_agent_labels_joined_total"] == 10
        assert stats["aims_agent_events_dropped_total"]["overload"] == 0
        summaries = spooled(workdir)
        assert sum(s["summary"]["events"] for s in summaries) == 40
        assert sum(s["summary"]["rejected"] for s in summaries) == 2
        with_label = sum(1 for r in rows[:30] if as_event(r)["label"] is not None)
        assert with_label < 30, "the example data has unlabelled rows"
        assert sum(s["summary"]["labelled"] for s in summaries) == with_label + 10
    assert m.closed
    with pytest.raises(RuntimeError, match="closed"):
        m.record(as_event(rows[0]))
    m.close()  # idempotent


def test_record_batch_keeps_good_rows_beside_bad_ones(workdir: Path) -> None:
    df = events_frame(100)
    df.loc[7, "prediction"] = 5
    df.loc[8, "score"] = -1.0
    with offline(workdir) as m:
        reply = m.record_batch(df)
        assert reply["accepted"] == 98 and reply["rejected"] == 2 and reply["dropped"] == 0
        assert [(e["row"], e["column"], e["field"], e["reason"]) for e in reply["errors"]] == [
            (7, "prediction", "prediction.label", "unknown_class"),
            (8, "score", "prediction.score", "invalid_number"),
        ]
        # A table that cannot be read at all records nothing and names the column.
        with pytest.raises(am.InputError) as info:
            m.record_batch(df.drop(columns=["employment"]))
        assert info.value.column == "employment"
        # polars and pyarrow alike.
        assert m.record_batch(pl.from_pandas(events_frame(10)))["accepted"] == 10
        assert m.record_batch(pa.Table.from_pandas(events_frame(10)))["accepted"] == 10
        assert m.flush(timeout=30)
        assert sum(s["summary"]["events"] for s in spooled(workdir)) == 118
        assert m.stats()["aims_agent_events_rejected_total"]["unknown_class"] == 1


def test_a_full_queue_drops_and_counts_without_blocking(workdir: Path) -> None:
    cfg = agent_toml(workdir, "offline", "")
    cfg.write_text(cfg.read_text().replace("queue_events = 100000", "queue_events = 1000"))
    with am.Monitor(cfg) as m:
        reply = m.record_batch(events_frame(20000))
        # One batch larger than the whole queue cannot be queued: dropped, counted, and the
        # call returned instead of waiting.
        assert reply["accepted"] == 20000
        assert reply["dropped"] > 0
        assert m.stats()["aims_agent_events_dropped_total"]["overload"] == reply["dropped"]


@pytest.mark.filterwarnings("ignore:Using fork():RuntimeWarning")
def test_a_forked_child_is_told_to_make_its_own(workdir: Path) -> None:
    with offline(workdir) as m:
        pid = os.fork()
        if pid == 0:
            try:
                m.record(as_event(events_frame(1).to_dict("records")[0]))
                code = 1
            except RuntimeError as e:
                code = 0 if "each worker" in str(e) else 2
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert m.record(as_event(events_frame(1).to_dict("records")[0]))


def post(url: str, body: bytes, content_type: str) -> dict:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_record_batch_stores_the_same_summaries_as_the_sidecar(workdir: Path, collector: Collector) -> None:
    collector.start()
    df = events_frame(3000)
    late = df.index % 10 == 0
    labels = df.loc[late, ["id", "label"]].dropna()
    df.loc[late, "label"] = float("nan")

    # The sidecar, over HTTP.
    port = free_port()
    sidecar_cfg = agent_toml(workdir, "sidecar", collector.url, listen=f"127.0.0.1:{port}")
    sidecar = Process([str(binary("aims-agent")), "run", "--config", str(sidecar_cfg)], cwd=workdir,
                      log=workdir / "sidecar.log")
    try:
        wait_until(30, "the sidecar to answer /healthz", lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
        body = "\n".join(json.dumps(as_event(r)) for r in df.to_dict("records")).encode()
        reply = post(f"http://127.0.0.1:{port}/v1/events", body, "application/x-ndjson")
        assert reply["accepted"] == 3000, reply
        body = "\n".join(json.dumps({"id": i, "label": int(v)}) for i, v in labels.itertuples(index=False)).encode()
        post(f"http://127.0.0.1:{port}/v1/labels", body, "application/x-ndjson")
    finally:
        assert sidecar.stop() == 0, sidecar.log()

    # The embedded monitor, from the same frame; and event by event, as dicts.
    with am.Monitor(agent_toml(workdir, "embedded", collector.url)) as m:
        reply = m.record_batch(df)
        assert (reply["accepted"], reply["rejected"], reply["dropped"]) == (3000, 0, 0)
        for i, v in labels.itertuples(index=False):
            assert m.label(i, int(v))
        assert m.flush(timeout=60), m.stats()
    with am.Monitor(agent_toml(workdir, "dicts", collector.url)) as m:
        for row in df.to_dict("records"):
            assert m.record(as_event(row))
        for i, v in labels.itertuples(index=False):
            assert m.label(i, int(v))
        assert m.flush(timeout=60), m.stats()

    def by_window(agent: str) -> Dict[int, dict]:
        stored = collector.summaries(agent)
        if sum(s["summary"]["events"] for s in stored) < 3000:
            return {}
        return {s["window_start_ms"]: s["summary"] for s in stored}

    sidecar_summaries = wait_until(60, "the sidecar's summaries", lambda: by_window("sidecar") or None)
    embedded_summaries = wait_until(60, "the monitor's summaries", lambda: by_window("embedded") or None)
    dict_summaries = wait_until(60, "the dict monitor's summaries", lambda: by_window("dicts") or None)
    assert sum(s["labelled"] for s in embedded_summaries.values()) == len(df) - int(df["label"].isna().sum()) + len(labels)
    assert embedded_summaries == sidecar_summaries
    assert dict_summaries == sidecar_summaries


def test_record_agrees_with_the_sidecar_on_odd_but_valid_events(workdir: Path, collector: Collector) -> None:
    """Events off the fast path (ints as categories, bools, missing parts, extra keys) are
    recorded as the sidecar records them."""
    collector.start()
    now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    base = as_event(events_frame(1).to_dict("records")[0])
    odd = [
        {**base, "ts": now},
        {**base, "ts": now, "features": {**base["features"], "region": 7, "income": None}},
        {**base, "ts": now, "features": {**base["features"], "employment": 1.5}},
        {**base, "ts": now, "attributes": {"gender": True}, "label": "1"},
        {**base, "ts": now, "prediction": {"label": "0", "score": 0.25, "extra": 1}},
        {**base, "ts": now, "prediction": {"label": True}, "latency_ms": None, "id": 17},
        {"ts": now, "error": "model timed out"},
        {"ts": now, "features": {"age": 40}, "prediction": {"label": 1, "score": 1}},
    ]
    port = free_port()
    sidecar = Process([str(binary("aims-agent")), "run", "--config",
                       str(agent_toml(workdir, "sidecar", collector.url, listen=f"127.0.0.1:{port}"))],
                      cwd=workdir, log=workdir / "sidecar.log")
    try:
        wait_until(30, "the sidecar", lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
        body = "\n".join(json.dumps(e) for e in odd).encode()
        assert post(f"http://127.0.0.1:{port}/v1/events", body, "application/x-ndjson")["accepted"] == len(odd)
    finally:
        assert sidecar.stop() == 0, sidecar.log()
    with am.Monitor(agent_toml(workdir, "dicts", collector.url)) as m:
        for e in odd:
            assert m.record(e)
        assert m.flush(timeout=60)

    def by_window(agent: str) -> Dict[int, dict]:
        stored = collector.summaries(agent)
        if sum(s["summary"]["events"] for s in stored) < len(odd):
            return {}
        return {s["window_start_ms"]: s["summary"] for s in stored}

    sidecar_summaries = wait_until(60, "the sidecar's summaries", lambda: by_window("sidecar") or None)
    assert wait_until(60, "the monitor's summaries", lambda: by_window("dicts") or None) == sidecar_summaries


def test_a_dict_config_with_a_profile_object(workdir: Path) -> None:
    from test_assess import MODEL

    profile = am.build_reference(CURRENT, CONFIG)
    cfg = {"agent_id": "from-dict", "model": MODEL, "ship": {"collector_url": ""},
           "spool": {"dir": str(workdir / "spool-from-dict")}}
    with am.Monitor(cfg, profile=profile) as m:
        assert m.record_batch(events_frame(50))["accepted"] == 50
        assert m.flush(timeout=30)
    summaries = spooled(workdir, "from-dict")
    assert sum(s["summary"]["events"] for s in summaries) == 50
    assert {s["summary"]["profile_hash"] for s in summaries} == {profile.hash}


def test_no_reference_anywhere_is_a_config_error_not_a_hang(workdir: Path) -> None:
    cfg = agent_toml(workdir, "no-reference", f"http://127.0.0.1:{free_port()}")
    cfg.write_text(cfg.read_text().replace(f'path = "{PROFILE}"', ""))
    with pytest.raises(am.ConfigError, match="no reference profile within 1"):
        am.Monitor(cfg, start_timeout=1.0)


def test_record_batch_releases_the_gil(workdir: Path) -> None:
    """Another Python thread runs while a batch is converted. The table is a pyarrow Table, so
    what runs is the extension's own row loop (no pandas conversion). A call holding the GIL
    throughout would leave the counting thread no step in the first half of the call."""
    import threading
    import time

    table = pa.Table.from_pandas(pd.concat([events_frame(20000)] * 10, ignore_index=True))
    with offline(workdir) as m:
        done = threading.Event()
        stamps: List[float] = []

        def count() -> None:
            n = 0
            while not done.is_set():
                n += 1
                if n % 200 == 0:
                    stamps.append(time.perf_counter())

        counter = threading.Thread(target=count)
        counter.start()
        t0 = time.perf_counter()
        reply = m.record_batch(table)
        t1 = time.perf_counter()
        done.set()
        counter.join()
        assert reply["accepted"] + reply["dropped"] == 200000
        first_half = [t for t in stamps if t0 < t < t0 + (t1 - t0) / 2]
        assert first_half, f"no step of the other thread during the first {(t1 - t0) / 2:.3f} s"
