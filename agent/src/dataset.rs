//! Reading datasets (CSV or NDJSON) into validated events, one row at a time.
//!
//! One thread splits the file into blocks of [`BLOCK_ROWS`] records and hands them, bounded, to
//! worker threads (one per core), each folding its rows into a state: a profile builder or a
//! window summary. Memory therefore does not grow with the file, and both cores work on a large
//! dataset. Every block is folded into a fresh state and the states are handed over in row
//! order ([`fold_blocks`]), so that float sums and the profile's fits take the rows in one
//! order whatever the number of cores, and exactly as for a table split into the same blocks
//! (the Python package's Arrow tables). A bad row stops the read with an error naming the file,
//! the line and the field. CSV is read through a column plan computed once from the header.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use aims_core::event::{parse_number, parse_timestamp, EventError, RawEvent, RejectReason};
use aims_core::schema::{FeatureKind, ModelSchema, Task};
use aims_core::{Event, FeatureValue, Prediction};
use indicatif::{ProgressBar, ProgressStyle};
use thiserror::Error;

use crate::config::ColumnsConfig;
use crate::ingest::FastDecoder;
use aims_core::event::Scored;

/// A dataset that cannot be read, naming where.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The CSV header lacks a column the schema needs.
    #[error("{path}: line 1: column {column:?} ({purpose}) is not in the header")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column name.
        column: String,
        /// What it was for.
        purpose: String,
    },
    /// A row is malformed or fails validation.
    #[error("{path}: line {line}: {source}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The field and the reason.
        source: EventError,
    },
}

/// The dataset formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON event per line, in the agent's event shape.
    Ndjson,
}

impl Format {
    /// The format of `path`: `.ndjson` / `.jsonl` / `.json` are NDJSON, anything else CSV.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => Format::Ndjson,
            _ => Format::Csv,
        }
    }
}

fn progress(len: u64) -> ProgressBar {
    // indicatif draws only when stderr is a terminal, so pipes and CI logs stay clean.
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style);
    }
    bar
}

/// Rows per block: the unit of work handed to a worker, and the unit of accumulation of
/// [`fold_blocks`] (rows `k * BLOCK_ROWS ..` are folded into a fresh state, and the states are
/// merged in `k` order). Changing it changes the last bits of float sums, never a count.
pub const BLOCK_ROWS: usize = 8192;

/// Batches in flight per worker: bounds memory whatever the file's size.
const IN_FLIGHT: usize = 2;

/// Bytes of CSV read at a time.
const CHUNK: usize = 1 << 20;

/// Work for a worker: one block (its index in the file, from 0), as whole CSV records in bytes
/// with the 1-based line number they start at, or as NDJSON lines.
struct Batch {
    index: usize,
    rows: Rows,
}

enum Rows {
    /// The block is `bytes[..len]`; the rest of `bytes` is room the splitter reads into once
    /// the buffer comes back (zeroed once, when first allocated, and never truncated).
    Csv {
        first_line: u64,
        bytes: Vec<u8>,
        len: usize,
    },
    /// As `Csv`: the lines are `bytes[..len]`.
    Json {
        first_line: u64,
        bytes: Vec<u8>,
        len: usize,
    },
}

/// Reads `path`, validating each row against `schema`, folds each block of [`BLOCK_ROWS`] rows
/// into a fresh state made by `init` with `step`, and hands the blocks' states to `merge` in
/// row order (block 0 first) while the read goes on: the one order of accumulation, whatever
/// the number of cores. `step` also gets the per-class probabilities of each row's prediction,
/// when it has them (NDJSON `prediction.scores`, or the CSV columns
/// `{columns.class_score_prefix}{class}`), checked by `ModelSchema::check_class_scores`.
/// Returns the number of rows read.
pub fn fold_blocks<S: Send>(
    path: &Path,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    init: impl Fn() -> S + Sync,
    step: impl Fn(&mut S, &Event, Option<&[f64]>) + Sync,
    merge: impl FnMut(S) + Send,
) -> Result<u64, DatasetError> {
    fold_blocks_ended(path, schema, columns, init, step, |_| {}, merge)
}

/// [`fold_blocks`], with `end` called by the worker on each block's state once its last row
/// is stepped, before the state is handed to `merge`: where a state gathers a block's rows
/// (column by column, say) and folds them at once, on the worker's core.
pub fn fold_blocks_ended<S: Send>(
    path: &Path,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    init: impl Fn() -> S + Sync,
    step: impl Fn(&mut S, &Event, Option<&[f64]>) + Sync,
    end: impl Fn(&mut S) + Sync,
    merge: impl FnMut(S) + Send,
) -> Result<u64, DatasetError> {
    fold_in_order(path, schema, columns, init, &ByEvent(step), end, merge)
}

/// [`fold_blocks_ended`] for a state that takes a row's features one cell at a time
/// ([`CellSink`]): a CSV row's numbers and categories go straight from its cells into the
/// state, with no [`Event`] in between for them; the rest of the row (time, groups,
/// prediction, label, latency, class probabilities) comes as an event without features. An
/// NDJSON line still comes as a whole event ([`CellSink::event`]). The same validation, in
/// the same order, as for [`fold_blocks`]: a bad row is named by line and field alike.
pub fn fold_cells<S: CellSink + Send>(
    path: &Path,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    init: impl Fn() -> S + Sync,
    end: impl Fn(&mut S) + Sync,
    merge: impl FnMut(S) + Send,
) -> Result<u64, DatasetError> {
    fold_in_order(path, schema, columns, init, &ByCell, end, merge)
}

/// A state that takes a row's features one cell at a time; see [`fold_cells`]. For each row,
/// every feature gets exactly one call of [`numeric`](Self::numeric),
/// [`category`](Self::category) or [`missing`](Self::missing), in schema order, then
/// [`rest`](Self::rest) ends the row; or the row comes whole through [`event`](Self::event).
/// A row that fails validation stops the read, so a state never sees half a row's calls
/// followed by another row's.
pub trait CellSink {
    /// Numeric feature `feature`'s validated (finite) value.
    fn numeric(&mut self, feature: usize, x: f64);
    /// Numeric feature `feature`'s value when its cell is a plain decimal, given by its parts
    /// (see [`aims_core::decimal::plain_parts`]): by default
    /// [`numeric`](Self::numeric) of [`aims_core::decimal::value`] of them.
    #[inline]
    fn decimal(&mut self, feature: usize, m: u64, fraction: usize, negative: bool) {
        self.numeric(feature, aims_core::decimal::value(m, fraction, negative));
    }
    /// Categorical feature `feature`'s value (trimmed, not empty).
    fn category(&mut self, feature: usize, category: &str);
    /// Feature `feature` has no value.
    fn missing(&mut self, feature: usize);
    /// The rest of the row: `event` holds every field but its features (left empty), and
    /// `scores` the per-class probabilities when the row has them.
    fn rest(&mut self, event: &Event, scores: Option<&[f64]>);
    /// A whole validated row (an NDJSON line).
    fn event(&mut self, event: &Event, scores: Option<&[f64]>);
}

