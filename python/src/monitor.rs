//! `aims_monitor.Monitor`: the agent's windows, label join, spool and shipping inside a Python
//! model server.
//!
//! The monitor runs `aims_agent::Monitor` on a tokio runtime of its own (one worker thread,
//! named `aims-monitor`), so it works the same under any Python web framework, sync or async.
//! `record`, `record_batch` and `label` validate on the caller's thread and hand events to the
//! windowing task through the agent's bounded queue: they never wait; a full queue drops and
//! counts (`stats()["aims_agent_events_dropped_total"]["overload"]`). The GIL is released while
//! a batch is converted and while `flush` and `close` wait.
//!
//! Fork: the runtime's threads do not survive `fork()`. A monitor used in a process other than
//! the one that created it raises `RuntimeError` instead of silently recording into a dead
//! queue; pre-fork servers (gunicorn, uWSGI) create the monitor in each worker, with an
//! `agent_id` and `spool_dir` of its own.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aims_agent::config::{AgentConfig, ColumnsConfig};
use aims_agent::metrics::AgentMetrics;
use aims_agent::shard::Shard;
use aims_agent::window::{now_ms, Input, Recycler};
use aims_agent::Recorder;
use aims_core::event::{RawEvent, RawLabel};
use aims_core::Event;
use prometheus::proto::MetricType;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{config_error, event_error, input_error};
use crate::frame::{self, Plan};
use crate::pyevent::FastDecoder;
use crate::pyjson::to_value;
use crate::Profile;

/// Rejected rows listed in a `record_batch` reply, as the agent's HTTP reply lists them.
const MAX_LISTED_ERRORS: usize = aims_agent::ingest::MAX_LISTED_ERRORS;

/// Events handed to the windowing task per queue message.
const CHUNK: usize = 4096;

struct Running {
    runtime: tokio::runtime::Runtime,
    monitor: aims_agent::Monitor,
}

/// In-process recording for a model server; see the module documentation.
#[pyclass(module = "aims_monitor._native", frozen)]
pub struct Monitor {
    running: Mutex<Option<Running>>,
    recorder: Recorder,
    metrics: AgentMetrics,
    columns: ColumnsConfig,
    fast: FastDecoder,
    /// Event buffers the windowing thread hands back for `record_batch` to fill again.
    recycler: Recycler,
    /// Shards for `record_batch(fold_here=True)`, one per calling thread at a time.
    shards: Mutex<Vec<Shard>>,
    shipping: bool,
    pid: u32,
}

impl Monitor {
    fn check(&self) -> PyResult<()> {
        if std::process::id() != self.pid {
            return Err(PyRuntimeError::new_err(
                "this Monitor was created in another process (before a fork); create one in \
                 each worker process",
            ));
        }
        if self.running.lock().map_or(true, |r| r.is_none()) {
            return Err(PyRuntimeError::new_err("the Monitor is closed"));
        }
        Ok(())
    }

    fn with_runtime<T>(&self, f: impl FnOnce(&Running) -> T) -> Option<T> {
        let guard = self.running.lock().ok()?;
        guard.as_ref().map(f)
    }
}

