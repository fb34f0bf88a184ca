//! Fitting the reconstruction model on the reference held by column (see
//! [`ReconstructionModel::fit_columns`]).

use std::collections::BTreeMap;

use super::{symmetric_eigen, Encoding, ErrorMoments, FitError, ReconstructionModel};
use super::{Projection, CENTRED_ROWS, CENTRED_TILE, REFERENCE_CHUNKS, VARIANCE_SHARE};
use crate::event::FeatureValue;
use crate::par;

/// One reference column for [`ReconstructionModel::fit_columns`], in row order.
#[derive(Debug, Clone, Copy)]
pub enum FitColumn<'a> {
    /// A numeric feature's values; NaN marks a missing value (validated values are finite).
    Numeric(&'a [f64]),
    /// A numeric feature's values held as decimals: row `r`'s value is
    /// `digits[r] as f64 / 10^scale` ([`SCALED_MISSING`] when missing), half the memory of
    /// `Numeric` and the same values to the bit (the profile builder keeps a column so only
    /// when every value reads back exactly).
    Scaled {
        /// Per row, the value times `10^scale`.
        digits: &'a [i32],
        /// Decimal places, at most 15.
        scale: u32,
    },
    /// A categorical feature: its category names, and per row the index of its category in
    /// `names` ([`MISSING_CODE`] when missing).
    Categorical {
        /// Category names, in any order.
        names: &'a [String],
        /// Per row, an index into `names`.
        codes: &'a [u32],
    },
}

/// The code of a missing categorical value in a [`FitColumn::Categorical`].
pub const MISSING_CODE: u32 = u32::MAX;

/// The digits of a missing value in a [`FitColumn::Scaled`].
pub const SCALED_MISSING: i32 = i32::MIN;

pub use crate::decimal::POW10;

/// The value `digits` stand for at `scale` decimal places (NaN when missing).
#[inline]
pub fn unscaled(digits: i32, scale: u32) -> f64 {
    if digits == SCALED_MISSING {
        f64::NAN
    } else {
        f64::from(digits) / POW10[scale as usize]
    }
}

impl FitColumn<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Numeric(v) => v.len(),
            Self::Scaled { digits, .. } => digits.len(),
            Self::Categorical { codes, .. } => codes.len(),
        }
    }
}

/// A fitted column's encoded values, read row by row without materialising the matrix.
enum Encoded<'a> {
    Numeric {
        values: &'a [f64],
        impute: f64,
    },
    Scaled {
        digits: &'a [i32],
        scale: u32,
        impute: f64,
    },
    Coded {
        codes: &'a [u32],
        value: Vec<f64>,
        missing: f64,
    },
    Constant(f64),
}

impl Encoded<'_> {
    // Always inlined: called once per row and column in every pass, where a call costs more
    // than the read (the compiler stopped inlining it into the larger fit closure).
    #[inline(always)]
    fn at(&self, row: usize) -> f64 {
        match self {
            // Missing values are NaN: not finite, so imputed, as `Encoding::encode` does.
            Self::Numeric { values, impute } => {
                let x = values[row];
                if x.is_finite() {
                    x
                } else {
                    *impute
                }
            }
            Self::Scaled {
                digits,
                scale,
                impute,
            } => {
                let d = digits[row];
                if d == SCALED_MISSING {
                    *impute
                } else {
                    f64::from(d) / POW10[*scale as usize]
                }
            }
            Self::Coded {
                codes,
                value,
                missing,
            } => value.get(codes[row] as usize).copied().unwrap_or(*missing),
            Self::Constant(x) => *x,
        }
    }
}

/// Rows standardised at a time by [`ReconstructionModel::fit_columns`]'s passes.
const TILE: usize = 256;

