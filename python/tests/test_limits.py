"""The agent's ``limits`` caps on the embedded path: an over-long id or category value is
refused for its row alone, named, and counted, as the sidecar's HTTP ingest does."""

from __future__ import annotations

from pathlib import Path

import pytest

import aims_monitor as am
from test_monitor import agent_toml, as_event, events_frame, spooled


@pytest.mark.parametrize("fold_here", [False, True])
def test_record_batch_refuses_over_long_values_per_row(workdir: Path, fold_here: bool) -> None:
    cfg = agent_toml(workdir, "offline", "")
    text = cfg.read_text()
    for old, new in [("max_id_bytes = 256", "max_id_bytes = 40"),
                     ("max_category_bytes = 256", "max_category_bytes = 16")]:
        assert old in text, f"config/agent.toml no longer has {old!r}"
        text = text.replace(old, new)
    cfg.write_text(text)
    df = events_frame(60)
    df["id"] = df["id"].astype(str)
    df.loc[4, "id"] = "i" * 41
    df.loc[9, "region"] = "r" * 17
    df.loc[11, "id"] = "j" * 40          # at the cap: kept
    df.loc[12, "region"] = "s" * 16      # at the cap: kept
    with am.Monitor(cfg) as m:
        reply = m.record_batch(df, fold_here=fold_here)
        assert (reply["accepted"], reply["rejected"], reply["dropped"]) == (58, 2, 0)
        assert [(e["row"], e["column"], e["field"], e["reason"]) for e in reply["errors"]] == [
            (4, "id", "id", "too_long"),
            (9, "region", "features.region", "too_long"),
        ]
        assert "max_id_bytes (40)" in reply["errors"][0]["message"]
        # record(dict) and label() hold the same caps.
        with pytest.raises(am.InputError) as info:
            m.record({**as_event(df.iloc[0].to_dict()), "id": "k" * 41})
        assert (info.value.field, info.value.reason) == ("id", "too_long")
        with pytest.raises(am.InputError) as info:
            m.label("k" * 41, 1)
        assert (info.value.field, info.value.reason) == ("id", "too_long")
        assert m.flush(timeout=30)
        stats = m.stats()
        assert stats["aims_agent_events_rejected_total"]["too_long"] == 3
        assert stats["aims_agent_labels_rejected_total"]["too_long"] == 1
        assert stats["aims_agent_events_accepted_total"] == 58
    summaries = spooled(workdir)
    assert sum(s["summary"]["events"] for s in summaries) == 58
    assert sum(s["summary"]["rejected"] for s in summaries) == 3