/// The reference profile's builder takes a CSV row's features cell by cell.
impl CellSink for aims_core::profile::ProfileBuilder {
    #[inline]
    fn numeric(&mut self, feature: usize, x: f64) {
        self.add_numeric(feature, x);
    }
    #[inline]
    fn decimal(&mut self, feature: usize, m: u64, fraction: usize, negative: bool) {
        self.add_decimal(feature, m, fraction, negative);
    }
    #[inline]
    fn category(&mut self, feature: usize, category: &str) {
        self.add_category(feature, category);
    }
    #[inline]
    fn missing(&mut self, feature: usize) {
        self.add_missing(feature);
    }
    fn rest(&mut self, event: &Event, _: Option<&[f64]>) {
        self.add_rest(event);
    }
    fn event(&mut self, event: &Event, _: Option<&[f64]>) {
        self.add(event);
    }
}

/// Column buffers (the current rows of a block) take a CSV row's features cell by cell.
impl CellSink for aims_core::summary::ColumnBuffers {
    #[inline]
    fn numeric(&mut self, feature: usize, x: f64) {
        self.push_numeric(feature, x);
    }
    #[inline]
    fn category(&mut self, feature: usize, category: &str) {
        self.push_category(feature, category);
    }
    #[inline]
    fn missing(&mut self, feature: usize) {
        self.push_missing(feature);
    }
    fn rest(&mut self, event: &Event, scores: Option<&[f64]>) {
        self.push_rest(event, scores);
    }
    fn event(&mut self, event: &Event, scores: Option<&[f64]>) {
        self.push(event, scores);
    }
}

/// How a worker hands a row to its state: as an event ([`ByEvent`]) or cell by cell
/// ([`ByCell`]).
trait Step<S>: Sync {
    /// A CSV row: validated by `plan` and handed to `state`.
    fn csv_row(
        &self,
        plan: &Plan,
        cells: &[&str],
        schema: &ModelSchema,
        state: &mut S,
        event: &mut Event,
        scores: &mut Vec<f64>,
    ) -> Result<(), EventError>;
    /// A whole validated row.
    fn event(&self, state: &mut S, event: &Event, scores: Option<&[f64]>);
}

/// Rows as events, to a closure.
struct ByEvent<F>(F);

impl<S, F: Fn(&mut S, &Event, Option<&[f64]>) + Sync> Step<S> for ByEvent<F> {
    #[inline]
    fn csv_row(
        &self,
        plan: &Plan,
        cells: &[&str],
        schema: &ModelSchema,
        state: &mut S,
        event: &mut Event,
        scores: &mut Vec<f64>,
    ) -> Result<(), EventError> {
        // The features are filled apart from the rest of the event (no allocation: a `Vec`
        // taken and put back), as `ByCell` fills them into its state.
        let mut features = EventFeatures(std::mem::take(&mut event.features));
        let filled = plan.fill(cells, schema, &mut features, event, scores);
        event.features = features.0;
        let scored = filled?;
        (self.0)(state, event, scored.then_some(scores.as_slice()));
        Ok(())
    }
    #[inline]
    fn event(&self, state: &mut S, event: &Event, scores: Option<&[f64]>) {
        (self.0)(state, event, scores)
    }
}

/// Rows cell by cell, to a [`CellSink`].
struct ByCell;

impl<S: CellSink> Step<S> for ByCell {
    #[inline]
    fn csv_row(
        &self,
        plan: &Plan,
        cells: &[&str],
        schema: &ModelSchema,
        state: &mut S,
        event: &mut Event,
        scores: &mut Vec<f64>,
    ) -> Result<(), EventError> {
        event.features.clear();
        let scored = plan.fill(cells, schema, &mut SinkFeatures(state), event, scores)?;
        state.rest(event, scored.then_some(scores.as_slice()));
        Ok(())
    }
    #[inline]
    fn event(&self, state: &mut S, event: &Event, scores: Option<&[f64]>) {
        state.event(event, scores)
    }
}

/// Where [`Plan::fill`] puts a row's features, feature by feature in schema order.
trait FeatureSink {
    /// Makes room for a row of `features` features (before the first one is given).
    fn resize(&mut self, _features: usize) {}
    fn numeric(&mut self, feature: usize, x: f64);
    /// A plain decimal's parts, as [`CellSink::decimal`].
    #[inline]
    fn decimal(&mut self, feature: usize, m: u64, fraction: usize, negative: bool) {
        self.numeric(feature, aims_core::decimal::value(m, fraction, negative));
    }
    fn category(&mut self, feature: usize, category: &str);
    fn missing(&mut self, feature: usize);
}

/// An event's features (their buffers reused row after row: no allocation per row).
struct EventFeatures(Vec<FeatureValue>);

impl FeatureSink for EventFeatures {
    fn resize(&mut self, features: usize) {
        self.0.resize(features, FeatureValue::Missing);
    }
    #[inline]
    fn numeric(&mut self, feature: usize, x: f64) {
        self.0[feature] = FeatureValue::Numeric(x);
    }
    #[inline]
    fn category(&mut self, feature: usize, category: &str) {
        match &mut self.0[feature] {
            FeatureValue::Categorical(buf) => {
                buf.clear();
                buf.push_str(category);
            }
            other => *other = FeatureValue::Categorical(category.to_owned()),
        }
    }
    #[inline]
    fn missing(&mut self, feature: usize) {
        self.0[feature] = FeatureValue::Missing;
    }
}

/// A [`CellSink`] state.
struct SinkFeatures<'a, S>(&'a mut S);

impl<S: CellSink> FeatureSink for SinkFeatures<'_, S> {
    #[inline]
    fn numeric(&mut self, feature: usize, x: f64) {
        self.0.numeric(feature, x);
    }
    #[inline]
    fn decimal(&mut self, feature: usize, m: u64, fraction: usize, negative: bool) {
        self.0.decimal(feature, m, fraction, negative);
    }
    #[inline]
    fn category(&mut self, feature: usize, category: &str) {
        self.0.category(feature, category);
    }
    #[inline]
    fn missing(&mut self, feature: usize) {
        self.0.missing(feature);
    }
}

/// [`fold_blocks_ended`] with the rows handed over by `step`.
fn fold_in_order<S: Send>(
    path: &Path,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    init: impl Fn() -> S + Sync,
    step: &impl Step<S>,
    end: impl Fn(&mut S) + Sync,
    mut merge: impl FnMut(S) + Send,
) -> Result<u64, DatasetError> {
    let (tx, rx) = std::sync::mpsc::channel::<(usize, S)>();
    std::thread::scope(|scope| {
        // Blocks finish out of order (one per worker in flight): the few that come early wait
        // here for their turn.
        let merger = scope.spawn(move || {
            let mut early = std::collections::BTreeMap::new();
            let mut next = 0usize;
            for (index, state) in rx {
                early.insert(index, state);
                while let Some(state) = early.remove(&next) {
                    merge(state);
                    next += 1;
                }
            }
        });
        let tx = std::sync::Mutex::new(tx);
        let done = |index: usize, state: &mut S| {
            end(state);
            let block = std::mem::replace(state, init());
            // The merger only stops when every sender is gone.
            let _ = tx.lock().map(|tx| tx.send((index, block)));
        };
        let result = fold_with(path, schema, columns, &init, step, &done);
        drop(tx);
        merger
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        result.map(|(_, rows)| rows)
    })
}