impl ReconstructionModel {
    /// Fits on reference rows (each one value per feature, in schema order), as NannyML does.
    pub fn fit(rows: &[Vec<FeatureValue>]) -> Result<Self, FitError> {
        let n = rows.len();
        if n < 2 {
            return Err(FitError::TooFewRows(n));
        }
        let d = rows[0].len();
        if d == 0 {
            return Err(FitError::NoFeatures);
        }
        // A feature is categorical when its first non-missing value is.
        let mut categorical = vec![None::<bool>; d];
        for (r, row) in rows.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let kind = match v {
                    FeatureValue::Missing => continue,
                    FeatureValue::Numeric(_) => false,
                    FeatureValue::Categorical(_) => true,
                };
                match categorical.get(j).copied().flatten() {
                    None if j < d => categorical[j] = Some(kind),
                    Some(k) if k == kind => {}
                    _ => return Err(FitError::Kind { row: r, feature: j }),
                }
            }
            if row.len() != d {
                return Err(FitError::Kind { row: r, feature: d });
            }
        }
        let mut numeric: Vec<Vec<f64>> = Vec::new();
        let mut coded: Vec<(Vec<String>, Vec<u32>)> = Vec::new();
        for (j, kind) in categorical.iter().enumerate() {
            if *kind == Some(true) {
                let mut index: BTreeMap<&str, u32> = BTreeMap::new();
                let mut names = Vec::new();
                let codes = rows
                    .iter()
                    .map(|row| match &row[j] {
                        FeatureValue::Categorical(c) => {
                            *index.entry(c.as_str()).or_insert_with(|| {
                                names.push(c.clone());
                                (names.len() - 1) as u32
                            })
                        }
                        _ => MISSING_CODE,
                    })
                    .collect();
                coded.push((names, codes));
            } else {
                numeric.push(
                    rows.iter()
                        .map(|row| match row[j] {
                            FeatureValue::Numeric(x) => x,
                            _ => f64::NAN,
                        })
                        .collect(),
                );
            }
        }
        let (mut numeric, mut coded) = (numeric.iter(), coded.iter());
        let columns: Vec<FitColumn> = categorical
            .iter()
            .filter_map(|kind| {
                if *kind == Some(true) {
                    coded
                        .next()
                        .map(|(names, codes)| FitColumn::Categorical { names, codes })
                } else {
                    numeric.next().map(|v| FitColumn::Numeric(v))
                }
            })
            .collect();
        Self::fit_columns(&columns)
    }

    /// [`fit`](Self::fit) on the reference held by column, in row order, as the profile
    /// builder keeps it: the same arithmetic in the same order, so the same model to the bit,
    /// without a row-major copy of the reference. The passes over the rows run on up to four
    /// threads, split by column, by covariance row and by chunk, never within a sum.
    #[allow(clippy::needless_range_loop)]
    pub fn fit_columns(columns: &[FitColumn]) -> Result<Self, FitError> {
        let d = columns.len();
        if d == 0 {
            return Err(FitError::NoFeatures);
        }
        let n = columns[0].len();
        if n < 2 {
            return Err(FitError::TooFewRows(n));
        }
        if let Some(j) = columns.iter().position(|c| c.len() != n) {
            return Err(FitError::Kind {
                row: n.min(columns[j].len()),
                feature: j,
            });
        }
        let mut encodings = Vec::with_capacity(d);
        let mut encoded = Vec::with_capacity(d);
        // Per column, its mean when the imputation pass has already summed every row's value.
        let mut known_mean = vec![None; d];
        let nf = n as f64;
        // A numeric column with no value missing: its imputation sum is the sum of the very
        // values the mean pass would add, in the same order, so its mean is that sum over
        // `n`. Not when a value is not finite (the mean pass imputes it) or the sum is zero
        // (`Sum` may start from -0.0 where these loops start from 0.0: a column of -0.0
        // alone would differ in sign).
        let mean_of =
            |sum: f64, k: usize| (k == n && sum.is_finite() && sum != 0.0).then(|| sum / nf);
        for (j, column) in columns.iter().enumerate() {
            match *column {
                FitColumn::Categorical { names, codes } => {
                    let mut per_code = vec![0u64; names.len()];
                    let mut missing = 0u64;
                    for &c in codes {
                        match per_code.get_mut(c as usize) {
                            Some(k) => *k += 1,
                            None => missing += 1,
                        }
                    }
                    let counts: BTreeMap<&str, u64> = names
                        .iter()
                        .zip(&per_code)
                        .filter(|(_, &k)| k > 0)
                        .map(|(c, &k)| (c.as_str(), k))
                        .collect();
                    if counts.is_empty() {
                        // No value at all: the feature has no kind, and is encoded as a
                        // numeric one without values.
                        encodings.push(Encoding::Numeric { impute: 0.0 });
                        encoded.push(Encoded::Constant(0.0));
                        continue;
                    }
                    // Most frequent, the smallest on ties (scikit-learn's SimpleImputer).
                    let impute = counts
                        .iter()
                        .fold(None::<(&str, u64)>, |best, (&c, &k)| match best {
                            Some((_, bk)) if bk >= k => best,
                            _ => Some((c, k)),
                        })
                        .map_or_else(String::new, |(c, _)| c.to_owned());
                    let mut frequencies: BTreeMap<String, f64> = counts
                        .into_iter()
                        .map(|(c, k)| (c.to_owned(), k as f64))
                        .collect();
                    *frequencies.entry(impute.clone()).or_insert(0.0) += missing as f64;
                    for f in frequencies.values_mut() {
                        *f /= n as f64;
                    }
                    let value = names
                        .iter()
                        .map(|c| frequencies.get(c).copied().unwrap_or(0.0))
                        .collect();
                    let missing = frequencies.get(&impute).copied().unwrap_or(0.0);
                    encoded.push(Encoded::Coded {
                        codes,
                        value,
                        missing,
                    });
                    encodings.push(Encoding::Categorical {
                        impute,
                        frequencies,
                    });
                }
                FitColumn::Numeric(values) => {
                    let (mut sum, mut k) = (0.0f64, 0usize);
                    for &x in values.iter().filter(|x| !x.is_nan()) {
                        sum += x;
                        k += 1;
                    }
                    let impute = if k > 0 { sum / k as f64 } else { 0.0 };
                    known_mean[j] = mean_of(sum, k);
                    encodings.push(Encoding::Numeric { impute });
                    encoded.push(Encoded::Numeric { values, impute });
                }
                FitColumn::Scaled { digits, scale } => {
                    // The same sum as `Numeric`'s, of the same values in the same order.
                    let (mut sum, mut k) = (0.0f64, 0usize);
                    for &d in digits.iter().filter(|&&d| d != SCALED_MISSING) {
                        sum += unscaled(d, scale);
                        k += 1;
                    }
                    let impute = if k > 0 { sum / k as f64 } else { 0.0 };
                    known_mean[j] = mean_of(sum, k);
                    encodings.push(Encoding::Numeric { impute });
                    encoded.push(Encoded::Scaled {
                        digits,
                        scale,
                        impute,
                    });
                }
            }
        }
        let mut model = Self {
            encodings,
            mean: vec![0.0; d],
            scale: vec![1.0; d],
            center: vec![0.0; d],
            components: Vec::new(),
            explained_variance_ratio: Vec::new(),
            lower_threshold: 0.0,
            upper_threshold: f64::INFINITY,
        };
        let moments = par::map(d, |j| {
            let e = &encoded[j];
            let mean = known_mean[j].unwrap_or_else(|| (0..n).map(|r| e.at(r)).sum::<f64>() / nf);
            let var = (0..n).map(|r| (e.at(r) - mean).powi(2)).sum::<f64>() / nf;
            let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
            let center = (0..n).map(|r| (e.at(r) - mean) / scale).sum::<f64>() / nf;
            (mean, scale, center)
        });
        for (j, (mean, scale, center)) in moments.into_iter().enumerate() {
            model.mean[j] = mean;
            model.scale[j] = scale;
            model.center[j] = center;
        }
        let (means, scales, center) = (
            model.mean.clone(),
            model.scale.clone(),
            model.center.clone(),
        );
        // Standardised rows `start..end`, a tile at a time: `z[j * TILE + i]` is row
        // `start + i`'s value of column `j`.
        let standardise = |start: usize, end: usize, z: &mut [f64]| {
            for (j, e) in encoded.iter().enumerate() {
                let (mean, scale) = (means[j], scales[j]);
                for (i, r) in (start..end).enumerate() {
                    z[j * TILE + i] = (e.at(r) - mean) / scale;
                }
            }
        };
        // Covariance: each thread owns some of its rows `a`, every entry summed in row order.
        let threads = par::threads().min(d);
        let parts = par::map(threads, |t| {
            let rows_a: Vec<usize> = (t..d).step_by(threads).collect();
            let mut acc: Vec<Vec<f64>> = rows_a.iter().map(|&a| vec![0.0f64; d - a]).collect();
            let mut z = vec![0.0f64; d * TILE];
            let mut x = vec![0.0f64; d * GROUP];
            for start in (0..n).step_by(TILE) {
                let end = (start + TILE).min(n);
                standardise(start, end, &mut z);
                let rows = end - start;
                // The rows' centred values, each computed once (not once per entry it enters):
                // the same differences, so the same products and sums.
                let centre = |x: &mut [f64], i: usize| {
                    for j in 0..d {
                        x[j] = z[j * TILE + i] - center[j];
                    }
                };
                let whole = rows - rows % GROUP;
                for i in (0..whole).step_by(GROUP) {
                    for (q, x) in x.chunks_exact_mut(d).enumerate() {
                        centre(x, i + q);
                    }
                    accumulate_rows(&mut acc, &rows_a, &x, d);
                }
                for i in whole..rows {
                    centre(&mut x[..d], i);
                    accumulate_row(&mut acc, &rows_a, &x[..d]);
                }
            }
            rows_a.into_iter().zip(acc).collect::<Vec<_>>()
        });
        let mut cov = vec![vec![0.0f64; d]; d];
        for (a, row) in parts.into_iter().flatten() {
            for (b, c) in (a..d).zip(row) {
                cov[a][b] = c;
            }
        }
        for a in 0..d {
            for b in a..d {
                cov[a][b] /= (n - 1) as f64;
                cov[b][a] = cov[a][b];
            }
        }
        let (values, vectors) = symmetric_eigen(cov);
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        // scikit-learn: the fewest components whose cumulative ratio exceeds the share.
        let mut cumulative = 0.0;
        for (value, vector) in values.iter().zip(vectors) {
            let ratio = if total > 0.0 {
                value.max(0.0) / total
            } else {
                0.0
            };
            model.components.push(vector);
            model.explained_variance_ratio.push(ratio);
            cumulative += ratio;
            if cumulative > VARIANCE_SHARE {
                break;
            }
        }
        // Thresholds from the reference chunks, in row order (incomplete last chunk kept).
        let chunk = (n / REFERENCE_CHUNKS).max(1);
        let projection = model.projection();
        let values: Vec<f64> = par::map(n.div_ceil(chunk), |c| {
            let (first, last) = (c * chunk, ((c + 1) * chunk).min(n));
            chunk_errors(&model, &projection, &encoded, first, last)
                .mean()
                .unwrap_or(0.0)
        });
        let k = values.len() as f64;
        let mean = values.iter().sum::<f64>() / k;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k).sqrt();
        model.lower_threshold = (mean - 3.0 * std).max(0.0);
        model.upper_threshold = mean + 3.0 * std;
        Ok(model)
    }
}

