"""``assess`` and ``build_reference`` against the CLI's own JSON, from every kind of input."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import aims_monitor as am
from conftest import CONFIG, CURRENT, OBJECTIVES, PROFILE, REFERENCE, REPO, binary


@pytest.fixture(scope="module")
def cli_json() -> dict:
    exe = binary("aims-agent")
    out = subprocess.run(
        [str(exe), "assess", "--config", str(CONFIG), "--reference", str(REFERENCE),
         "--current", str(CURRENT), "--objectives", str(OBJECTIVES), "--format", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    # Exit 1 means an objective is breached (the example data is built to breach one).
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def differences(a: Any, b: Any, path: str = "") -> list:
    """Where two JSON documents differ, down to the last bit of every float."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only on one side" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items against {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]


def test_paths_give_exactly_the_cli_document(cli_json: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    a = am.assess(str(REFERENCE), CURRENT, CONFIG, objectives=OBJECTIVES)
    assert isinstance(a, am.Assessment)
    assert dict(a) == cli_json
    assert a.to_json(sort_keys=True) == json.dumps(cli_json, sort_keys=True)


TABLES = {
    "pandas": lambda p: pd.read_csv(p),
    "pyarrow": lambda p: pacsv.read_csv(p),
    "polars": lambda p: pl.read_csv(p),
}


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_tables_give_the_cli_document(kind: str, cli_json: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    read = TABLES[kind]
    a = am.assess(read(REFERENCE), read(CURRENT), CONFIG, objectives=OBJECTIVES)
    # Bit for bit, row sums included (log loss, Brier, the CBPE estimates, the reconstruction
    # error): a table is folded in the CLI's blocks of rows, merged in the CLI's order.
    assert differences(dict(a), cli_json) == []
    assert a.to_json(sort_keys=True) == json.dumps(cli_json, sort_keys=True)
    assert a["rows"] == {"reference": 20000, "current": 20000}


def test_record_batches_cut_anywhere_give_the_cli_document(cli_json: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of rows are counted across record batches, so how a table is chunked (here into
    # uneven batches that straddle the blocks) changes nothing.
    monkeypatch.chdir(REPO)
    table = pacsv.read_csv(CURRENT).combine_chunks()
    cuts = [0, 1, 4095, 8193, 8194, 16000, 19999, table.num_rows]
    batches = [b for lo, hi in zip(cuts, cuts[1:]) for b in table.slice(lo, hi - lo).to_batches()]
    assert len(batches) == len(cuts) - 1
    chunked = pa.Table.from_batches(batches)
    a = am.assess(pacsv.read_csv(REFERENCE), chunked, CONFIG, objectives=OBJECTIVES)
    assert differences(dict(a), cli_json) == []


def test_mixed_inputs_and_a_profile(cli_json: dict, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(REPO)
    profile = am.build_reference(pd.read_csv(REFERENCE), CONFIG)
    from_file = am.build_reference(REFERENCE, CONFIG)
    # Exact quantiles and category counts do not depend on how rows were split.
    assert profile.hash == from_file.hash
    assert profile.rows == 20000
    saved = tmp_path / "profile.json"
    profile.save(saved)
    loaded = am.Profile.load(saved)
    assert loaded.hash == profile.hash
    # The same file `aims-agent reference build` writes.
    out = tmp_path / "cli-profile.json"
    subprocess.run([str(binary("aims-agent")), "reference", "build", "--config", str(CONFIG),
                    "--data", str(REFERENCE), "-o", str(out)], cwd=REPO, check=True, timeout=300)
    assert json.loads(out.read_text())["hash"] == profile.hash
    a = am.assess(loaded, pl.read_csv(CURRENT), CONFIG, objectives=OBJECTIVES)
    assert differences(dict(a), cli_json) == []
    b = am.assess(saved, CURRENT, CONFIG, objectives=OBJECTIVES)
    assert dict(b) == cli_json


def test_breaches_are_a_field_and_sections_become_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    a = am.assess(REFERENCE, CURRENT, CONFIG, objectives=OBJECTIVES)
    breached = [o["id"] for o in a.breached]
    assert "credit-approval-parity" in breached
    assert not a.passed
    drift = a.drift_frame()
    assert set(drift.index) == {"income", "age", "debt_ratio", "credit_history_months",
                                "num_accounts", "region", "employment"}
    assert drift.loc["income", "psi"] == a["drift"]["income"]["psi"]
    fairness = a.fairness_frame()
    assert fairness.loc[("gender", "F"), "selection_rate"] == a["fairness"]["gender"]["groups"]["F"]["selection_rate"]
    assert a.fairness_summary_frame().loc["gender", "demographic_parity_ratio"] == \
        a["fairness"]["gender"]["demographic_parity_ratio"]
    perf = a.performance_frame()
    assert perf.loc["classification.accuracy", "value"] == a["performance"]["classification"]["accuracy"]
    assert a.data_quality_frame().loc["income", "missing_rate"] == 0.0
    assert list(a.objectives_frame().index) == [o["id"] for o in a["objectives"]]
    html = a._repr_html_()
    assert "credit-approval-parity" in html and "breached" in html
    # Without objectives there is nothing to breach.
    assert am.assess(REFERENCE, CURRENT, CONFIG).passed


MODEL = {
    "name": "credit-scoring",
    "version": "1.0.0",
    "task": "binary",
    "classes": ["0", "1"],
    "positive_class": "1",
    "features": [
        {"name": "income", "kind": "numeric"},
        {"name": "age", "kind": "numeric"},
        {"name": "debt_ratio", "kind": "numeric"},
        {"name": "credit_history_months", "kind": "numeric"},
        {"name": "num_accounts", "kind": "numeric"},
        {"name": "region", "kind": "categorical"},
        {"name": "employment", "kind": "categorical"},
    ],
    "attributes": [
        {"name": "gender", "groups": ["F", "M"], "reference_group": "M"},
        {"name": "age_band", "groups": ["18-29", "30-39", "40-49", "50-64", "65+"]},
    ],
}


def test_config_as_a_dict(cli_json: dict) -> None:
    a = am.assess(REFERENCE, CURRENT, {"model": MODEL}, objectives=OBJECTIVES)
    assert dict(a) == cli_json


def frame() -> pd.DataFrame:
    return pd.read_csv(CURRENT).head(200)


def raises_input(call, **expected) -> am.InputError:
    with pytest.raises(am.InputError) as info:
        call()
    err = info.value
    assert isinstance(err, ValueError)
    for k, v in expected.items():
        assert getattr(err, k) == v, (k, getattr(err, k), str(err))
    return err


def test_a_missing_column_names_it() -> None:
    err = raises_input(lambda: am.assess(PROFILE, frame().drop(columns=["income"]), CONFIG),
                       column="income", field="features.income", reason="missing_field", row=None)
    assert "income" in str(err)


def test_a_missing_file_column_names_it(tmp_path) -> None:
    pd.read_csv(CURRENT).head(50).drop(columns=["gender"]).to_csv(tmp_path / "c.csv", index=False)
    raises_input(lambda: am.assess(PROFILE, tmp_path / "c.csv", CONFIG), column="gender",
                 field="attributes.gender", reason="missing_field", line=1)


def test_a_wrong_dtype_names_the_column() -> None:
    df = frame()
    df["age"] = df["age"].astype(str) + " years"
    raises_input(lambda: am.assess(PROFILE, df, CONFIG), column="age", field="features.age",
                 reason="wrong_type", row=None)
    # A list column is no category either.
    t = pa.Table.from_pandas(frame(), preserve_index=False)
    t = t.set_column(t.schema.get_field_index("region"), "region",
                     pa.array([[1]] * t.num_rows))
    raises_input(lambda: am.assess(PROFILE, t, CONFIG), column="region", reason="wrong_type")


def test_a_nan_label_names_the_column_and_row() -> None:
    df = pl.read_csv(CURRENT).head(200).with_columns(pl.col("label").cast(pl.Float64))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 17).then(float("nan"))
                         .otherwise(pl.col("label")).alias("label"))
    err = raises_input(lambda: am.assess(PROFILE, df, CONFIG), column="label", field="label",
                       reason="invalid_number", row=17)
    assert "row 17" in str(err)
    # In pandas NaN is the missing-value marker: such a label is absent, as an empty CSV cell.
    pdf = frame().astype({"label": "float64"})
    pdf.loc[17, "label"] = float("nan")
    a = am.assess(PROFILE, pdf, CONFIG)
    b = am.assess(PROFILE, frame(), CONFIG)
    assert a["performance"]["labelled"] == b["performance"]["labelled"] - 1


def test_an_unknown_class_and_a_bad_score_name_the_column() -> None:
    df = frame()
    df.loc[5, "prediction"] = 7
    raises_input(lambda: am.assess(PROFILE, df, CONFIG), column="prediction",
                 field="prediction.label", reason="unknown_class", row=5)
    df = frame()
    df.loc[9, "score"] = 1.5
    raises_input(lambda: am.assess(PROFILE, df, CONFIG), column="score",
                 field="prediction.score", reason="invalid_number", row=9)


def test_a_bad_file_row_names_the_line_and_column(tmp_path) -> None:
    lines = CURRENT.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("debt_ratio")] = "lots"
    lines[3] = ",".join(cells)
    bad = tmp_path / "current.csv"
    bad.write_text("\n".join(lines) + "\n")
    raises_input(lambda: am.assess(PROFILE, bad, CONFIG), column="debt_ratio",
                 field="features.debt_ratio", reason="wrong_type", line=4)


def test_an_unknown_policy_key_is_a_config_error() -> None:
    # The schema has no per-feature unknown-category policy (unseen categories are counted
    # into unseen_category_rate); a key the schema does not know is an error naming it.
    model = {**MODEL, "unknown_category_policy": "reject"}
    with pytest.raises(am.ConfigError, match="unknown_category_policy"):
        am.assess(PROFILE, frame(), {"model": model})
    with pytest.raises(am.ConfigError, match="model"):
        am.assess(PROFILE, frame(), {"agent_id": "x"})
    with pytest.raises(TypeError):
        am.assess(PROFILE, [1, 2, 3], CONFIG)