/// The read behind [`fold_blocks`]: `block_done` is called by a worker after each block with
/// the block's index and the worker's state.
fn fold_with<S: Send>(
    path: &Path,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    init: &(impl Fn() -> S + Sync),
    step: &impl Step<S>,
    block_done: &(impl Fn(usize, &mut S) + Sync),
) -> Result<(Vec<S>, u64), DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len);
    bar.set_message(path.display().to_string());
    let reader = bar.wrap_read(file);
    let format = Format::of(path);
    let mut reader = BufReader::with_capacity(CHUNK, reader);
    let plan = match format {
        Format::Csv => {
            let (header, lines) = read_header(path, &mut reader)?;
            Some((Plan::new(path, &header, schema, columns)?, lines))
        }
        Format::Ndjson => None,
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let fast = &FastDecoder::new(schema);
    // Block buffers (CSV and NDJSON) go back to the splitter once read, to be read into again.
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let result = std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(IN_FLIGHT);
            senders.push(tx);
            let plan = plan.as_ref().map(|(p, _)| p);
            let recycle = recycle.clone();
            handles.push(scope.spawn(move || -> Result<(S, u64), DatasetError> {
                let mut state = init();
                let mut rows = 0u64;
                let mut scores = Vec::new();
                let mut event = Event::blank(0);
                for batch in rx {
                    match (batch.rows, plan) {
                        (
                            Rows::Csv {
                                first_line,
                                bytes,
                                len,
                            },
                            Some(plan),
                        ) => {
                            let mut each = |line: u64, cells: &[&str]| {
                                step.csv_row(
                                    plan,
                                    cells,
                                    schema,
                                    &mut state,
                                    &mut event,
                                    &mut scores,
                                )
                                .map_err(|e| row_error(path, line, e))?;
                                rows += 1;
                                Ok(())
                            };
                            for_each_record(path, first_line, &bytes[..len], &mut each)?;
                            // The splitter may have ended (an error): the buffer is then freed.
                            let _ = recycle.send(bytes);
                        }
                        (
                            Rows::Json {
                                first_line,
                                bytes,
                                len,
                            },
                            _,
                        ) => {
                            for (line, text) in json_lines(first_line, &bytes[..len]) {
                                if fast.decode_into(text, 0, &mut event) {
                                    step.event(&mut state, &event, None);
                                } else {
                                    let (event, scores) = parse_json(text, schema)
                                        .map_err(|e| row_error(path, line, e))?;
                                    step.event(&mut state, &event, scores.as_deref());
                                }
                                rows += 1;
                            }
                            let _ = recycle.send(bytes);
                        }
                        (Rows::Csv { .. }, None) => unreachable!("CSV batches come with a plan"),
                    }
                    block_done(batch.index, &mut state);
                }
                Ok((state, rows))
            }));
        }
        drop(recycle);
        let split = match &plan {
            Some((_, header_lines)) => split_csv(path, reader, *header_lines, &senders, &recycled),
            None => split_ndjson(path, reader, &senders, &recycled),
        };
        drop(senders);
        let mut states = Vec::with_capacity(workers);
        let mut rows = 0;
        let mut first_error: Option<DatasetError> = None;
        for h in handles {
            match h.join() {
                Ok(Ok((state, n))) => {
                    states.push(state);
                    rows += n;
                }
                Ok(Err(e)) => {
                    if first_error
                        .as_ref()
                        .is_none_or(|f| line_of(&e) < line_of(f))
                    {
                        first_error = Some(e);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        match (first_error, split) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok((states, rows)),
        }
    });
    bar.finish_and_clear();
    result
}

/// Calls `each` with every CSV record of a block of whole records and the 1-based line it
/// starts on. A block without quotes or carriage returns (the common case) is split on
/// newlines and commas directly, after one UTF-8 check of the whole block; any other block
/// goes through the csv crate's reader, as all of them once did. Both give the same cells,
/// and both skip empty lines.
fn for_each_record(
    path: &Path,
    first_line: u64,
    bytes: &[u8],
    each: &mut impl FnMut(u64, &[&str]) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    let plain = memchr::memchr2(b'"', b'\r', bytes).is_none();
    if let (true, Ok(text)) = (plain, std::str::from_utf8(bytes)) {
        let mut cells: Vec<&str> = Vec::new();
        // Lines as `str::split('\n')` gives them (the last one after the final newline
        // included), their ends found by the memchr crate's vector scan.
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        let mut line_start = 0;
        for (k, end) in ends.enumerate() {
            let line = &text[line_start..end];
            line_start = end + 1;
            if line.is_empty() {
                continue;
            }
            cells.clear();
            split_cells(line, &mut cells);
            each(first_line + k as u64, &cells)?;
        }
        return Ok(());
    }
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    // The csv reader's own line count names the line before a record that follows a CRLF or
    // an empty line (it consumes those terminators as it starts the record): count newlines
    // up to the record's first byte instead. `counted` is (byte offset, its line).
    let mut counted = (0usize, first_line);
    loop {
        let from = (csv.position().byte() as usize).min(bytes.len());
        let start = from
            + bytes[from..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        let line = counted.1 + memchr::memchr_iter(b'\n', &bytes[counted.0..start]).count() as u64;
        counted = (start, line);
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                return Err(row_error(
                    path,
                    line,
                    EventError::new("row", RejectReason::Malformed, e.to_string()),
                ))
            }
        }
        let cells: Vec<&str> = record.iter().collect();
        each(line, &cells)?;
    }
}

/// Appends `line`'s comma-separated cells to `cells`, as `line.split(',')` gives them. Cells
/// are short, so commas are found eight bytes at a time (a word's commas as a bit mask, each
/// taken by its trailing zeros) rather than by a memchr call per comma or a branch per byte.
#[inline]
fn split_cells<'a>(line: &'a str, cells: &mut Vec<&'a str>) {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const COMMAS: u64 = 0x2C2C_2C2C_2C2C_2C2C;
    let (words, tail) = line.as_bytes().as_chunks::<8>();
    let mut start = 0;
    for (w, word) in words.iter().enumerate() {
        // Zero where a byte is a comma; then the high bit of exactly those bytes (the low
        // seven bits added first, so no carry crosses from one byte into the next).
        let x = u64::from_le_bytes(*word) ^ COMMAS;
        let mut commas = !(((x & LOW) + LOW) | x | LOW);
        while commas != 0 {
            let i = w * 8 + (commas.trailing_zeros() / 8) as usize;
            cells.push(&line[start..i]);
            start = i + 1;
            commas &= commas - 1;
        }
    }
    let base = words.len() * 8;
    for (k, &b) in tail.iter().enumerate() {
        if b == b',' {
            cells.push(&line[start..base + k]);
            start = base + k + 1;
        }
    }
    cells.push(&line[start..]);
}

