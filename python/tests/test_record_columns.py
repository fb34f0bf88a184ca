"""``record_batch(fold_here=True)`` folds column batches filled straight from the Arrow arrays
(aims-core's ``record_columns``). Shown here: it refuses the same rows with the same errors and
counters as the per-row path (``fold_here=False``, which hands events to the monitor's thread),
and stores the same summaries to the bit, whether the string columns are Python strings,
pandas ``category`` columns (Arrow dictionaries) or pyarrow dictionary arrays, with missing,
blank, padded and unseen categories, and more distinct values than the batch's short list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import aims_monitor as am
from test_monitor import agent_toml, events_frame, spooled


def summaries(workdir: Path, agent_id: str) -> dict:
    """The spooled summaries by window, and the total of refused rows. (Refused rows count into
    the window of the clock at the call, which for two calls a second apart may differ across
    an hour's end; the rows' own windows come from their timestamps.)"""
    out, rejected = {}, 0
    for s in spooled(workdir, agent_id):
        summary = dict(s["summary"])
        rejected += summary.pop("rejected")
        if summary["events"] or summary["labelled"]:
            out[s["window_start_ms"]] = summary
    return {"windows": out, "rejected": rejected}


#: The refusals of `hostile`'s rows, in order: (row, column, reason).
HOSTILE_ERRORS = [
        (2, "income", "invalid_number"),
        (3, "prediction", "unknown_class"),
        (4, "score", "invalid_number"),
        (12, "latency_ms", "invalid_number"),
        (13, "ts", "invalid_timestamp"),
        (14, "income", "invalid_number"),
        (15, "region", "too_long"),
]


def hostile(n: int) -> pd.DataFrame:
    """The example rows with bad values on some and odd but valid categories on others."""
    df = events_frame(n)
    df["id"] = df["id"].astype(str)
    rng = np.random.default_rng(5)
    # More distinct regions than the short list (16) and the unseen cap (32), some padded,
    # blank (missing) or absent.
    regions = df["region"].astype(object).to_numpy()
    for i in range(0, n, 3):
        regions[i] = f"area-{rng.integers(0, 60)}"
    regions[5] = "  west "
    regions[6] = ""
    regions[10] = None
    df["region"] = regions
    df.loc[2, "income"] = np.inf              # refused: not a finite number
    df.loc[3, "prediction"] = 7               # refused: unknown class
    df.loc[4, "score"] = 1.5                  # refused: invalid score
    df.loc[8, "income"] = np.nan              # missing, kept
    df.loc[9, "label"] = np.nan               # unlabelled: waits for a late label
    df.loc[12, "latency_ms"] = -1.0           # refused: negative latency
    df.loc[13, "ts"] = "not a time"           # refused: bad timestamp
    df.loc[14, "income"] = np.inf             # refused for its feature first...
    df.loc[14, "prediction"] = 9              # ...not for its prediction
    df.loc[15, "region"] = "r" * 300          # refused: over max_category_bytes
    return df


def record(workdir: Path, agent_id: str, table, fold_here: bool):
    with am.Monitor(agent_toml(workdir, agent_id, "")) as m:
        reply = m.record_batch(table, fold_here=fold_here)
        assert m.flush(timeout=60)
        stats = m.stats()
    return reply, stats, summaries(workdir, agent_id)


def test_refusals_counters_and_summaries_match_the_per_row_path(workdir: Path) -> None:
    df = hostile(1200)
    by_row, by_column = (record(workdir, "rows", df, False), record(workdir, "cols", df, True))
    (reply_r, stats_r, sum_r), (reply_c, stats_c, sum_c) = by_row, by_column
    assert reply_c == reply_r
    assert [(e["row"], e["column"], e["reason"]) for e in reply_c["errors"]] == HOSTILE_ERRORS
    assert (reply_c["accepted"], reply_c["rejected"], reply_c["dropped"]) == (1193, 7, 0)
    for key in ["aims_agent_events_rejected_total", "aims_agent_events_accepted_total",
                "aims_agent_events_received_total", "aims_agent_events_summarised_total"]:
        assert stats_c[key] == stats_r[key], key
    assert sum_r["windows"] and sum_r["rejected"] == 7 and sum_c == sum_r


def test_category_and_dictionary_columns_give_the_same_summaries(workdir: Path) -> None:
    df = hostile(1200).drop(index=[2, 3, 4, 12, 13, 14, 15]).reset_index(drop=True)
    categorical = df.copy()
    for c in ["region", "employment", "gender", "age_band"]:
        categorical[c] = categorical[c].astype("category")
    table = pa.Table.from_pandas(df)
    dictionary = table.set_column(
        table.schema.get_field_index("employment"), "employment",
        table.column("employment").dictionary_encode())
    assert isinstance(pa.Table.from_pandas(categorical).column("region").type, pa.DictionaryType)
    want = record(workdir, "rows", df, False)
    for agent_id, t in [("plain", df), ("category", categorical), ("arrow-dict", dictionary)]:
        reply, _, got = record(workdir, agent_id, t, True)
        assert (reply["accepted"], reply["rejected"]) == (len(df), 0), agent_id
        assert got["windows"] and got == want[2], agent_id


def test_text_predictions_labels_groups_and_ids_match_the_per_row_path(workdir: Path) -> None:
    """Class labels, ground truth and groups given as text (plain strings and pandas
    ``category`` columns): each distinct text is resolved once per batch, with the same
    refusals, counters and summaries as row by row."""
    df = hostile(1200)
    df["prediction"] = df["prediction"].astype(int).astype(str)
    labels = df["label"].astype(object).to_numpy()
    df["label"] = [None if v is None or v != v else str(int(v)) for v in labels]
    df.loc[20, "prediction"] = "maybe"        # refused: unknown class
    df.loc[21, "prediction"] = " "            # refused: no prediction (blank)
    df.loc[22, "prediction"] = " 1 "          # padded: class 1
    df.loc[23, "label"] = "7"                 # refused: unknown class
    df.loc[24, "label"] = " 0"                # padded: class 0
    df.loc[25, "gender"] = "  F "             # padded: group F
    df.loc[26, "gender"] = "X"                # an unknown group
    df.loc[27, "age_band"] = ""               # blank: no group
    df.loc[28, "id"] = "i" * 300              # refused: over max_id_bytes
    df.loc[29, "prediction"] = "maybe"        # refused for its prediction first...
    df.loc[29, "label"] = "7"                 # ...not for its label
    categorical = df.copy()
    for c in ["prediction", "label", "gender", "age_band"]:
        categorical[c] = categorical[c].astype("category")
    want = record(workdir, "rows", df, False)
    reply_r, stats_r, sum_r = want
    assert [(e["row"], e["column"], e["reason"]) for e in reply_r["errors"]] == HOSTILE_ERRORS + [
        (20, "prediction", "unknown_class"),
        (21, "prediction", "missing_field"),
        (23, "label", "unknown_class"),
        (28, "id", "too_long"),
        (29, "prediction", "unknown_class"),
    ]
    assert sum_r["windows"] and sum_r["rejected"] == 12
    for agent_id, t in [("plain", df), ("category", categorical)]:
        reply, stats, got = record(workdir, agent_id, t, True)
        assert reply == reply_r, agent_id
        for key in ["aims_agent_events_rejected_total", "aims_agent_events_accepted_total",
                    "aims_agent_events_received_total", "aims_agent_events_summarised_total"]:
            assert stats[key] == stats_r[key], (agent_id, key)
        assert got == sum_r, agent_id


def test_categories_alike_in_their_first_and_last_bytes_stay_apart(workdir: Path) -> None:
    """The short list compares a category of up to 16 bytes by its length and its first and
    last eight bytes: names that differ in one byte, in length alone, or only past the eighth
    byte, and names padded with Unicode white space, count as row by row."""
    df = events_frame(600)
    names = ["a", "ab", "abcdefg", "abcdefgh", "abcdefgi", "abcdefgh1", "abcdefgh2",
             "abcdXfghijklmnop", "abcdYfghijklmnop", "abcdefghijklmnopq", "abcdefghijklmnopr",
             "\u00a0west", "west\u2003", "wést", "\tab ", "a\u0085"]
    df["region"] = [names[i % len(names)] for i in range(len(df))]
    by_row, by_column = record(workdir, "rows", df, False), record(workdir, "cols", df, True)
    assert by_column[0] == by_row[0] and by_row[0]["rejected"] == 0
    assert by_row[2]["windows"] and by_column[2] == by_row[2]


def test_float_columns_without_nulls_are_read_in_place_with_the_same_refusals(workdir: Path) -> None:
    """A float64 column with no nulls is folded from the Arrow buffer itself, not a copy: a NaN
    or infinity stored in it (not a null) is still refused, the rows beside it are kept, and the
    summaries equal the per-row path's, with refusals in the run and without."""
    df = events_frame(600)
    df["id"] = df["id"].astype(str)
    df["income"] = df["income"].fillna(0.0).astype(float)
    debt = df["debt_ratio"].fillna(0.5).astype(float).to_numpy().copy()
    debt[5], debt[9] = np.inf, np.nan            # values in the buffer, not nulls
    table = pa.Table.from_pandas(df.drop(columns=["debt_ratio"]), preserve_index=False)
    table = table.append_column("debt_ratio", pa.array(debt, type=pa.float64(), from_pandas=False))
    assert table.column("debt_ratio").null_count == 0 and table.column("income").null_count == 0
    (reply_r, stats_r, sum_r), (reply_c, stats_c, sum_c) = (
        record(workdir, "rows", table, False), record(workdir, "cols", table, True))
    assert reply_c == reply_r
    assert [(e["row"], e["column"], e["reason"]) for e in reply_c["errors"]] == [
        (5, "debt_ratio", "invalid_number"), (9, "debt_ratio", "invalid_number")]
    assert (reply_c["accepted"], reply_c["rejected"]) == (598, 2)
    assert stats_c["aims_agent_events_rejected_total"] == stats_r["aims_agent_events_rejected_total"]
    assert sum_r["windows"] and sum_c == sum_r
    clean = table.filter(pa.array([i not in (5, 9) for i in range(600)]))
    want = record(workdir, "clean-rows", clean, False)[2]
    reply, _, got = record(workdir, "clean-cols", clean, True)
    assert (reply["accepted"], reply["rejected"]) == (598, 0)
    assert got["windows"] and got == want


def test_record_batch_converts_a_pandas_frame_to_the_table_pandas_makes() -> None:
    """``record_batch`` converts a pandas frame itself, on the calling thread alone; the table
    is the one pandas' ``__arrow_c_stream__`` gives, schema and metadata included, for plain,
    ``category`` and indexed frames alike."""
    from aims_monitor import _table

    df = hostile(300)
    categorical = df.copy()
    for c in ["region", "employment", "gender", "age_band"]:
        categorical[c] = categorical[c].astype("category")
    for frame in [df, categorical, categorical.set_index("id"), df.iloc[7:200]]:
        got = _table(frame, "table", threads=False)
        want = pa.RecordBatchReader.from_stream(frame).read_all()
        assert isinstance(got, pa.Table)
        assert got.equals(want, check_metadata=True), got.schema
    assert "id" in _table(categorical.set_index("id"), "table", threads=False).column_names