/// Rows the covariance pass adds into each entry in one go ([`accumulate_rows`]).
const GROUP: usize = 4;

/// One centred row `x` (`d` values) added into the covariance rows `rows_a` own (`acc[k]`
/// holds entries `(rows_a[k], b)` for `b` from `rows_a[k]` to `d`): each entry `+= x[a]·x[b]`.
#[inline]
fn accumulate_row(acc: &mut [Vec<f64>], rows_a: &[usize], x: &[f64]) {
    for (&a, row) in rows_a.iter().zip(acc.iter_mut()) {
        let xa = x[a];
        for (xb, c) in x[a..].iter().zip(row.iter_mut()) {
            *c += xa * xb;
        }
    }
}

/// [`accumulate_row`] of [`GROUP`] consecutive centred rows (`x`: row `q`'s values at
/// `q·d..(q + 1)·d`), in row order per entry: `c += p0; c += p1; …`, the very additions one
/// row at a time makes, with each entry loaded and stored once per group instead of per row.
#[inline]
fn accumulate_rows(acc: &mut [Vec<f64>], rows_a: &[usize], x: &[f64], d: usize) {
    let (x0, rest) = x.split_at(d);
    let (x1, rest) = rest.split_at(d);
    let (x2, x3) = rest.split_at(d);
    let x3 = &x3[..d];
    for (&a, row) in rows_a.iter().zip(acc.iter_mut()) {
        let (a0, a1, a2, a3) = (x0[a], x1[a], x2[a], x3[a]);
        let row = &mut row[..d - a];
        for ((((c, b0), b1), b2), b3) in row
            .iter_mut()
            .zip(&x0[a..])
            .zip(&x1[a..])
            .zip(&x2[a..])
            .zip(&x3[a..])
        {
            let mut v = *c;
            v += a0 * b0;
            v += a1 * b1;
            v += a2 * b2;
            v += a3 * b3;
            *c = v;
        }
    }
}

