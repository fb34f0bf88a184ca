"""Shared helpers for the tests of the installed ``aims_monitor`` wheel.

The tests import the installed package (not the source tree: ``python/`` is not on sys.path),
run the real ``aims-agent`` and ``aims-collector`` binaries on 127.0.0.1 ports chosen at run
time, and wait on conditions with deadlines. Binaries come from ``AIMS_BIN_DIR`` or the
workspace's ``target/debug``; when one is missing the test skips visibly, and fails when
``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "agent.toml"
REFERENCE = REPO / "config" / "examples" / "reference.csv"
CURRENT = REPO / "config" / "examples" / "current.csv"
PROFILE = REPO / "config" / "examples" / "profile.json"
OBJECTIVES = REPO / "config" / "examples" / "objectives.yaml"

T = TypeVar("T")


def binary(name: str) -> Path:
    """A built binary, or a visible skip (a failure in CI)."""
    candidates = []
    if os.environ.get("AIMS_BIN_DIR"):
        candidates.append(Path(os.environ["AIMS_BIN_DIR"]) / name)
    candidates += [REPO / "target" / "debug" / name, REPO / "target" / "release" / name]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    message = f"{name} is not built (cargo build -p {name}); looked in {', '.join(map(str, candidates))}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(within: float, what: str, probe: Callable[[], Optional[T]]) -> T:
    """Polls ``probe`` until it returns something other than None or False; fails after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.05)


class Process:
    """A child process with its log in a file; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, args: List[str], cwd: Path, log: Path, env: Optional[dict] = None) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            args, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class Collector:
    """A real ``aims-collector`` in its own directory, on a port chosen at run time."""

    def __init__(self, workdir: Path, port: Optional[int] = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "collector.toml").write_text(
            f"""
[server]
listen = "127.0.0.1:{self.port}"
[storage]
data_dir = "{self.dir / 'data'}"
[evaluation]
objectives = "{OBJECTIVES}"
interval = "1h"
"""
        )
        self.process: Optional[Process] = None

    def start(self) -> "Collector":
        exe = binary("aims-collector")
        self.process = Process(
            [str(exe), "run", "--config", str(self.dir / "collector.toml")],
            cwd=self.dir,
            log=self.dir / f"collector-{time.monotonic_ns()}.log",
        )
        wait_until(30, "the collector to answer /healthz", lambda: http_ok(self.url + "/healthz") or self._died())
        return self

    def _died(self) -> None:
        assert self.process is not None
        if self.process.proc.poll() is not None:
            raise AssertionError(f"collector exited: {self.process.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def summaries(self, agent: Optional[str] = None) -> List[dict]:
        """Stored summaries, read from the collector's database: each row's key columns, and
        the window summary itself (its JSON body) under ``summary``."""
        import gzip
        import json

        db = self.dir / "data" / "collector.db"
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            query = "SELECT agent, window_start_ms, window_ms, seq, body, envelope_gzip FROM summaries"
            rows = con.execute(query + (" WHERE agent = ?" if agent else ""), (agent,) if agent else ()).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()
        # A summary sent gzip-compressed is kept as that gzip envelope, with an empty body.
        return [
            {
                "agent": a,
                "window_start_ms": w,
                "window_ms": n,
                "seq": q,
                "summary": json.loads(gzip.decompress(gz))["summary"] if gz is not None else json.loads(b),
            }
            for a, w, n, q, b, gz in rows
        ]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    c = Collector(tmp_path / "collector")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def which(tool: str) -> Optional[str]:
    return shutil.which(tool)
