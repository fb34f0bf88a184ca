"""A FastAPI model server instrumented with ``aims_monitor.Monitor``.

Run it (from the repository root, with a collector on 127.0.0.1:9470, see the README):

    pip install ./python fastapi uvicorn
    AIMS_AGENT_CONFIG=config/agent.toml uvicorn --app-dir python/examples fastapi_app:app

then ``POST /predict`` an applicant and, when the outcome is known, ``POST /outcome``. The
monitor lives in the lifespan, so each worker process (``uvicorn --workers N``, gunicorn with
uvicorn workers) starts its own after the fork; ``AIMS_AGENT_ID`` and ``AIMS_SPOOL_DIR`` default
to names that include the process id, so two workers never share an agent id or a spool.
Recording never blocks a request: when the collector is down, windows wait in the spool and
ship once it is back.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict, Optional

from fastapi import FastAPI, Request
from pydantic import BaseModel

import aims_monitor


class Applicant(BaseModel):
    income: float
    age: int
    debt_ratio: float
    credit_history_months: int
    num_accounts: int
    region: str
    employment: str
    gender: Optional[str] = None
    age_band: Optional[str] = None


class Outcome(BaseModel):
    id: str
    defaulted: bool


def score(a: Applicant) -> float:
    """A stand-in credit model: a logistic score of a few features."""
    z = 1e-5 * a.income - 3.0 * a.debt_ratio + 0.01 * a.credit_history_months - 0.5
    return 1.0 / (1.0 + math.exp(-z))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pid = os.getpid()
    monitor = aims_monitor.Monitor(
        os.environ.get("AIMS_AGENT_CONFIG", "config/agent.toml"),
        agent_id=os.environ.get("AIMS_AGENT_ID", f"credit-api-{pid}"),
        spool_dir=os.environ.get("AIMS_SPOOL_DIR", f"data/agent/spool-{pid}"),
    )
    app.state.monitor = monitor
    try:
        yield
    finally:
        # Closes the open windows and tries to ship them (ship.shutdown_timeout); anything
        # left stays in the spool for the next start.
        monitor.close()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
def predict(applicant: Applicant, request: Request) -> Dict[str, object]:
    started = time.perf_counter()
    p = score(applicant)
    approved = int(p >= 0.5)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    monitor: aims_monitor.Monitor = request.app.state.monitor
    try:
        monitor.record(
            {
                "id": request_id,
                "features": applicant.model_dump(exclude={"gender", "age_band"}),
                "attributes": {"gender": applicant.gender, "age_band": applicant.age_band},
                "prediction": {"label": approved, "score": p},
                "latency_ms": (time.perf_counter() - started) * 1000.0,
            }
        )
    except aims_monitor.InputError:
        # Counted in monitor.stats(); monitoring never fails a prediction.
        pass
    return {"id": request_id, "approved": bool(approved), "score": p}


@app.post("/outcome")
def outcome(o: Outcome, request: Request) -> Dict[str, bool]:
    # The ground truth arrives later; the monitor joins it to its prediction's window.
    joined = request.app.state.monitor.label(o.id, 0 if o.defaulted else 1)
    return {"accepted": joined}


@app.get("/monitor")
def monitor_stats(request: Request) -> Dict[str, object]:
    return request.app.state.monitor.stats()