#[pymethods]
impl Monitor {
    #[new]
    #[pyo3(signature = (config_path=None, config_json=None, profile=None, agent_id=None,
                        spool_dir=None, collector_url=None, start_timeout=30.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config_path: Option<&str>,
        config_json: Option<&str>,
        profile: Option<&Bound<'_, Profile>>,
        agent_id: Option<String>,
        spool_dir: Option<PathBuf>,
        collector_url: Option<String>,
        start_timeout: f64,
    ) -> PyResult<Monitor> {
        let mut cfg: AgentConfig = crate::load_config(config_path, config_json)?;
        if let Some(id) = agent_id {
            cfg.agent_id = id;
        }
        if let Some(dir) = spool_dir {
            cfg.spool.dir = dir;
        }
        if let Some(url) = collector_url {
            cfg.ship.collector_url = url;
        }
        let profile = profile.map(|p| p.get().inner.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aims-monitor")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
        let metrics = AgentMetrics::new();
        let timeout = Duration::from_secs_f64(start_timeout.max(0.0));
        let started = py.allow_threads(|| match profile {
            Some(p) => {
                let _guard = runtime.enter();
                aims_agent::Monitor::with_profile(&cfg, p, true, metrics.clone())
                    .map_err(|e| e.to_string())
            }
            None => runtime.block_on(async {
                match tokio::time::timeout(
                    timeout,
                    aims_agent::Monitor::start(&cfg, metrics.clone()),
                )
                .await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "no reference profile within {start_timeout} s: set reference.path, \
                         pass profile=, or start the collector"
                    )),
                }
            }),
        });
        let monitor = started.map_err(|e| config_error(&e))?;
        Ok(Monitor {
            recorder: monitor.recorder(),
            running: Mutex::new(Some(Running { runtime, monitor })),
            metrics,
            columns: cfg.columns.clone(),
            fast: FastDecoder::new(py, &cfg.model)?,
            recycler: Recycler::default(),
            shards: Mutex::new(Vec::new()),
            shipping: !cfg.ship.collector_url.is_empty(),
            pid: std::process::id(),
        })
    }

    /// Records one event given as a dict in the agent's event shape; never blocks. Returns
    /// False when the event was dropped because the queue is full. A bad event raises
    /// `InputError` (and is counted by reason).
    fn record(&self, event: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.check()?;
        let Ok(dict) = event.downcast::<PyDict>() else {
            return Err(PyTypeError::new_err("record() takes a dict"));
        };
        if let Some(e) = self.fast.decode(dict, self.recorder.schema(), now_ms()) {
            let schema = self.recorder.schema();
            return match aims_agent::ingest::lengths_ok(&e, schema, self.recorder.limits()) {
                Ok(()) => Ok(self.recorder.record(e)),
                Err(e) => {
                    self.metrics.events_received.inc();
                    self.metrics
                        .events_rejected
                        .with_label_values(&[e.reason.as_str()])
                        .inc();
                    self.recorder.submit(Input::Rejected(1));
                    Err(event_error(&e))
                }
            };
        }
        let raw: Result<RawEvent, aims_core::event::EventError> =
            to_value(event, "", 0).and_then(|v| {
                serde_json::from_value(v).map_err(|e| {
                    aims_core::event::EventError::new(
                        "event",
                        aims_core::event::RejectReason::InvalidJson,
                        e.to_string(),
                    )
                })
            });
        match raw {
            Ok(raw) => self.recorder.record_raw(raw).map_err(|e| event_error(&e)),
            Err(e) => {
                self.metrics.events_received.inc();
                self.metrics
                    .events_rejected
                    .with_label_values(&[e.reason.as_str()])
                    .inc();
                self.recorder.submit(Input::Rejected(1));
                Err(event_error(&e))
            }
        }
    }

    /// Records every row of a table (an object with `__arrow_c_stream__`); never blocks. A
    /// missing or mistyped column raises `InputError` before anything is recorded; a bad row is
    /// counted and listed, and the good rows beside it are kept. Returns
    /// `{"accepted", "rejected", "dropped", "errors": [{"row", "column", "field", "reason",
    /// "message"}]}`.
    ///
    /// With `fold_here=True` the rows are folded into window summaries on the calling thread
    /// (GIL released), through a per-thread shard the monitor's thread takes at window close
    /// and `flush`: no queue, so nothing is dropped for overload, and several threads fold in
    /// parallel; the call takes the folding time (column batches of up to 4,096 rows, filled
    /// from the Arrow arrays and folded by aims-core's `record_columns`: well under a
    /// microsecond per 20-feature row).
    #[pyo3(signature = (table, fold_here=false))]
    fn record_batch<'py>(
        &self,
        py: Python<'py>,
        table: &Bound<'py, PyAny>,
        fold_here: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        let batches = frame::read_batches(table)?;
        let schema = self.recorder.schema();
        let plans = batches
            .iter()
            .map(|b| Plan::new(b, schema, &self.columns))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| input_error(&e))?;
        let outcome = py.allow_threads(|| {
            if fold_here {
                self.fold_rows(&batches, &plans)
            } else {
                self.record_rows(&batches, &plans)
            }
        });
        let reply = PyDict::new(py);
        reply.set_item("accepted", outcome.accepted)?;
        reply.set_item("rejected", outcome.rejected)?;
        reply.set_item("dropped", outcome.dropped)?;
        let errors = PyList::empty(py);
        for e in outcome.errors {
            let item = PyDict::new(py);
            item.set_item("row", e.row)?;
            item.set_item("column", e.column)?;
            item.set_item("field", e.error.field)?;
            item.set_item("reason", e.error.reason.as_str())?;
            item.set_item("message", e.error.message)?;
            errors.append(item)?;
        }
        reply.set_item("errors", errors)?;
        Ok(reply)
    }

    /// Records the label of prediction `id` (joined in the agent's bounded buffer); never
    /// blocks. False when dropped for overload; a bad label raises `InputError`.
    fn label(&self, id: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.check()?;
        let raw = RawLabel {
            id: Some(to_value(id, "id", 0).map_err(|e| event_error(&e))?),
            label: Some(to_value(value, "label", 0).map_err(|e| event_error(&e))?),
        };
        self.metrics.labels_received.inc();
        let validated = self
            .recorder
            .schema()
            .validate_label(raw)
            .and_then(|(id, t)| {
                aims_agent::ingest::check_label_id(&id, self.recorder.limits())?;
                Ok((id, t))
            });
        match validated {
            Ok((id, target)) => Ok(self.recorder.submit(Input::Labels(vec![(id, target)]))),
            Err(e) => {
                self.metrics
                    .labels_rejected
                    .with_label_values(&[e.reason.as_str()])
                    .inc();
                Err(event_error(&e))
            }
        }
    }

    /// Closes the open windows into the spool now and, when shipping is on, waits up to
    /// `timeout` seconds for the spool to be delivered. True when everything recorded so far
    /// is spooled and (with shipping) acknowledged by the collector. Waits: not for the
    /// request path.
    #[pyo3(signature = (timeout=10.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        self.check()?;
        let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
        let recorder = self.recorder.clone();
        let spooled = self
            .with_runtime(|r| {
                py.allow_threads(|| {
                    r.runtime.block_on(async {
                        tokio::time::timeout_at(deadline.into(), recorder.flush())
                            .await
                            .unwrap_or(false)
                    })
                })
            })
            .unwrap_or(false);
        if !spooled || !self.shipping {
            return Ok(spooled);
        }
        let files = self.metrics.spool_files.clone();
        Ok(py.allow_threads(|| loop {
            if files.get() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }))
    }

    /// Closes every open window into the spool and tries to deliver it for up to the
    /// configuration's `ship.shutdown_timeout`; what is left ships at the next start with the
    /// same spool. Idempotent.
    fn close(&self, py: Python<'_>) {
        let running = self.running.lock().ok().and_then(|mut r| r.take());
        if let Some(Running { runtime, monitor }) = running {
            if std::process::id() == self.pid {
                py.allow_threads(|| {
                    runtime.block_on(monitor.shutdown());
                    runtime.shutdown_timeout(Duration::from_secs(1));
                });
            } else {
                // A forked child owns a copy of the runtime whose threads do not exist here.
                std::mem::forget((runtime, monitor));
            }
        }
    }

    /// Whether `close` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.running.lock().map_or(true, |r| r.is_none())
    }

    /// The monitor's counters and gauges, as the sidecar exports them on `/metrics`: a number
    /// per metric, or a dict by label value for metrics with a label (`reason`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for family in self.metrics.registry.gather() {
            let value = |m: &prometheus::proto::Metric| match family.get_field_type() {
                MetricType::COUNTER => Some(m.get_counter().get_value()),
                MetricType::GAUGE => Some(m.get_gauge().get_value()),
                MetricType::HISTOGRAM => Some(m.get_histogram().get_sample_count() as f64),
                _ => None,
            };
            let metrics = family.get_metric();
            let labelled = metrics.iter().any(|m| !m.get_label().is_empty());
            if labelled {
                let by = PyDict::new(py);
                for m in metrics {
                    let key: Vec<&str> = m.get_label().iter().map(|l| l.value()).collect();
                    if let Some(v) = value(m) {
                        by.set_item(key.join(","), as_number(py, v)?)?;
                    }
                }
                out.set_item(family.name(), by)?;
            } else if let Some(v) = metrics.first().and_then(value) {
                out.set_item(family.name(), as_number(py, v)?)?;
            }
        }
        Ok(out)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }
}

