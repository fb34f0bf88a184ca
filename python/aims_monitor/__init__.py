"""AIMS Monitor for Python: the Rust core of AIMS Monitor, in process.

- :func:`assess` checks a current dataset against a reference with the metrics and objectives
  that later watch the model in production (the document ``aims-agent assess --format json``
  prints);
- :func:`build_reference` builds the reference profile agents bin against;
- :class:`Monitor` records predictions inside a model server, with the sidecar's windows,
  late-label join, spool and shipping, on Rust threads.

Tables are pandas or polars DataFrames, pyarrow Tables, or anything else that implements the
Arrow PyCapsule protocol (``__arrow_c_stream__``); they are read through the Arrow C data
interface, column buffers in place. Files are CSV or NDJSON paths. A configuration is a path to
an agent TOML file or a dict in the same schema.

Errors: :class:`InputError` (bad data: ``field``, ``reason``, ``message`` as in the agent's
HTTP error replies, plus ``column``, ``row`` or ``line``) and :class:`ConfigError`; both are
``ValueError``.
"""

from __future__ import annotations

import html
import json
import os
import weakref
from typing import Any, Dict, List, Mapping, Optional, Union

# The extension allocates with mimalloc. Events of a batch are allocated on the caller's thread
# and freed on the monitor's; returning the freed pages to the OS after mimalloc's default 10 ms
# made the next batch fault them back in, a large part of record_batch's time. Keeping them
# for a second costs at most one batch's memory for that second. Set the variable to override.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "1000")

from . import _native  # noqa: E402
from ._native import ConfigError, InputError, Profile

__all__ = [
    "Assessment",
    "ConfigError",
    "InputError",
    "Monitor",
    "Profile",
    "assess",
    "build_reference",
]

__version__: str = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]
Config = Union[PathLike, Mapping[str, Any]]


def _config_args(config: Config) -> Dict[str, Optional[str]]:
    if isinstance(config, Mapping):
        return {"config_path": None, "config_json": json.dumps(config)}
    if isinstance(config, (str, os.PathLike)):
        return {"config_path": os.fspath(config), "config_json": None}
    raise TypeError("config must be a path or a dict in the agent-config schema")


def _is_pandas_frame(data: Any) -> bool:
    cls = type(data)
    return cls.__module__.split(".")[0] == "pandas" and cls.__name__ == "DataFrame"