fn line_of(e: &DatasetError) -> u64 {
    match e {
        DatasetError::Row { line, .. } => *line,
        _ => 0,
    }
}

fn row_error(path: &Path, line: u64, source: EventError) -> DatasetError {
    DatasetError::Row {
        path: path.to_owned(),
        line,
        source,
    }
}

/// One NDJSON line into a validated event, by aims-core's general path. The common
/// well-formed event goes through the HTTP ingest's fast decoder first (straight into the
/// worker's reused `Event`, no JSON tree); anything it does not take as plainly valid, every
/// bad line and every line with class probabilities included, comes here, so rejections and
/// their messages come from one place.
fn parse_json(text: &[u8], schema: &ModelSchema) -> Result<Scored, EventError> {
    let raw: RawEvent = serde_json::from_slice(text)
        .map_err(|e| EventError::new("line", RejectReason::InvalidJson, e.to_string()))?;
    schema.validate_scored(raw, 0)
}

/// Whether an NDJSON line holds no event: nothing but whitespace (Unicode's, as `str::trim`
/// has it), as `BufRead::lines` and `trim` once decided.
fn blank(line: &[u8]) -> bool {
    match line.first() {
        None => true,
        Some(b) if b.is_ascii_graphic() => false,
        Some(_) => std::str::from_utf8(line).is_ok_and(|t| t.trim().is_empty()),
    }
}

/// The event lines of a block of whole NDJSON lines, with their 1-based line numbers: split
/// on newlines, a carriage return before one dropped (as `BufRead::lines` drops it), blank
/// lines skipped.
fn json_lines(first_line: u64, bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(move |(k, line)| {
            (
                first_line + k as u64,
                line.strip_suffix(b"\r").unwrap_or(line),
            )
        })
        .filter(|(_, line)| !blank(line))
}

/// Sends block `index` to its worker (round-robin, so each worker takes its blocks in order);
/// a closed worker (it met a bad row) stops the read.
fn dispatch(senders: &[SyncSender<Batch>], index: usize, rows: Rows) -> bool {
    senders[index % senders.len()]
        .send(Batch { index, rows })
        .is_ok()
}

/// Finds where CSV records end, counting them as the csv reader yields them: a record ends at a
/// newline outside quotes (RFC 4180 escapes a quote by doubling it, so quote parity alone tells
/// whether a newline is inside a field), and an empty line is no record.
#[derive(Debug, Default)]
struct RecordEnds {
    /// Where scanning resumes: just after the last newline seen.
    pos: usize,
    /// Where the current record starts.
    record_start: usize,
    in_quotes: bool,
    /// Records ended so far.
    records: usize,
}

impl RecordEnds {
    /// Scans `bytes` on from where the last call stopped; returns the index of the newline that
    /// ends record number `want` (1-based), or None when `bytes` holds fewer.
    fn find(&mut self, bytes: &[u8], want: usize) -> Option<usize> {
        let from = self.pos;
        // Without a quote ahead (the common case) every newline ends a record: no quote count
        // per line.
        let unquoted = !self.in_quotes && memchr::memchr(b'"', &bytes[from..]).is_none();
        for nl in memchr::memchr_iter(b'\n', &bytes[from..]).map(|i| i + from) {
            if !unquoted && memchr::memchr_iter(b'"', &bytes[self.pos..nl]).count() % 2 == 1 {
                self.in_quotes = !self.in_quotes;
            }
            self.pos = nl + 1;
            if self.in_quotes {
                continue;
            }
            let record = &bytes[self.record_start..nl];
            self.record_start = nl + 1;
            if !record.is_empty() && record != b"\r" {
                self.records += 1;
                if self.records == want {
                    return Some(nl);
                }
            }
        }
        None
    }
}

/// Reads the header record; returns it and the number of lines it spans.
fn read_header(
    path: &Path,
    reader: &mut impl BufRead,
) -> Result<(csv::StringRecord, u64), DatasetError> {
    let mut bytes = Vec::new();
    let mut lines = 0;
    loop {
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| DatasetError::Io {
                path: path.to_owned(),
                source,
            })?;
        lines += 1;
        let quotes = bytes.iter().filter(|&&b| b == b'"').count();
        if n == 0 || quotes % 2 == 0 {
            break;
        }
    }
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice());
    let mut header = csv::StringRecord::new();
    match csv.read_record(&mut header) {
        Ok(true) => Ok((header, lines)),
        Ok(false) => Err(row_error(
            path,
            1,
            EventError::new("header", RejectReason::Malformed, "the file is empty"),
        )),
        Err(e) => Err(row_error(
            path,
            1,
            EventError::new("header", RejectReason::Malformed, e.to_string()),
        )),
    }
}

/// Cuts the CSV body into blocks of [`BLOCK_ROWS`] whole records and hands them out.
fn split_csv(
    path: &Path,
    mut reader: impl Read,
    header_lines: u64,
    senders: &[SyncSender<Batch>],
    recycled: &Receiver<Vec<u8>>,
) -> Result<(), DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let (mut index, mut line) = (0usize, header_lines + 1);
    let mut pending = Pending::new();
    let mut ends = RecordEnds::default();
    loop {
        let at_end = pending.read(&mut reader).map_err(io)?;
        loop {
            let cut = match ends.find(pending.bytes(), BLOCK_ROWS) {
                Some(cut) => cut + 1,
                None if at_end && pending.len > 0 => pending.len,
                None if at_end => return Ok(()),
                None => break,
            };
            let (block, len) = pending.take(cut, recycled.try_recv().ok());
            ends = RecordEnds::default();
            let first_line = line;
            line += memchr::memchr_iter(b'\n', &block[..len]).count() as u64;
            let rows = Rows::Csv {
                first_line,
                bytes: block,
                len,
            };
            if !dispatch(senders, index, rows) {
                return Ok(());
            }
            index += 1;
        }
    }
}

/// The bytes read (CSV or NDJSON) and not yet cut into blocks: the first `len` bytes of
/// `buf`, a buffer that is zeroed once, when it is allocated, and then only read into (never
/// truncated, so its room is not zeroed again before every read, as a `resize` then `read`
/// would). A block leaves in the buffer it was read into; the rest moves to the front of the
/// next one, a buffer back from the workers when there is one.
struct Pending {
    buf: Vec<u8>,
    len: usize,
}