/// The moments of the errors of reference rows `first..last`, each row's error as a current
/// row's is computed (the same number, to the bit, as `standardised_error` gives): when the
/// model batches, the rows' centred values a column at a time into tiles, then
/// [`ReconstructionModel::errors_of_centred`] ([`chunk_errors_by_row`]'s numbers, without its
/// single chain of dependent additions per row); else row by row.
fn chunk_errors(
    model: &ReconstructionModel,
    projection: &Projection,
    encoded: &[Encoded],
    first: usize,
    last: usize,
) -> ErrorMoments {
    if !model.batches(projection) || encoded.len() != projection.d {
        return chunk_errors_by_row(model, projection, encoded, first, last);
    }
    const T: usize = CENTRED_TILE;
    let d = encoded.len();
    // Per column, its categories' centred values (each computed once), and a missing one's.
    let tables: Vec<(Vec<f64>, f64)> = encoded
        .iter()
        .enumerate()
        .map(|(j, e)| match e {
            Encoded::Coded { value, missing, .. } => (
                value.iter().map(|&x| model.centred(j, x)).collect(),
                model.centred(j, *missing),
            ),
            Encoded::Constant(x) => (Vec::new(), model.centred(j, *x)),
            Encoded::Numeric { impute, .. } | Encoded::Scaled { impute, .. } => {
                (Vec::new(), model.centred(j, *impute))
            }
        })
        .collect();
    let mut m = ErrorMoments::default();
    let mut c = vec![0.0f64; CENTRED_ROWS * d];
    let mut errors = [0.0f64; CENTRED_ROWS];
    for from in (first..last).step_by(CENTRED_ROWS) {
        let to = (from + CENTRED_ROWS).min(last);
        for (j, (e, (table, missing))) in encoded.iter().zip(&tables).enumerate() {
            // Feature `j`'s cells of each tile, with the tile's rows.
            let tiles = c
                .chunks_exact_mut(d * T)
                .map(|tile| &mut tile[j * T..(j + 1) * T])
                .zip((from..to).step_by(T));
            for (cells, start) in tiles {
                let rows = start..(start + T).min(to);
                let cells = &mut cells[..rows.len()];
                match e {
                    Encoded::Numeric { values, .. } => {
                        for (cell, &x) in cells.iter_mut().zip(&values[rows]) {
                            *cell = if x.is_finite() {
                                model.centred(j, x)
                            } else {
                                *missing
                            };
                        }
                    }
                    Encoded::Scaled { digits, scale, .. } => {
                        let p = POW10[*scale as usize];
                        for (cell, &x) in cells.iter_mut().zip(&digits[rows]) {
                            *cell = if x == SCALED_MISSING {
                                *missing
                            } else {
                                model.centred(j, f64::from(x) / p)
                            };
                        }
                    }
                    Encoded::Coded { codes, .. } => {
                        for (cell, &code) in cells.iter_mut().zip(&codes[rows]) {
                            *cell = table.get(code as usize).copied().unwrap_or(*missing);
                        }
                    }
                    Encoded::Constant(_) => cells.fill(*missing),
                }
            }
        }
        let errors = &mut errors[..to - from];
        model.errors_of_centred(projection, &c, errors);
        errors.iter().for_each(|&e| m.record(e));
    }
    m
}

