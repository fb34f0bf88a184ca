//! `aims-agent assess` and `aims-agent reference build`: the pre-deployment gate
//! (ISO/IEC 42001 A.6.2.5).
//!
//! A data scientist checks a candidate model's outputs on current data against a reference with
//! the very metrics and objectives that later watch it in production: the current dataset is
//! streamed into one window summary (memory does not grow with its rows), and the catalogue is
//! computed from that summary exactly as the collector would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::collections::BTreeMap;

use aims_core::metrics::intervals::Interval;
use aims_core::metrics::{self, Measured, Report};
use aims_core::objective::{self, Verdict};
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::ModelSchema;
use aims_core::summary::{ColumnBuffers, WindowSummary};
use anyhow::{bail, Context};
use serde::Serialize;

use crate::config::AgentConfig;
use crate::dataset::{self, CellSink, Format};

/// Arguments of `assess`.
#[derive(Debug)]
pub struct AssessArgs {
    /// Agent configuration (schema and column mapping).
    pub config: PathBuf,
    /// Reference dataset, or a profile JSON built by `reference build`.
    pub reference: PathBuf,
    /// Current dataset.
    pub current: PathBuf,
    /// Objectives to judge.
    pub objectives: Option<PathBuf>,
    /// JSON output instead of text.
    pub json: bool,
}

/// Row counts of the two datasets.
#[derive(Debug, Serialize)]
pub struct Rows {
    /// Rows behind the reference profile.
    pub reference: u64,
    /// Rows of the current dataset.
    pub current: u64,
}

/// One objective judged on the current dataset.
#[derive(Debug, Serialize)]
pub struct JudgedObjective {
    /// Objective id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The metric.
    pub metric: String,
    /// Feature / attribute / group.
    #[serde(flatten)]
    pub selector: metrics::Selector,
    /// Measured value.
    pub value: Measured,
    /// Samples behind it.
    pub samples: u64,
    /// Samples required.
    pub min_samples: u64,
    /// The target, as written.
    pub target: String,
    /// The warning condition, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// `point` or `significant`.
    pub breach: objective::Breach,
    /// How the verdict was reached (against the point value or the interval).
    pub reading: objective::Reading,
    /// Confidence interval of the value, for fairness metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Groups left out of the metric for having fewer than `min_group_samples` predictions,
    /// with their counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub too_small: BTreeMap<String, u64>,
    /// The minimum group size applied, when the objective sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_group_samples: Option<u64>,
}

/// The whole assessment, as `--format json` prints it.
#[derive(Debug, Serialize)]
pub struct Assessment {
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Hash of the reference profile used.
    pub profile_hash: String,
    /// Row counts.
    pub rows: Rows,
    /// Every metric of the catalogue.
    #[serde(flatten)]
    pub report: Report,
    /// Objectives judged, when an objectives file was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Vec<JudgedObjective>>,
}

fn load_config(path: &Path) -> anyhow::Result<AgentConfig> {
    Ok(AgentConfig::load(path)?)
}

/// Streams a dataset into a reference profile. The profile's PCA and CBPE fits take the rows in
/// order, so the dataset is folded in blocks of [`BLOCK_ROWS`] rows, merged in row order, as
/// [`profile_from_parts`] merges a table's blocks.
pub fn profile_from_dataset(config: &AgentConfig, data: &Path) -> anyhow::Result<ReferenceProfile> {
    let schema = &config.model;
    let mut builder = ProfileBuilder::new(schema);
    // A CSV row's features go from its cells straight into the builder's columns.
    dataset::fold_cells(
        data,
        schema,
        &config.columns,
        || ProfileBuilder::new(schema),
        |_| {},
        |block| builder.merge(block),
    )?;
    Ok(builder.finish())
}

/// One reference profile from builders that each took a block of consecutive rows, given in
/// row order (the Python package's blocks of a table, [`BLOCK_ROWS`] rows each, as
/// [`profile_from_dataset`] folds a file). [`ProfileBuilder::finish`] sorts the columns and
/// fits the models on several threads.
pub fn profile_from_parts(
    schema: &aims_core::schema::ModelSchema,
    parts: Vec<ProfileBuilder>,
) -> ReferenceProfile {
    let mut builder = ProfileBuilder::new(schema);
    for part in parts {
        builder.merge(part);
    }
    builder.finish()
}