impl Pending {
    fn new() -> Self {
        Self {
            buf: vec![0; CHUNK * 2],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Up to [`CHUNK`] more bytes of `reader`; true when the input has ended.
    fn read(&mut self, reader: &mut impl Read) -> std::io::Result<bool> {
        let end = self.len + CHUNK;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let n = reader.read(&mut self.buf[self.len..end])?;
        self.len += n;
        Ok(n == 0)
    }

    /// The buffer holding the first `cut` bytes (at most `len`) as a block, and `cut`; the
    /// rest moves to the front of `spare` (or of a new buffer), which becomes the pending one.
    fn take(&mut self, cut: usize, spare: Option<Vec<u8>>) -> (Vec<u8>, usize) {
        let rest = self.len - cut;
        let mut next = spare.unwrap_or_default();
        let room = (rest + CHUNK).max(CHUNK * 2);
        if next.len() < room {
            next.resize(room, 0);
        }
        next[..rest].copy_from_slice(&self.buf[cut..self.len]);
        self.len = rest;
        (std::mem::replace(&mut self.buf, next), cut)
    }
}

/// Cuts an NDJSON file into blocks of [`BLOCK_ROWS`] event lines (blank lines are none), as
/// bytes: no `String` per line, and the workers split the lines again.
fn split_ndjson(
    path: &Path,
    mut reader: impl Read,
    senders: &[SyncSender<Batch>],
    recycled: &Receiver<Vec<u8>>,
) -> Result<(), DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let (mut index, mut line) = (0usize, 1u64);
    let mut pending = Pending::new();
    // Where scanning resumes, where the current line starts, event lines so far pending.
    let (mut pos, mut line_start, mut events) = (0usize, 0usize, 0usize);
    loop {
        let at_end = pending.read(&mut reader).map_err(io)?;
        loop {
            let buf = pending.bytes();
            let mut cut = None;
            let from = pos;
            for nl in memchr::memchr_iter(b'\n', &buf[from..]).map(|i| i + from) {
                let text = &buf[line_start..nl];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                line_start = nl + 1;
                if !blank(text) {
                    events += 1;
                    if events == BLOCK_ROWS {
                        cut = Some(nl + 1);
                        break;
                    }
                }
            }
            let cut = match cut {
                Some(cut) => cut,
                // (`pos` is reset below with the rest of the buffer.)
                None if at_end && (events > 0 || !blank(&buf[line_start..])) => buf.len(),
                None if at_end => return Ok(()),
                None => {
                    pos = buf.len();
                    break;
                }
            };
            let (block, len) = pending.take(cut, recycled.try_recv().ok());
            (pos, line_start, events) = (0, 0, 0);
            let first_line = line;
            line += memchr::memchr_iter(b'\n', &block[..len]).count() as u64;
            if !dispatch(
                senders,
                index,
                Rows::Json {
                    first_line,
                    bytes: block,
                    len,
                },
            ) {
                return Ok(());
            }
            index += 1;
        }
    }
}

/// A trimmed cell's number, as [`parse_number`] reads it: a plain decimal (at most 15 digits,
/// so finite and far within [`aims_core::event::MAX_MAGNITUDE`]) read here, inlined, without
/// trimming it again or calling out to check its magnitude; anything else (and every error)
/// by `parse_number` itself.
#[inline]
fn number(field: &str, cell: &str) -> Result<f64, EventError> {
    aims_core::decimal::plain(cell).map_or_else(|| parse_number(field, cell), Ok)
}

/// Where each event field comes from in a CSV row.
struct Plan {
    /// Cells per row, from the header.
    width: usize,
    /// Column, kind and error field name (`features.NAME`) per feature.
    features: Vec<(usize, FeatureKind, String)>,
    attributes: Vec<usize>,
    id: Option<usize>,
    ts: Option<usize>,
    prediction: usize,
    score: Option<usize>,
    /// One column per class of a multiclass model's probabilities, when the header has them.
    class_scores: Option<Vec<usize>>,
    label: Option<usize>,
    latency: Option<usize>,
}

impl Plan {
    fn new(
        path: &Path,
        header: &csv::StringRecord,
        schema: &ModelSchema,
        columns: &ColumnsConfig,
    ) -> Result<Plan, DatasetError> {
        let find = |name: &str| header.iter().position(|h| h.trim() == name);
        let need = |name: &str, purpose: String| {
            find(name).ok_or_else(|| DatasetError::MissingColumn {
                path: path.to_owned(),
                column: name.to_owned(),
                purpose,
            })
        };
        let features = schema
            .features
            .iter()
            .map(|f| {
                Ok((
                    need(&f.name, format!("feature {}", f.name))?,
                    f.kind,
                    format!("features.{}", f.name),
                ))
            })
            .collect::<Result<_, DatasetError>>()?;
        let attributes = schema
            .attributes
            .iter()
            .map(|a| need(&a.name, format!("attribute {}", a.name)))
            .collect::<Result<_, _>>()?;
        let class_scores = if schema.task == Task::Regression {
            None
        } else {
            let names: Vec<String> = schema
                .classes
                .iter()
                .map(|c| format!("{}{c}", columns.class_score_prefix))
                .collect();
            if names.iter().any(|n| find(n).is_some()) {
                let purpose = |n: &str| format!("probability of class {n:?}");
                Some(
                    names
                        .iter()
                        .zip(&schema.classes)
                        .map(|(n, c)| need(n, purpose(c)))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            } else {
                None
            }
        };
        Ok(Plan {
            class_scores,
            width: header.len(),
            features,
            attributes,
            id: find(&columns.id),
            ts: find(&columns.ts),
            prediction: need(&columns.prediction, "prediction".to_owned())?,
            score: find(&columns.score),
            label: find(&columns.label),
            latency: find(&columns.latency_ms),
        })
    }

    /// Fills `event` from a row, and `scores` with its per-class probabilities (true when the
    /// row has them), reusing their buffers: a dataset of millions of rows then costs no
    /// allocation per row. A row leaves every probability cell empty or fills them all.
    fn fill(
        &self,
        row: &[&str],
        schema: &ModelSchema,
        features: &mut impl FeatureSink,
        event: &mut Event,
        scores: &mut Vec<f64>,
    ) -> Result<bool, EventError> {
        if row.len() != self.width {
            return Err(EventError::new(
                "row",
                RejectReason::Malformed,
                format!("{} cells where the header has {}", row.len(), self.width),
            ));
        }
        let cell = |i: usize| {
            row.get(i)
                .map(|s| aims_core::decimal::trim(s))
                .filter(|s| !s.is_empty())
        };
        let opt = |i: Option<usize>| i.and_then(cell);
        features.resize(self.features.len());
        for (j, (i, kind, field)) in self.features.iter().enumerate() {
            match (cell(*i), kind) {
                (None, _) => features.missing(j),
                // A plain decimal goes as its parts (what `number` would divide), anything
                // else (and every error) through `parse_number`, as `number` does.
                (Some(s), FeatureKind::Numeric) => match aims_core::decimal::plain_parts(s) {
                    Some((m, fraction, negative)) => features.decimal(j, m, fraction, negative),
                    None => features.numeric(j, parse_number(field, s)?),
                },
                (Some(s), FeatureKind::Categorical) => features.category(j, s),
            }
        }
        event.groups.clear();
        event.groups.extend(
            self.attributes
                .iter()
                .enumerate()
                .map(|(a, &i)| match cell(i) {
                    Some(v) => schema.group_of(a, v),
                    None => schema.attributes[a].groups.len() as u16,
                }),
        );
        let prediction_text = cell(self.prediction).ok_or_else(|| {
            EventError::new(
                "prediction",
                RejectReason::MissingField,
                "the prediction cell is empty",
            )
        })?;
        event.prediction = if schema.task == Task::Regression {
            Prediction::Value(number("prediction.value", prediction_text)?)
        } else {
            let class = schema.parse_class("prediction.label", prediction_text)?;
            let score = match opt(self.score) {
                Some(s) => {
                    Some(schema.check_score("prediction.score", number("prediction.score", s)?)?)
                }
                None => None,
            };
            Prediction::Class { class, score }
        };
        event.label = match opt(self.label) {
            Some(s) => Some(schema.parse_target_text("label", s)?),
            None => None,
        };
        event.latency_ms = match opt(self.latency) {
            Some(s) => {
                let x = number("latency_ms", s)?;
                if x < 0.0 {
                    return Err(EventError::new(
                        "latency_ms",
                        RejectReason::InvalidNumber,
                        "a latency cannot be negative",
                    ));
                }
                Some(x)
            }
            None => None,
        };
        match opt(self.id) {
            Some(id) => {
                let buf = event.id.get_or_insert_with(String::new);
                buf.clear();
                buf.push_str(id);
            }
            None => event.id = None,
        }
        event.ts_ms = match opt(self.ts) {
            Some(s) => parse_timestamp("ts", s)?,
            None => 0,
        };
        scores.clear();
        let Some(columns) = &self.class_scores else {
            return Ok(false);
        };
        if columns.iter().all(|&i| cell(i).is_none()) {
            return Ok(false);
        }
        for (k, &i) in columns.iter().enumerate() {
            // Field names are built only for an error: no allocation per good row.
            let field = || format!("prediction.scores[{k}]");
            let Some(text) = cell(i) else {
                return Err(EventError::new(
                    field(),
                    RejectReason::MissingField,
                    "a row with class probabilities needs one for every class",
                ));
            };
            scores.push(number("", text).map_err(|e| EventError {
                field: field(),
                ..e
            })?);
        }
        schema.check_class_scores("prediction.scores", scores)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn cells_read_as_parse_number_reads_them(s in "[-+.0-9eE]{0,19}|[-+ .0-9a]{0,6}") {
            let cell = aims_core::decimal::trim(&s);
            let (ours, theirs) = (number("f", cell), parse_number("f", cell));
            proptest::prop_assert_eq!(
                ours.as_ref().map(|x| x.to_bits()).map_err(ToString::to_string),
                theirs.as_ref().map(|x| x.to_bits()).map_err(ToString::to_string),
                "{:?}", s
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn cells_split_as_str_split_splits(line in "[a,é.0-9 -]{0,40}") {
            // Commas at every offset within and across words, multi-byte characters beside
            // them, empty cells, short tails.
            let mut cells = vec!["kept"];
            super::split_cells(&line, &mut cells);
            let mut want = vec!["kept"];
            want.extend(line.split(','));
            proptest::prop_assert_eq!(cells, want);
        }
    }

    proptest::proptest! {
        // Megabytes per case: fewer cases than the default.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn pending_bytes_leave_in_order_whatever_buffer_they_were_read_into(
            len in 0usize..3 * CHUNK,
            cuts in proptest::collection::vec((0usize..CHUNK * 2, proptest::bool::ANY), 1..12),
        ) {
            // Blocks cut at any point, into fresh buffers or spare ones full of old bytes
            // (as the workers hand them back): the blocks put together are the input.
            let input: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut reader = input.as_slice();
            let mut pending = Pending::new();
            let mut out = Vec::new();
            let mut cuts = cuts.into_iter().cycle();
            loop {
                let at_end = pending.read(&mut reader).expect("reads");
                let (cut, spare) = cuts.next().expect("cycles");
                let cut = if at_end { pending.len } else { cut.min(pending.len) };
                let spare = spare.then(|| vec![0xAB; CHUNK * 2 + cut % 7]);
                let (block, n) = pending.take(cut, spare);
                out.extend_from_slice(&block[..n]);
                if at_end {
                    break;
                }
            }
            proptest::prop_assert_eq!(pending.len, 0);
            proptest::prop_assert!(out == input, "{} bytes in, {} out", input.len(), out.len());
        }
    }

    #[test]
    fn record_ends_skip_newlines_inside_quotes_and_empty_lines() {
        let end = |bytes: &[u8], want| RecordEnds::default().find(bytes, want);
        assert_eq!(end(b"a,b\nc,d\ne", 2), Some(7));
        assert_eq!(end(b"a,b\nc,d\ne", 3), None);
        assert_eq!(end(b"a,\"x\ny\"\nc\n", 1), Some(7));
        assert_eq!(end(b"a,\"x\ny", 1), None);
        assert_eq!(end(b"a,\"say \"\"hi\"\"\"\nb", 1), Some(14));
        // Empty lines are no records, for the csv reader either.
        assert_eq!(end(b"a\n\n\r\nb\r\n", 2), Some(7));
        // Scanning resumes where it stopped, across a record cut in two.
        let mut ends = RecordEnds::default();
        assert_eq!(ends.find(b"a,\"x\n", 1), None);
        assert_eq!(ends.find(b"a,\"x\ny\"\nb\n", 2), Some(9));
    }

    #[test]
    fn blocks_come_in_row_order_and_hold_block_rows_each() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rows = 3 * BLOCK_ROWS + 17;
        let mut text = String::from("x,c,g,prediction\n");
        for i in 0..rows {
            // A quoted newline and an empty line now and then: neither is a row boundary.
            let c = if i % 1000 == 0 { "\"two\nlines\"" } else { "c" };
            text.push_str(&format!("{i},{c},a,1\n"));
            if i % 777 == 0 {
                text.push('\n');
            }
        }
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).expect("write");
        let mut blocks: Vec<Vec<f64>> = Vec::new();
        let read = fold_blocks(
            &path,
            &schema(),
            &ColumnsConfig::default(),
            Vec::new,
            |v: &mut Vec<f64>, e, _| match e.features[0] {
                FeatureValue::Numeric(x) => v.push(x),
                _ => panic!("x is set on every row"),
            },
            |block| blocks.push(block),
        )
        .expect("valid CSV");
        assert_eq!(read, rows as u64);
        let sizes: Vec<usize> = blocks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![BLOCK_ROWS, BLOCK_ROWS, BLOCK_ROWS, 17]);
        let all: Vec<f64> = blocks.into_iter().flatten().collect();
        assert!(all.iter().enumerate().all(|(i, &x)| x == i as f64));
    }