/// Counters as Python ints.
fn as_number(py: Python<'_>, v: f64) -> PyResult<PyObject> {
    Ok(if v.fract() == 0.0 && v.abs() < 9.0e15 {
        (v as i64).into_pyobject(py)?.into_any().unbind()
    } else {
        v.into_pyobject(py)?.into_any().unbind()
    })
}

struct Outcome {
    accepted: u64,
    rejected: u64,
    dropped: u64,
    errors: Vec<frame::FrameError>,
}

impl Monitor {
    /// `record_batch(fold_here=True)`: the rows folded on this thread through a shard.
    fn fold_rows(&self, batches: &[arrow_array::RecordBatch], plans: &[Plan]) -> Outcome {
        let schema = self.recorder.schema();
        let limits = self.recorder.limits();
        let mut out = Outcome {
            accepted: 0,
            rejected: 0,
            dropped: 0,
            errors: Vec::new(),
        };
        let shard = self
            .shards
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_else(|| self.recorder.shard());
        // Each run of up to CHUNK rows is filled as column buffers straight from the Arrow
        // arrays and folded by aims-core's `record_columns` (the same summaries, to the bit, as
        // row by row); refused rows are counted and listed as row by row.
        let mut block = frame::Block::default();
        let mut offset = 0u64;
        for (rows, plan) in batches.iter().zip(plans) {
            let mut from = 0;
            while from < rows.num_rows() {
                let to = (from + CHUNK).min(rows.num_rows());
                // One lock per run, so the windowing task gets in between runs (it takes the
                // shard's waiting ids every tick).
                let mut batch = shard.batch();
                let now = batch.now();
                let refused = block.fill(plan, schema, limits, now, (from, to));
                for (r, mut e) in refused {
                    out.rejected += 1;
                    batch.rejected(e.error.reason);
                    if out.errors.len() < MAX_LISTED_ERRORS {
                        e.row = Some(offset + (from + r) as u64);
                        out.errors.push(e);
                    }
                }
                let dictionaries = block.dictionaries();
                let columns = block.columns(schema, &dictionaries);
                let good = columns.rows as u64;
                out.accepted += good;
                match batch.record_columns(&columns, |k| plan.id_at(from + block.row_of(k))) {
                    Ok(folded) => out.dropped += good - folded,
                    // The block is made for this schema: it cannot happen; if it did, the rows
                    // are counted as dropped rather than lost silently.
                    Err(_) => out.dropped += good,
                }
                from = to;
            }
            offset += rows.num_rows() as u64;
        }
        if let Ok(mut pool) = self.shards.lock() {
            pool.push(shard);
        }
        out
    }

