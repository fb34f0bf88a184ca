"""``record_batch(fold_here=True)``: rows folded on the calling thread (a per-thread shard)
give the summaries the monitor's own thread gives, join their late labels, and scale across
threads."""

from __future__ import annotations

import threading
from pathlib import Path

import aims_monitor as am
from test_monitor import agent_toml, events_frame, spooled


def summaries(workdir: Path, agent_id: str) -> dict:
    return {s["window_start_ms"]: s["summary"] for s in spooled(workdir, agent_id)
            if s["summary"]["events"] or s["summary"]["labelled"]}


def test_folding_here_gives_the_same_summaries_to_the_bit(workdir: Path) -> None:
    df = events_frame(3000)
    for agent_id, fold_here in [("queue", False), ("here", True)]:
        with am.Monitor(agent_toml(workdir, agent_id, "")) as m:
            reply = m.record_batch(df, fold_here=fold_here)
            assert (reply["accepted"], reply["rejected"], reply["dropped"]) == (3000, 0, 0)
            assert m.flush(timeout=60)
            assert m.stats()["aims_agent_events_summarised_total"] == 3000
    queue, here = summaries(workdir, "queue"), summaries(workdir, "here")
    assert queue and queue == here


def test_late_labels_join_rows_folded_here_and_threads_fold_at_once(workdir: Path) -> None:
    df = events_frame(4000)
    unlabelled = df[df["label"].isna()]["id"].tolist()
    assert len(unlabelled) > 100
    with am.Monitor(agent_toml(workdir, "threads", "")) as m:
        halves = [df.iloc[:2000], df.iloc[2000:]]
        replies = []
        threads = [threading.Thread(target=lambda h=h: replies.append(m.record_batch(h, fold_here=True)))
                   for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(r["accepted"] for r in replies) == [2000, 2000]
        for i in unlabelled:
            assert m.label(i, 1) is True
        assert m.flush(timeout=60)
        stats = m.stats()
        assert stats["aims_agent_events_summarised_total"] == 4000
        assert stats["aims_agent_labels_joined_total"] == len(unlabelled)
    total = summaries(workdir, "threads")
    assert sum(s["events"] for s in total.values()) == 4000
    assert sum(s["labelled"] for s in total.values()) == 4000