/// [`chunk_errors`] a row at a time: each row's encoded values, then
/// [`ReconstructionModel::error_of_encoded`] (standardised as the fit's passes do, then every
/// component's dot product at once). The path for a model that does not batch, and the
/// oracle of the batched one.
fn chunk_errors_by_row(
    model: &ReconstructionModel,
    projection: &Projection,
    encoded: &[Encoded],
    first: usize,
    last: usize,
) -> ErrorMoments {
    let mut m = ErrorMoments::default();
    let mut x = vec![0.0f64; encoded.len()];
    for r in first..last {
        for (x, e) in x.iter_mut().zip(encoded) {
            *x = e.at(r);
        }
        m.record(model.error_of_encoded(projection, &x));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn covariance_rows_added_four_at_a_time_are_added_one_at_a_time(
            values in proptest::collection::vec(-1e3f64..1e3, 1..60),
            d in 1usize..9,
            threads in 1usize..4,
        ) {
            // The grouped accumulation against one row after another, for the share of the
            // covariance rows a thread owns, over whole groups of rows.
            let rows = values.len() / d / GROUP * GROUP;
            for t in 0..threads.min(d) {
                let rows_a: Vec<usize> = (t..d).step_by(threads.min(d)).collect();
                let fresh = || rows_a.iter().map(|&a| vec![0.5f64; d - a]).collect::<Vec<_>>();
                let (mut grouped, mut single) = (fresh(), fresh());
                for g in (0..rows).step_by(GROUP) {
                    let x = &values[g * d..(g + GROUP) * d];
                    accumulate_rows(&mut grouped, &rows_a, x, d);
                    for row in x.chunks_exact(d) {
                        accumulate_row(&mut single, &rows_a, row);
                    }
                }
                let bits = |acc: &Vec<Vec<f64>>| {
                    acc.iter().flatten().map(|c| c.to_bits()).collect::<Vec<_>>()
                };
                prop_assert_eq!(bits(&grouped), bits(&single));
            }
        }

        #[test]
        fn tiled_chunk_errors_are_the_row_by_row_ones(
            cells in proptest::collection::vec((-1e4f64..1e4, 0u32..6, proptest::bool::weighted(0.1)), 2..700),
            cut in 0usize..700,
            components in 1usize..4,
        ) {
            // The threshold pass's tiles against the row-by-row errors it replaced: every
            // kind of column (plain, digits, coded, constant), missing values in each, chunks
            // that start and end inside a tile, and models of one to all components kept.
            let n = cells.len();
            let plain: Vec<f64> = cells.iter().map(|&(x, _, m)| if m { f64::NAN } else { x }).collect();
            let digits: Vec<i32> = cells
                .iter()
                .map(|&(x, _, m)| if m { SCALED_MISSING } else { (x * 100.0) as i32 })
                .collect();
            // Code 5 is past the names: missing.
            let codes: Vec<u32> = cells.iter().map(|&(_, c, _)| if c == 5 { MISSING_CODE } else { c }).collect();
            let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
            let other: Vec<f64> = cells.iter().map(|&(x, c, _)| x * 0.5 + f64::from(c)).collect();
            let columns = [
                FitColumn::Numeric(&plain),
                FitColumn::Scaled { digits: &digits, scale: 2 },
                FitColumn::Categorical { names: &names, codes: &codes },
                FitColumn::Numeric(&other),
            ];
            let mut model = ReconstructionModel::fit_columns(&columns).expect("fits");
            model.components.truncate(components);
            let projection = model.projection();
            prop_assert!(model.batches(&projection));
            let value: Vec<f64> = (0..names.len()).map(|i| 0.1 * i as f64).collect();
            let encoded = [
                Encoded::Numeric { values: &plain, impute: 1.5 },
                Encoded::Scaled { digits: &digits, scale: 2, impute: -2.25 },
                Encoded::Coded { codes: &codes, value, missing: 0.3 },
                Encoded::Constant(0.7),
            ];
            let cut = cut.min(n);
            for (first, last) in [(0, n), (0, cut), (cut, n), (cut / 3, cut)] {
                let tiled = chunk_errors(&model, &projection, &encoded, first, last);
                let by_row = chunk_errors_by_row(&model, &projection, &encoded, first, last);
                prop_assert_eq!(tiled.count, by_row.count);
                prop_assert_eq!(tiled.sum.to_bits(), by_row.sum.to_bits(), "{}..{}", first, last);
                prop_assert_eq!(tiled.sum_sq.to_bits(), by_row.sum_sq.to_bits(), "{}..{}", first, last);
            }
        }

        #[test]
        fn means_of_full_columns_are_the_mean_pass(
            xs in proptest::collection::vec(-1e6f64..1e6, 2..300),
            zeros in proptest::collection::vec(proptest::bool::ANY, 2..300),
        ) {
            // Columns with no value missing take their mean from the imputation pass: the
            // mean pass over the encoded values gives the same bits, for plain and digit
            // columns, signed zeros and a column of -0.0 alone included.
            let n = xs.len().min(zeros.len());
            let plain: Vec<f64> = xs[..n].to_vec();
            let digits: Vec<i32> = plain.iter().map(|x| (x * 100.0) as i32).collect();
            let signed: Vec<f64> = zeros[..n].iter().map(|&z| if z { -0.0 } else { 0.0 }).collect();
            let negative = vec![-0.0f64; n];
            let columns = [
                FitColumn::Numeric(&plain),
                FitColumn::Scaled { digits: &digits, scale: 2 },
                FitColumn::Numeric(&signed),
                FitColumn::Numeric(&negative),
            ];
            let model = ReconstructionModel::fit_columns(&columns).expect("fits");
            let scaled: Vec<f64> = digits.iter().map(|&d| unscaled(d, 2)).collect();
            for (j, values) in [&plain, &scaled, &signed, &negative].into_iter().enumerate() {
                let mean = values.iter().sum::<f64>() / n as f64;
                prop_assert_eq!(model.mean[j].to_bits(), mean.to_bits(), "column {}", j);
            }
        }
    }
}
