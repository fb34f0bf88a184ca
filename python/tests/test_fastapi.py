"""The example FastAPI app serves while the collector is down, and nothing is lost once it is back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import REPO, Collector, free_port, wait_until
from test_monitor import agent_toml

APP = REPO / "python" / "examples" / "fastapi_app.py"

APPLICANT = {"income": 52000.0, "age": 41, "debt_ratio": 0.31, "credit_history_months": 84,
             "num_accounts": 4, "region": "north", "employment": "employed",
             "gender": "F", "age_band": "40-49"}


def load_app():
    spec = importlib.util.spec_from_file_location("fastapi_app", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fastapi_app"] = module
    spec.loader.exec_module(module)
    return module.app


def test_serves_while_the_collector_is_down_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    collector = Collector(tmp_path / "collector", port=port)
    cfg = agent_toml(tmp_path, "credit-api", collector.url, window="1s", grace="100ms")
    monkeypatch.setenv("AIMS_AGENT_CONFIG", str(cfg))
    monkeypatch.setenv("AIMS_AGENT_ID", "credit-api")
    monkeypatch.setenv("AIMS_SPOOL_DIR", str(tmp_path / "spool"))
    app = load_app()
    n = 400
    try:
        with TestClient(app) as client:
            ids = []
            for i in range(n):
                r = client.post("/predict", json={**APPLICANT, "income": 30000.0 + 100 * i})
                assert r.status_code == 200, r.text
                ids.append(r.json()["id"])
            for i in ids[: n // 2]:
                assert client.post("/outcome", json={"id": i, "defaulted": False}).status_code == 200
            monitor = app.state.monitor
            # Windows of one second close while the collector is down: they wait in the spool.
            wait_until(30, "a window spooled", lambda: monitor.stats()["aims_agent_windows_closed_total"] > 0)
            stats = monitor.stats()
            assert stats["aims_agent_summaries_shipped_total"] == 0
            assert stats["aims_agent_spool_files"] > 0
            assert stats["aims_agent_events_dropped_total"]["overload"] == 0

            collector.start()

            def stored():
                rows = collector.summaries("credit-api")
                events = sum(s["summary"]["events"] for s in rows)
                labelled = sum(s["summary"]["labelled"] for s in rows)
                return (events, labelled) if events >= n and labelled >= n // 2 else None

            # Labels for predictions in closed windows ship as late summaries; all of it arrives.
            monitor.flush(timeout=60)
            assert wait_until(60, "every event and label at the collector", stored) == (n, n // 2)
            assert client.get("/monitor").json()["aims_agent_events_accepted_total"] == n
    finally:
        collector.stop()