    fn schema() -> ModelSchema {
        toml_schema(
            r#"name = "m"
task = "binary"
features = [{ name = "x", kind = "numeric" }, { name = "c", kind = "categorical" }]
attributes = [{ name = "g", groups = ["a", "b"] }]"#,
        )
    }

    fn toml_schema(text: &str) -> ModelSchema {
        let schema: ModelSchema = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("schema parses");
        schema.validated().expect("valid schema")
    }

    fn fold_rows(text: &str) -> Result<(Vec<Event>, u64), DatasetError> {
        let (blocks, rows) = fold_file("data.csv", text)?;
        Ok((blocks.into_iter().flatten().collect(), rows))
    }

    #[test]
    fn plain_blocks_read_as_the_csv_reader_reads_them() {
        // The same rows without quotes or carriage returns (split directly) and with CRLF
        // line endings (read by the csv crate): the same events, and a bad row on the same
        // line in both.
        let mut text = String::from("x,c,g,prediction,score\n");
        for i in 0..3 * BLOCK_ROWS / 2 {
            let x = if i % 5 == 0 {
                String::new()
            } else {
                format!("{}.25", i)
            };
            text.push_str(&format!(
                "{x}, c{} ,{},{},0.{}\n",
                i % 3,
                ["a", "b", "zz"][i % 3],
                i % 2,
                i % 10
            ));
            if i % 999 == 0 {
                text.push('\n');
            }
        }
        let (plain, rows) = fold_rows(&text).expect("plain CSV");
        let (crlf, crlf_rows) = fold_rows(&text.replace('\n', "\r\n")).expect("CRLF CSV");
        assert_eq!(rows, crlf_rows);
        assert_eq!(plain, crlf);
        assert_eq!(plain[6].features[1], FeatureValue::Categorical("c0".into()));
        let bad = format!("{text}1.5,c,a,1,0.2\nnot a number,c,a,1,0.2\n");
        let lines = [bad.clone(), bad.replace('\n', "\r\n")]
            .map(|t| fold_rows(&t).expect_err("bad number").to_string());
        let want = format!("line {}: features.x", bad.lines().count());
        assert!(
            lines.iter().all(|l| l.contains(&want)),
            "{lines:?} should name {want}"
        );
    }