    fn record_rows(&self, batches: &[arrow_array::RecordBatch], plans: &[Plan]) -> Outcome {
        let schema = self.recorder.schema();
        let now = now_ms();
        let mut out = Outcome {
            accepted: 0,
            rejected: 0,
            dropped: 0,
            errors: Vec::new(),
        };
        // Events are filled in place in buffers the windowing thread handed back (their
        // strings and vectors keep their capacity): a steady stream of batches allocates
        // nothing per row.
        let fresh = || {
            self.recycler
                .take()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK))
        };
        let mut chunk: Vec<Event> = fresh();
        let mut filled = 0usize;
        let mut offset = 0u64;
        let submit = |mut chunk: Vec<Event>, filled: usize, out: &mut Outcome| {
            chunk.truncate(filled);
            if filled > 0
                && !self
                    .recorder
                    .submit(Input::Recyclable(chunk, self.recycler.clone()))
            {
                out.dropped += filled as u64;
            }
        };
        let limits = self.recorder.limits();
        // Per-class probabilities (multiclass `score_{class}` columns) travel beside their
        // events, as the HTTP ingest's do; such a table's events are not recycled.
        let mut scored: Vec<aims_core::event::Scored> = Vec::new();
        let mut scores = Vec::new();
        let submit_scored = |scored: &mut Vec<aims_core::event::Scored>, out: &mut Outcome| {
            let n = scored.len();
            if n > 0 && !self.recorder.submit(Input::Scored(std::mem::take(scored))) {
                out.dropped += n as u64;
            }
        };
        for (batch, plan) in batches.iter().zip(plans) {
            for i in 0..batch.num_rows() {
                if filled == chunk.len() {
                    chunk.push(plan.blank());
                }
                let event = &mut chunk[filled];
                let checked = plan.fill(i, schema, now, event).and_then(|()| {
                    aims_agent::ingest::lengths_ok(event, schema, limits).map_err(|error| {
                        frame::FrameError {
                            column: plan.column_of(&error.field),
                            row: None,
                            error,
                        }
                    })?;
                    plan.fill_scores(i, schema, &mut scores)
                });
                match checked {
                    Ok(true) => {
                        out.accepted += 1;
                        let event = std::mem::replace(&mut chunk[filled], plan.blank());
                        scored.push((event, Some(std::mem::take(&mut scores))));
                        if scored.len() == CHUNK {
                            submit_scored(&mut scored, &mut out);
                        }
                    }
                    Ok(false) if plan.has_class_scores() => {
                        out.accepted += 1;
                        let event = std::mem::replace(&mut chunk[filled], plan.blank());
                        scored.push((event, None));
                        if scored.len() == CHUNK {
                            submit_scored(&mut scored, &mut out);
                        }
                    }
                    Ok(false) => {
                        out.accepted += 1;
                        filled += 1;
                        if filled == CHUNK {
                            submit(std::mem::replace(&mut chunk, fresh()), filled, &mut out);
                            filled = 0;
                        }
                    }
                    Err(mut e) => {
                        out.rejected += 1;
                        self.metrics
                            .events_rejected
                            .with_label_values(&[e.error.reason.as_str()])
                            .inc();
                        if out.errors.len() < MAX_LISTED_ERRORS {
                            e.row = Some(offset + i as u64);
                            out.errors.push(e);
                        }
                    }
                }
            }
            offset += batch.num_rows() as u64;
        }
        submit(chunk, filled, &mut out);
        submit_scored(&mut scored, &mut out);
        self.metrics
            .events_received
            .inc_by(out.accepted + out.rejected);
        self.metrics.events_accepted.inc_by(out.accepted);
        if out.rejected > 0 {
            self.recorder.submit(Input::Rejected(out.rejected));
        }
        out
    }
}