/// Reads a profile JSON and checks it belongs to `schema`.
pub fn read_profile(path: &Path, schema: &ModelSchema) -> anyhow::Result<ReferenceProfile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let profile: ReferenceProfile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a reference profile", path.display()))?;
    if !profile.hash_is_valid() {
        bail!(
            "{}: hash: the profile's content does not match its hash",
            path.display()
        );
    }
    profile
        .check_against(schema)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(profile)
}

/// `aims-agent reference build`.
pub fn build_reference(config: &Path, data: &Path, output: &Path) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let profile = profile_from_dataset(&config, data)?;
    let json = serde_json::to_string_pretty(&profile)?;
    std::fs::write(output, json + "\n")
        .with_context(|| format!("{}: cannot write", output.display()))?;
    tracing::info!(rows = profile.rows, hash = %profile.hash, output = %output.display(), "reference profile written");
    Ok(())
}

/// Computes the assessment (no printing).
pub fn assess(args: &AssessArgs) -> anyhow::Result<Assessment> {
    let config = load_config(&args.config)?;
    assess_files(
        &config,
        &args.reference,
        &args.current,
        args.objectives.as_deref(),
    )
}

/// The reference profile `reference` names: a profile JSON (`.json`) or a dataset to build it
/// from.
pub fn reference_profile(
    config: &AgentConfig,
    reference: &Path,
) -> anyhow::Result<ReferenceProfile> {
    if Format::of(reference) == Format::Ndjson && reference.extension().is_some_and(|e| e == "json")
    {
        read_profile(reference, &config.model)
    } else {
        profile_from_dataset(config, reference)
    }
}

/// Rows per block of the current dataset. Float sums (log loss, Brier, the CBPE estimates, the
/// reconstruction error) depend on the order of addition, so every reader folds the current
/// dataset the same way: rows `k * BLOCK_ROWS .. (k + 1) * BLOCK_ROWS` into a fresh summary
/// each, and the block summaries merged in `k` order by [`InOrder`]. A CSV or NDJSON file
/// (read on several cores), a pandas, pyarrow or polars table (however its record batches are
/// cut) and the same rows in any of them then give bit-identical assessments.
pub const BLOCK_ROWS: usize = dataset::BLOCK_ROWS;

/// Block summaries merged in row order into the current dataset's summary: the one order of
/// accumulation of the CLI and of the Python package.
pub struct InOrder {
    summary: WindowSummary,
    error: Option<aims_core::summary::MergeError>,
}

impl InOrder {
    /// An empty summary binned on `profile`.
    pub fn new(schema: &ModelSchema, profile: &ReferenceProfile) -> InOrder {
        InOrder {
            summary: WindowSummary::new(schema, profile),
            error: None,
        }
    }

    /// Merges the next block (block 0 first); the first failure is kept for [`InOrder::finish`].
    pub fn push(&mut self, block: &WindowSummary) {
        if self.error.is_none() {
            if let Err(e) = self.summary.merge(block) {
                self.error = Some(e);
            }
        }
    }

    /// The merged summary.
    pub fn finish(self) -> Result<WindowSummary, aims_core::summary::MergeError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.summary),
        }
    }
}

/// A worker's block of the current dataset: its rows gathered by column, then their summary.
struct BlockState {
    summary: WindowSummary,
    rows: ColumnBuffers,
    error: Option<aims_core::summary::ColumnsError>,
}

/// A CSV row's features go from its cells straight into the block's column buffers (numbers
/// into the `f64` columns, categories looked up in the block's dictionaries by `&str`).
impl CellSink for BlockState {
    #[inline]
    fn numeric(&mut self, feature: usize, x: f64) {
        self.rows.numeric(feature, x);
    }
    #[inline]
    fn category(&mut self, feature: usize, category: &str) {
        self.rows.category(feature, category);
    }
    #[inline]
    fn missing(&mut self, feature: usize) {
        self.rows.missing(feature);
    }
    fn rest(&mut self, event: &aims_core::Event, scores: Option<&[f64]>) {
        self.rows.rest(event, scores);
    }
    fn event(&mut self, event: &aims_core::Event, scores: Option<&[f64]>) {
        self.rows.event(event, scores);
    }
}