    #[test]
    fn quoted_newlines_and_blank_cells_read_right() {
        let (events, rows) =
            fold_rows("x,c,g,prediction,score\n1.5,\"multi\nline\",a,1,0.9\n,plain,zz,0,\n")
                .expect("valid CSV");
        assert_eq!(rows, 2);
        let multi = events
            .iter()
            .find(|e| e.features[0] == FeatureValue::Numeric(1.5))
            .expect("first row");
        assert_eq!(
            multi.features[1],
            FeatureValue::Categorical("multi\nline".into())
        );
        let plain = events
            .iter()
            .find(|e| e.features[0] == FeatureValue::Missing)
            .expect("second row");
        assert_eq!(plain.groups, vec![2], "undeclared group counts as other");
        assert_eq!(
            plain.prediction,
            Prediction::Class {
                class: 0,
                score: None
            }
        );
    }

    #[test]
    fn errors_name_the_physical_line() {
        let err = fold_rows("x,c,g,prediction\n1,\"a\nb\",a,1\n2,c,a,1\nbad,c,a,1\n")
            .expect_err("bad number");
        let text = err.to_string();
        assert!(text.contains("line 5: features.x"), "{text}");
        let err = fold_rows("x,c,g,prediction\n1,c,a\n").expect_err("short row");
        assert!(
            err.to_string()
                .contains("line 2: row: 3 cells where the header has 4"),
            "{err}"
        );
        let err = fold_rows("x,g,prediction\n1,a,1\n").expect_err("missing column");
        assert!(
            err.to_string().contains("column \"c\" (feature c)"),
            "{err}"
        );
    }