def _table(data: Any, what: str, threads: bool = True) -> Any:
    """A path (str), a Profile, or an object with ``__arrow_c_stream__``.

    ``threads=False`` (``Monitor.record_batch``) converts a pandas frame on the calling thread
    alone: pyarrow's default spreads the columns over a thread pool, which for a batch of a
    model server's size costs more CPU than it saves wall time (a 100,000-row frame of 20
    ``category`` and float columns: 0.15 CPU-µs per row against 0.09 on one thread), and a
    server has other work for its other cores. The table is the one pandas' own ``__arrow_c_stream__`` makes
    (``Table.from_pandas`` with its default ``preserve_index``), column for column."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    if not threads and hasattr(data, "__arrow_c_stream__") and _is_pandas_frame(data):
        import pyarrow as pa

        return pa.Table.from_pandas(data, nthreads=1)
    if isinstance(data, Profile) or hasattr(data, "__arrow_c_stream__"):
        return data
    # pandas < 2.2 has no __arrow_c_stream__: go through pyarrow, which shares the buffers.
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        import pyarrow as pa

        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    raise TypeError(
        f"{what}: expected a path, a pandas or polars DataFrame, a pyarrow Table, or an object "
        f"with __arrow_c_stream__; got {type(data).__name__}"
    )


class Assessment(dict):
    """The assessment document (a dict, exactly ``aims-agent assess --format json``).

    Sections: ``drift``, ``dataset_drift``, ``performance``, ``fairness``, ``data_quality``,
    ``latency`` and, with objectives, ``objectives``. Breached objectives are data, not an
    exception: gate on :attr:`breached` in CI.
    """

    @property
    def breached(self) -> List[Dict[str, Any]]:
        """The objectives whose verdict is ``breached`` (empty without objectives)."""
        return [o for o in self.get("objectives") or [] if o.get("verdict") == "breached"]

    @property
    def passed(self) -> bool:
        """True when no objective is breached."""
        return not self.breached

    def drift_frame(self) -> "Any":
        """Per-feature drift as a pandas DataFrame (one row per feature; KS split in two)."""
        import pandas as pd

        rows = []
        for feature, d in sorted(self.get("drift", {}).items()):
            row = {"feature": feature}
            for k, v in d.items():
                if k == "ks" and isinstance(v, dict):
                    row["ks_statistic"] = v.get("statistic")
                    row["ks_p_value"] = v.get("p_value")
                elif k == "chi2" and isinstance(v, dict):
                    row["chi2_statistic"] = v.get("statistic")
                    row["chi2_p_value"] = v.get("p_value")
                else:
                    row[k] = _scalar(v)
            rows.append(row)
        return pd.DataFrame(rows).set_index("feature") if rows else pd.DataFrame()

    def fairness_frame(self) -> "Any":
        """Per (attribute, group) rates as a pandas DataFrame with a two-level index."""
        import pandas as pd

        rows = []
        for attribute, a in sorted(self.get("fairness", {}).items()):
            for group, g in a.get("groups", {}).items():
                rows.append({"attribute": attribute, "group": group, **{k: _scalar(v) for k, v in g.items()}})
        if not rows:
            return pd.DataFrame()
        return pd.DataFrame(rows).set_index(["attribute", "group"])

    def fairness_summary_frame(self) -> "Any":
        """Per-attribute disparity metrics (demographic parity, equalized odds, ...)."""
        import pandas as pd

        rows = []
        for attribute, a in sorted(self.get("fairness", {}).items()):
            rows.append(
                {"attribute": attribute, **{k: _scalar(v) for k, v in a.items() if k != "groups"}}
            )
        return pd.DataFrame(rows).set_index("attribute") if rows else pd.DataFrame()

    def performance_frame(self) -> "Any":
        """Performance metrics as a one-column pandas DataFrame (metric -> value)."""
        import pandas as pd

        flat: Dict[str, Any] = {}
        for k, v in self.get("performance", {}).items():
            if isinstance(v, dict) and "undefined" not in v:
                for k2, v2 in v.items():
                    flat[f"{k}.{k2}"] = _scalar(v2)
            else:
                flat[k] = _scalar(v)
        return pd.DataFrame({"value": pd.Series(flat, dtype=object)}).rename_axis("metric")

    def data_quality_frame(self) -> "Any":
        """Per-feature data quality rates as a pandas DataFrame."""
        import pandas as pd

        features = self.get("data_quality", {}).get("features", {})
        rows = [{"feature": f, **{k: _scalar(v) for k, v in q.items()}} for f, q in sorted(features.items())]
        return pd.DataFrame(rows).set_index("feature") if rows else pd.DataFrame()

    def objectives_frame(self) -> "Any":
        """Judged objectives as a pandas DataFrame (empty without objectives)."""
        import pandas as pd

        rows = [{k: _scalar(v) for k, v in o.items()} for o in self.get("objectives") or []]
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame()

    def to_json(self, **kwargs: Any) -> str:
        """The document as JSON text."""
        return json.dumps(self, **kwargs)

    def _repr_html_(self) -> str:
        e = html.escape
        rows = self.get("rows", {})
        dd = self.get("dataset_drift", {})
        parts = [
            f"<div><b>AIMS assessment</b>: model {e(str(self.get('model')))} "
            f"{e(str(self.get('model_version')))}, {rows.get('current')} current rows against "
            f"{rows.get('reference')} reference rows (profile {e(str(self.get('profile_hash', ''))[:12])})<br>"
            f"dataset drift: {dd.get('drifted_features')} of {dd.get('features')} features drifted"
            f" ({'drifted' if dd.get('drifted') else 'not drifted'})</div>"
        ]
        objectives = self.get("objectives")
        if objectives:
            colour = {"breached": "#c62828", "at_risk": "#ef6c00", "met": "#2e7d32"}
            cells = "".join(
                f"<tr><td>{e(o['id'])}</td><td>{e(o['metric'])}</td><td>{e(_show(o.get('value')))}</td>"
                f"<td>{e(o['target'])}</td><td style='color:{colour.get(o['verdict'], '#555')}'>"
                f"{e(o['verdict'])}</td></tr>"
                for o in objectives
            )
            parts.append(
                "<table><tr><th>objective</th><th>metric</th><th>value</th><th>target</th>"
                f"<th>verdict</th></tr>{cells}</table>"
            )
        drift = self.get("drift", {})
        if drift:
            cells = "".join(
                f"<tr><td>{e(f)}</td><td>{e(str(d.get('default_method')))}</td>"
                f"<td>{e(_show(d.get('score')))}</td><td>{'yes' if d.get('drifted') else 'no'}</td></tr>"
                for f, d in sorted(drift.items())
            )
            parts.append(
                "<table><tr><th>feature</th><th>method</th><th>score</th><th>drifted</th></tr>"
                f"{cells}</table>"
            )
        return "".join(parts)


def _scalar(v: Any) -> Any:
    """A metric value: a number, or None where the document says it is undefined."""
    if isinstance(v, dict) and "undefined" in v:
        return None
    return v


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, dict) and "undefined" in v:
        return f"n/a ({v['undefined']})"
    return str(v)


def assess(
    reference: Any,
    current: Any,
    config: Config,
    objectives: Optional[PathLike] = None,
) -> Assessment:
    """Assess ``current`` against ``reference``: the document ``aims-agent assess --format json`` prints.

    ``reference`` is a table, a CSV / NDJSON path, a profile JSON path or a :class:`Profile`;
    ``current`` a table or a CSV / NDJSON path. ``config`` is an agent TOML path or a dict in the
    same schema (``model``, ``columns``, ...). With ``objectives`` (a YAML path) each objective
    for the model is judged; a breach is in :attr:`Assessment.breached`, never an exception.

    Raises :class:`InputError` naming the column (and row or line) for bad data and
    :class:`ConfigError` for an unusable configuration, profile or objectives file.
    """
    text = _native.assess(
        _table(reference, "reference"),
        _table(current, "current"),
        objectives=os.fspath(objectives) if objectives is not None else None,
        **_config_args(config),
    )
    return Assessment(json.loads(text))


def build_reference(data: Any, config: Config) -> Profile:
    """Build a reference profile from a table or a CSV / NDJSON path; ``.save("profile.json")`` it."""
    return _native.build_reference(_table(data, "data"), **_config_args(config))


class Monitor:
    """In-process recording for model servers (FastAPI, Flask, BentoML, MLServer, ...).

    The same windows, late-label join, spool and shipping as the ``aims-agent`` sidecar, run on
    Rust threads. ``record``, ``record_batch`` and ``label`` never block: when the bounded queue
    (``window.queue_events``) is full the event is dropped and counted in :meth:`stats`. The GIL
    is released while batches are converted and while :meth:`flush` and :meth:`close` wait.

    ``profile`` (a :class:`Profile`) overrides ``reference.path``; without either the profile is
    fetched from the collector (waiting up to ``start_timeout`` seconds). ``agent_id``,
    ``spool_dir`` and ``collector_url`` override the configuration's.

    Fork: create the monitor after forking, once per worker process (gunicorn: in the app
    factory or a ``post_fork`` hook, never at import time in the master), each with its own
    ``agent_id`` and ``spool_dir``: two processes sharing one would write summaries with the
    same ids. A monitor used in a process other than the one that created it raises
    ``RuntimeError``.
    """

    def __init__(
        self,
        config: Config,
        *,
        profile: Optional[Profile] = None,
        agent_id: Optional[str] = None,
        spool_dir: Optional[PathLike] = None,
        collector_url: Optional[str] = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._native = _native.Monitor(
            profile=profile,
            agent_id=agent_id,
            spool_dir=os.fspath(spool_dir) if spool_dir is not None else None,
            collector_url=collector_url,
            start_timeout=start_timeout,
            **_config_args(config),
        )
        # Closed when collected or at interpreter exit at the latest, so the open windows reach
        # the spool even when close() is forgotten.
        self._finalizer = weakref.finalize(self, self._native.close)
        # Bound methods of the native object: one attribute lookup less per call.
        self.record = self._native.record
        self.label = self._native.label
        self.stats = self._native.stats

    def record(self, event: Mapping[str, Any]) -> bool:  # type: ignore[no-redef]  # replaced per instance
        """Record one event (the agent's event shape); False when dropped for overload."""
        return self._native.record(event)

    def record_batch(self, table: Any, *, fold_here: bool = False) -> Dict[str, Any]:
        """Record every row of a table; returns ``{"accepted", "rejected", "dropped", "errors"}``.

        By default the rows are handed to the monitor's thread through the bounded queue (a
        full queue drops and counts). With ``fold_here=True`` they are folded into the window
        summaries on the calling thread instead (the GIL released): nothing is dropped for
        overload, several threads fold in parallel, and the call takes the folding time."""
        return self._native.record_batch(_table(table, "table", threads=False), fold_here)

    def label(self, id: Any, value: Any) -> bool:  # type: ignore[no-redef]  # noqa: A002
        """Record the late label of prediction ``id``; False when dropped for overload."""
        return self._native.label(id, value)

    def flush(self, timeout: float = 10.0) -> bool:
        """Close open windows into the spool now and wait up to ``timeout`` s for delivery."""
        return self._native.flush(timeout)

    def close(self) -> None:
        """Close windows, try to deliver the spool (``ship.shutdown_timeout``), stop the threads."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def stats(self) -> Dict[str, Any]:  # type: ignore[no-redef]
        """The monitor's counters and gauges, named as on the sidecar's ``/metrics``."""
        return self._native.stats()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