/// The summary of the current dataset at `path` (CSV or NDJSON), binned on `profile`, and its
/// row count; folded in blocks of [`BLOCK_ROWS`] rows.
pub fn current_summary(
    config: &AgentConfig,
    profile: &ReferenceProfile,
    path: &Path,
) -> anyhow::Result<(WindowSummary, u64)> {
    let schema = &config.model;
    let mut merged = InOrder::new(schema, profile);
    // Each block's rows are gathered column by column and recorded at once on the worker
    // (`WindowSummary::record_columns`: the summary `record_scored` of each row in order
    // gives, to the bit).
    let mut failed = None;
    // A block's column buffers, once recorded, are cleared and handed to the next block (the
    // worker's own next one, as `end` runs just before `init`): no block grows its columns
    // from empty again.
    let spare = std::sync::Mutex::new(Vec::<ColumnBuffers>::new());
    let rows = dataset::fold_cells(
        path,
        schema,
        &config.columns,
        || BlockState {
            summary: WindowSummary::new(schema, profile),
            rows: spare
                .lock()
                .ok()
                .and_then(|mut spare| spare.pop())
                .unwrap_or_else(|| ColumnBuffers::new(schema)),
            error: None,
        },
        |s| {
            let dictionaries = s.rows.dictionaries();
            let block = s.rows.columns(&dictionaries);
            if let Err(e) = s.summary.record_columns(schema, profile, &block) {
                s.error.get_or_insert(e);
            }
            drop(dictionaries);
            let mut rows = std::mem::replace(&mut s.rows, ColumnBuffers::new(schema));
            rows.clear();
            if let Ok(mut spare) = spare.lock() {
                spare.push(rows);
            }
        },
        |block| {
            if let Some(e) = block.error {
                failed.get_or_insert(e);
            }
            merged.push(&block.summary)
        },
    )?;
    if let Some(e) = failed {
        bail!(
            "{}: the rows do not fit the schema's columns: {e}",
            path.display()
        );
    }
    Ok((merged.finish()?, rows))
}

/// The assessment of the dataset at `current` against `reference` (a profile or a dataset),
/// with a loaded configuration.
pub fn assess_files(
    config: &AgentConfig,
    reference: &Path,
    current: &Path,
    objectives: Option<&Path>,
) -> anyhow::Result<Assessment> {
    let profile = reference_profile(config, reference)?;
    let (summary, rows) = current_summary(config, &profile, current)?;
    assessment(config, profile, &summary, rows, objectives)
}