    fn fold_file(name: &str, text: &str) -> Result<(Vec<Vec<Event>>, u64), DatasetError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let mut blocks = Vec::new();
        let rows = fold_blocks(
            &path,
            &schema(),
            &ColumnsConfig::default(),
            Vec::new,
            |v: &mut Vec<Event>, e, _| v.push(e.clone()),
            |block| blocks.push(block),
        )?;
        Ok((blocks, rows))
    }

    #[test]
    fn ndjson_blocks_read_as_csv_and_name_bad_lines() {
        let rows = 2 * BLOCK_ROWS + 5;
        let mut csv = String::from("id,x,c,g,prediction,score\n");
        let mut json = String::new();
        for i in 0..rows {
            // Plain numbers, and now and then one the scanner leaves to serde (an exponent).
            let x = if i % 100 == 7 {
                format!("{i}e0")
            } else {
                format!("{i}.5")
            };
            let c = ["c0", "c1", "c2"][i % 3];
            csv.push_str(&format!(
                "r{i},{},{c},a,{},0.25\n",
                x.replace("e0", ""),
                i % 2
            ));
            let line = format!(
                r#"{{"id":"r{i}","features":{{"x":{x},"c":"{c}"}},"attributes":{{"g":"a"}},"prediction":{{"label":{},"score":0.25}}}}"#,
                i % 2
            );
            json.push_str(&line);
            // CRLF, blank and whitespace-only lines are no events and cut no block short.
            json.push_str(if i % 50 == 0 { "\r\n" } else { "\n" });
            if i % 333 == 0 {
                json.push_str("\n  \t\n\u{a0}\n");
            }
        }
        let (csv_blocks, csv_rows) = fold_file("data.csv", &csv).expect("CSV");
        let (json_blocks, json_rows) = fold_file("data.ndjson", &json).expect("NDJSON");
        assert_eq!((csv_rows, json_rows), (rows as u64, rows as u64));
        let sizes: Vec<usize> = json_blocks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![BLOCK_ROWS, BLOCK_ROWS, 5]);
        assert_eq!(json_blocks, csv_blocks);
        // No newline after the last line, then a bad line: named by its physical number.
        let (_, n) = fold_file("t.ndjson", json.trim_end()).expect("no final newline");
        assert_eq!(n, rows as u64);
        let bad =
            format!("{json}{{\"features\":{{\"x\":\"no\"}},\"prediction\":{{\"label\":1}}}}\n");
        let err = fold_file("bad.ndjson", &bad)
            .expect_err("bad line")
            .to_string();
        let want = format!("line {}: features.x", bad.lines().count());
        assert!(err.contains(&want), "{err} should name {want}");
        let err = fold_file("utf8.ndjson", "{\"prediction\":{\"label\":1}}\n\n\u{ff}\n")
            .expect_err("not JSON");
        assert!(err.to_string().contains("line 3: line"), "{err}");
    }

    /// A dataset's rows (several blocks, every kind of cell: missing values, signed zeros,
    /// unseen categories beyond the cap, rows without score, label or probabilities) read into
    /// the summary two ways: each row recorded as read, and each block gathered by column and
    /// recorded at once. The two summaries print the same JSON (every float to the bit).
    fn column_blocks_match_rows(schema: &ModelSchema, reference: &str, current: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let (reference, current) = (write("ref.csv", reference), write("cur.csv", current));
        let columns = ColumnsConfig::default();
        let mut builder = aims_core::profile::ProfileBuilder::new(schema);
        fold_blocks(
            &reference,
            schema,
            &columns,
            || aims_core::profile::ProfileBuilder::new(schema),
            |b, e, _| b.add(e),
            |block| builder.merge(block),
        )
        .expect("reference");
        let profile = builder.finish();
        let new = || aims_core::WindowSummary::new(schema, &profile);
        let mut by_row = new();
        let rows = fold_blocks(
            &current,
            schema,
            &columns,
            new,
            |s, e, scores| s.record_scored(schema, &profile, e, scores),
            |block| by_row.merge(&block).expect("same profile"),
        )
        .expect("current, by row");
        let mut by_column = new();
        let column_rows = fold_blocks_ended(
            &current,
            schema,
            &columns,
            || (new(), aims_core::summary::ColumnBuffers::new(schema)),
            |(_, c), e, scores| c.push(e, scores),
            |(s, c)| {
                let dictionaries = c.dictionaries();
                s.record_columns(schema, &profile, &c.columns(&dictionaries))
                    .expect("columns fit")
            },
            |(block, _)| by_column.merge(&block).expect("same profile"),
        )
        .expect("current, by column");
        assert_eq!(rows, column_rows);
        assert_eq!(
            serde_json::to_string(&by_column).expect("json"),
            serde_json::to_string(&by_row).expect("json")
        );
        // The CLI's own path, which hands each block's cleared column buffers to the next
        // block, records the same summary.
        let mut config: crate::config::AgentConfig = config::Config::builder()
            .add_source(config::File::from_str(
                "[model]\nname = \"m\"\ntask = \"binary\"\nfeatures = []\n",
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("config parses");
        config.model = schema.clone();
        let (cli, cli_rows) =
            crate::assess::current_summary(&config, &profile, &current).expect("current, CLI");
        assert_eq!(cli_rows, rows);
        assert_eq!(
            serde_json::to_string(&cli).expect("json"),
            serde_json::to_string(&by_row).expect("json")
        );
        // The CLI's reference, its features read cell by cell into the builder, is the
        // profile the builder makes of the same rows as events.
        let cli_profile =
            crate::assess::profile_from_dataset(&config, &reference).expect("reference, CLI");
        assert_eq!(
            serde_json::to_string(&cli_profile).expect("json"),
            serde_json::to_string(&profile).expect("json")
        );
    }

    #[test]
    fn rows_read_cell_by_cell_fail_as_events_do() {
        // The same bad rows read as events and cell by cell (into a profile builder and into
        // column buffers): the same error, naming the same line and field.
        let schema = schema();
        let header = "x,c,g,prediction,score\n";
        let good = "1.5,c,a,1,0.5\n".repeat(BLOCK_ROWS + 3);
        let bad_rows = [
            "nan,c,a,1,0.5",
            "1.5,c,a,7,0.5",
            "1.5,c,a,1,2",
            "1.5,c,a,,0.5",
            "1.5,c,a,1",
            "1e999,c,a,1,0.5",
            "1.5,c,a,1,x",
        ];
        for bad in bad_rows {
            let text = format!("{header}{good}{bad}\n{good}");
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("bad.csv");
            std::fs::write(&path, &text).expect("write");
            let columns = ColumnsConfig::default();
            let as_events = fold_blocks(&path, &schema, &columns, || (), |_, _, _| {}, |_| {})
                .expect_err("bad row")
                .to_string();
            let into_profile = fold_cells(
                &path,
                &schema,
                &columns,
                || aims_core::profile::ProfileBuilder::new(&schema),
                |_| {},
                |_| {},
            )
            .expect_err("bad row")
            .to_string();
            let into_columns = fold_cells(
                &path,
                &schema,
                &columns,
                || aims_core::summary::ColumnBuffers::new(&schema),
                |_| {},
                |_| {},
            )
            .expect_err("bad row")
            .to_string();
            let line = format!("line {}:", BLOCK_ROWS + 5);
            assert!(as_events.contains(&line), "{bad}: {as_events} names {line}");
            assert_eq!(into_profile, as_events, "{bad}");
            assert_eq!(into_columns, as_events, "{bad}");
        }
    }

    fn rows_text(rows: usize, shift: usize, classes: &[&str]) -> String {
        let mut text = String::from("id,ts,x,y,c,g,prediction,score,label,latency_ms");
        for c in classes {
            text.push_str(&format!(",score_{c}"));
        }
        text.push('\n');
        for i in 0..rows {
            let r = (i * 7919 + shift * 104_729) % 10_007;
            let x = match r % 23 {
                0 => String::new(),
                1 => "-0".into(),
                2 => "0.1234567890123".into(),
                _ => format!("{}.{}", (r % 500) as i64 - 100 + shift as i64, r % 97),
            };
            let y = if r.is_multiple_of(31) {
                String::new()
            } else {
                format!("{}", r % 7)
            };
            // Unseen categories, many of them, in the current rows.
            let c = match r % 11 {
                0 => String::new(),
                1 if shift > 0 => format!("new{}", r % 300),
                k => ["p", "q", "r", "s"][k % 4].into(),
            };
            let g = ["a", "b", "zz", ""][r % 4];
            let (prediction, score) = if classes.is_empty() {
                let s = (r % 1000) as f64 / 1000.0;
                let score = if r.is_multiple_of(19) {
                    String::new()
                } else {
                    format!("{s}")
                };
                (format!("{}", u8::from(s >= 0.5)), score)
            } else {
                (classes[r % classes.len()].to_string(), String::new())
            };
            let label = match (r % 5, classes.is_empty()) {
                (0, _) => String::new(),
                (k, true) => format!("{}", k % 2),
                (k, false) => classes[k % classes.len()].to_string(),
            };
            let latency = if r.is_multiple_of(7) {
                String::new()
            } else {
                format!("{}.5", r % 40)
            };
            text.push_str(&format!(
                "r{i},2026-11-29T{:02}:{:02}:00Z,{x},{y},{c},{g},{prediction},{score},{label},{latency}",
                (i / 60) % 24,
                i % 60
            ));
            let k = classes.len();
            for j in 0..k {
                if r.is_multiple_of(3) {
                    text.push(',');
                } else {
                    // Probabilities that sum to 1 exactly: quarters.
                    let q = if j == r % k { 4 - (k - 1) } else { 1 };
                    text.push_str(&format!(",{}", q as f64 / 4.0));
                }
            }
            text.push('\n');
        }
        text
    }

    #[test]
    fn column_blocks_record_the_summary_rows_record() {
        let binary = toml_schema(
            r#"name = "m"
task = "binary"
features = [{ name = "x", kind = "numeric" }, { name = "y", kind = "numeric" }, { name = "c", kind = "categorical" }]
attributes = [{ name = "g", groups = ["a", "b"] }]"#,
        );
        let rows = 2 * BLOCK_ROWS + 321;
        column_blocks_match_rows(&binary, &rows_text(rows, 0, &[]), &rows_text(rows, 3, &[]));
        let multiclass = toml_schema(
            r#"name = "m"
task = "multiclass"
classes = ["lo", "mid", "hi"]
features = [{ name = "x", kind = "numeric" }, { name = "y", kind = "numeric" }, { name = "c", kind = "categorical" }]
attributes = [{ name = "g", groups = ["a", "b"] }]"#,
        );
        let classes = ["lo", "mid", "hi"];
        column_blocks_match_rows(
            &multiclass,
            &rows_text(BLOCK_ROWS + 5, 0, &classes),
            &rows_text(BLOCK_ROWS + 77, 1, &classes),
        );
    }
}