/// The assessment of a current dataset already folded into `summary` (binned on `profile`),
/// judged against the objectives file at `objectives` when given. Embedders that read data
/// their own way (the Python package reads Arrow tables) share this with the CLI.
pub fn assessment(
    config: &AgentConfig,
    profile: ReferenceProfile,
    summary: &WindowSummary,
    current: u64,
    objectives: Option<&Path>,
) -> anyhow::Result<Assessment> {
    let schema = &config.model;
    let report = metrics::report(schema, &profile, summary, None);

    let objectives = match objectives {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let file = objective::parse(&text, std::slice::from_ref(schema)).map_err(|errors| {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}:{e}", path.display()))
                    .collect();
                anyhow::anyhow!("{}", lines.join("\n"))
            })?;
            let judged = file
                .objectives
                .iter()
                .filter(|o| o.model == schema.name && o.metric != objective::NO_DATA_METRIC)
                .map(|o| {
                    let m = o.measure(schema, summary, &report).map_err(|e| {
                        anyhow::anyhow!("{}: objective {}: {e}", path.display(), o.id)
                    })?;
                    let judgement = o.judge_measurement(&m);
                    Ok(JudgedObjective {
                        id: o.id.clone(),
                        title: o.title.clone(),
                        metric: o.metric.clone(),
                        selector: o.selector.clone(),
                        verdict: judgement.verdict,
                        breach: o.breach,
                        reading: judgement.reading,
                        interval: m.interval,
                        too_small: m.too_small,
                        min_group_samples: o.min_group_samples,
                        value: m.value,
                        samples: m.samples,
                        min_samples: o.min_samples,
                        target: o.target.to_string(),
                        warning: o.warning.map(|w| w.to_string()),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Some(judged)
        }
    };
    Ok(Assessment {
        model: schema.name.clone(),
        model_version: schema.version.clone(),
        profile_hash: profile.hash.clone(),
        rows: Rows {
            reference: profile.rows,
            current,
        },
        report,
        objectives,
    })
}

/// `aims-agent assess`: prints the assessment; exit 1 when an objective is breached.
pub fn run(args: &AssessArgs) -> anyhow::Result<ExitCode> {
    let a = assess(args)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &a)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &a)?;
    }
    let breached = a
        .objectives
        .iter()
        .flatten()
        .any(|o| o.verdict == Verdict::Breached);
    Ok(if breached {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn show_interval(i: &Option<Interval>) -> String {
    i.map(|i| format!(" [{:.4}, {:.4}] at {:.4}", i.lower, i.upper, i.confidence))
        .unwrap_or_default()
}

fn show(m: &Measured) -> String {
    match m {
        Measured::Value(v) => format!("{v:.4}"),
        Measured::Undefined(reason) => format!("n/a ({reason})"),
    }
}

fn write_text(out: &mut impl Write, a: &Assessment) -> std::io::Result<()> {
    let r = &a.report;
    writeln!(
        out,
        "Model {} {}: reference {} rows (profile {}), current {} rows",
        a.model,
        a.model_version,
        a.rows.reference,
        &a.profile_hash[..12.min(a.profile_hash.len())],
        a.rows.current
    )?;
    writeln!(out, "\nDrift (Evidently's default method per feature)")?;
    for (name, d) in &r.drift {
        let verdict = match d.drifted {
            Some(true) => "DRIFT",
            Some(false) => "ok",
            None => "n/a",
        };
        writeln!(
            out,
            "  {name:<24} {verdict:<6} {:?} {}  psi {}  js {}",
            d.default_method,
            show(&d.score),
            show(&d.psi),
            show(&d.jensen_shannon)
        )?;
    }
    let dd = &r.dataset_drift;
    writeln!(
        out,
        "  dataset drift: {} of {} features drifted (share {}) -> {}",
        dd.drifted_features,
        dd.features,
        show(&dd.share),
        if dd.drifted == Some(true) {
            "DRIFT"
        } else {
            "no dataset drift"
        }
    )?;
    let p = &r.performance;
    writeln!(
        out,
        "\nPerformance: {} events, {} labelled (coverage {}), error rate {}",
        p.events,
        p.labelled,
        show(&p.label_coverage),
        show(&p.error_rate)
    )?;
    if let Some(c) = &p.classification {
        writeln!(
            out,
            "  accuracy {}  precision {}  recall {}  f1 {}  roc_auc {}  log_loss {}  brier {}",
            show(&c.accuracy),
            show(&c.precision),
            show(&c.recall),
            show(&c.f1),
            show(&c.roc_auc),
            show(&c.log_loss),
            show(&c.brier)
        )?;
    }
    if let Some(g) = &p.regression {
        writeln!(
            out,
            "  mae {}  rmse {}  mape {}  r2 {}",
            show(&g.mae),
            show(&g.rmse),
            show(&g.mape),
            show(&g.r2)
        )?;
    }
    if let Some(e) = &r.estimated {
        let band = |x: &aims_core::cbpe::Estimate| match (x.lower, x.upper) {
            (Some(l), Some(u)) => format!("{:.4} [{l:.4}, {u:.4}]", x.value),
            _ => format!("{:.4}", x.value),
        };
        let est = &e.estimates;
        writeln!(
            out,
            "  estimated without labels ({} rows, ±3 SE): accuracy {}  precision {}  recall {}  f1 {}  roc_auc {}",
            est.rows,
            band(&est.accuracy),
            band(&est.precision),
            band(&est.recall),
            band(&est.f1),
            est.roc_auc.as_ref().map_or_else(|| "n/a".to_owned(), band)
        )?;
        writeln!(
            out,
            "  method: {}{}",
            e.method,
            if e.calibrated {
                ""
            } else {
                " (the reference scores needed no calibration)"
            }
        )?;
    }
    if let Some(m) = &r.reconstruction {
        writeln!(
            out,
            "\nMultivariate drift: reconstruction error {} (thresholds {:.4} to {:.4}, {} components) -> {}",
            show(&m.value),
            m.lower_threshold,
            m.upper_threshold,
            m.components,
            if m.alert { "DRIFT" } else { "ok" }
        )?;
        writeln!(out, "  method: {}", m.method)?;
    }
    writeln!(out, "\nFairness")?;
    for (attr, f) in &r.fairness {
        writeln!(out, "  {attr}: demographic parity ratio {}  difference {}  equalized odds difference {}  equal opportunity difference {}  disparate impact {}", show(&f.demographic_parity_ratio), show(&f.demographic_parity_difference), show(&f.equalized_odds_difference), show(&f.equal_opportunity_difference), show(&f.disparate_impact))?;
        let i = &f.intervals;
        writeln!(
            out,
            "    intervals ({} confidence, Bonferroni over groups): dp ratio{}  dp difference{}  disparate impact{}",
            f.confidence,
            show_interval(&i.demographic_parity_ratio.as_ref().map(|p| p.interval)),
            show_interval(&i.demographic_parity_difference.as_ref().map(|p| p.interval)),
            show_interval(&i.disparate_impact.as_ref().map(|p| p.interval)),
        )?;
        for (group, g) in &f.groups {
            writeln!(
                out,
                "    {group:<10} n {:<8} selection rate {}{}  tpr {}{}  fpr {}{}",
                g.n,
                show(&g.selection_rate),
                show_interval(&g.selection_rate_interval),
                show(&g.tpr),
                show_interval(&g.tpr_interval),
                show(&g.fpr),
                show_interval(&g.fpr_interval),
            )?;
        }
        for (group, n) in &f.too_small {
            writeln!(
                out,
                "    {group:<10} too small: {n} predictions (< {}), left out of the parity metrics",
                f.min_group_samples
            )?;
        }
    }
    writeln!(
        out,
        "\nData quality: rejected rate {}",
        show(&r.data_quality.rejected_rate)
    )?;
    for (name, q) in &r.data_quality.features {
        let extra = q
            .out_of_range_rate
            .as_ref()
            .map(|m| format!("out of range {}", show(m)))
            .or_else(|| {
                q.unseen_category_rate
                    .as_ref()
                    .map(|m| format!("unseen categories {}", show(m)))
            })
            .unwrap_or_default();
        writeln!(
            out,
            "  {name:<24} missing {}  {extra}",
            show(&q.missing_rate)
        )?;
    }
    writeln!(
        out,
        "\nLatency (ms): p50 {}  p90 {}  p99 {}",
        show(&r.latency.p50),
        show(&r.latency.p90),
        show(&r.latency.p99)
    )?;
    if let Some(objectives) = &a.objectives {
        writeln!(out, "\nObjectives")?;
        for o in objectives {
            let on = [
                &o.selector.feature,
                &o.selector.attribute,
                &o.selector.group,
                &o.selector.class,
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join("/");
            let on = if on.is_empty() {
                String::new()
            } else {
                format!("[{on}]")
            };
            let verdict = serde_json::to_value(o.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_uppercase))
                .unwrap_or_default();
            writeln!(
                out,
                "  {verdict:<18} {:<32} {}{on} = {}{} (target {}, {} samples, reading {:?})",
                o.id,
                o.metric,
                show(&o.value),
                show_interval(&o.interval),
                o.target,
                o.samples,
                o.reading
            )?;
            for (group, n) in &o.too_small {
                writeln!(out, "      too small: {group} ({n} predictions)")?;
            }
        }
    }
    Ok(())
}
