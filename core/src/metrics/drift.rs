//! Drift of each feature's current distribution from the reference, on the reference's bins.
//!
//! Numeric features are compared on the profile's quantile edges: PSI, Jensen-Shannon, Hellinger
//! and KL on the ten decile bins (values outside the reference range join the outer bins), the
//! KS statistic on the hundred fine bins (its error is bounded by one fine bin's reference mass,
//! 1 %, and is far smaller in practice: see the golden README), and Wasserstein-1 from exact
//! per-bin integrals of the CDFs (see [`wasserstein_binned`]). Categorical features are
//! compared on the union of categories. The default test and thresholds are Evidently's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use super::Measured;
use crate::profile::{CategoricalProfile, NumericProfile, ReferenceProfile};
use crate::quantile::{
    sum_slot, tail_sub_bounds, COARSE_BINS, FINE_BINS, POSITION_SCALE, TAIL_SPLITS, TAIL_SUB_BINS,
};
use crate::schema::{FeatureKind, ModelSchema};
use crate::summary::{CategoricalStats, FeatureStats, NumericStats, WindowSummary};

/// Floor for empty bins in PSI and KL (Evidently's rule).
pub const EMPTY_BIN_FLOOR: f64 = 1e-4;

/// References up to this many rows get statistical tests; larger ones get distances (Evidently).
pub const SMALL_REFERENCE_ROWS: u64 = 1000;

/// p-value below which a statistical test reports drift.
pub const P_VALUE_THRESHOLD: f64 = 0.05;

/// Distance at or above which Wasserstein (normed) or Jensen-Shannon reports drift.
pub const DISTANCE_THRESHOLD: f64 = 0.1;

/// Share of drifted features at or above which the dataset drifts.
pub const DATASET_DRIFT_SHARE: f64 = 0.5;

/// A test statistic with its p-value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Test {
    /// The statistic.
    pub statistic: Measured,
    /// Its p-value.
    pub p_value: Measured,
}

/// The drift test Evidently would choose by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Two-sample Kolmogorov-Smirnov (small numeric references).
    Ks,
    /// Chi-square goodness of fit (small references, more than two values).
    ChiSquare,
    /// Two-proportion Z test (small references, two values).
    Z,
    /// Normed Wasserstein-1 (large numeric references).
    Wasserstein,
    /// Jensen-Shannon distance (large categorical or few-valued references).
    JensenShannon,
}

/// Drift of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Numeric or categorical.
    pub kind: FeatureKind,
    /// Population stability index.
    pub psi: Measured,
    /// Jensen-Shannon distance (natural log).
    pub jensen_shannon: Measured,
    /// Hellinger distance.
    pub hellinger: Measured,
    /// KL divergence of current from reference.
    pub kl: Measured,
    /// Kolmogorov-Smirnov (numeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ks: Option<Test>,
    /// Wasserstein-1 divided by the reference standard deviation (numeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<Measured>,
    /// Chi-square goodness of fit (categorical, or few-valued numeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chi2: Option<Test>,
    /// Z test p-value, when it is the default method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<Measured>,
    /// Distinct values used for the method choice.
    pub n_unique: u64,
    /// Evidently's default method for this feature.
    pub default_method: Method,
    /// The default method's value (a p-value or a distance).
    pub score: Measured,
    /// The default method's verdict; undefined when its value is.
    pub drifted: Option<bool>,
}

impl FeatureDrift {
    fn undefined(kind: FeatureKind, reason: &str) -> Self {
        let u = Measured::undefined(reason);
        let default_method = match kind {
            FeatureKind::Numeric => Method::Wasserstein,
            FeatureKind::Categorical => Method::JensenShannon,
        };
        Self {
            kind,
            psi: u.clone(),
            jensen_shannon: u.clone(),
            hellinger: u.clone(),
            kl: u.clone(),
            ks: None,
            wasserstein: None,
            chi2: None,
            z: None,
            n_unique: 0,
            default_method,
            score: u,
            drifted: None,
        }
    }
}

/// Dataset-level drift: the share of drifted features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDrift {
    /// Features whose drift verdict is defined.
    pub features: u64,
    /// Of those, drifted.
    pub drifted_features: u64,
    /// `drifted_features / features`.
    pub share: Measured,
    /// `share >= 0.5`; undefined when no feature has a verdict.
    pub drifted: Option<bool>,
}

/// Drift of every feature, keyed by feature name.
pub fn features(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    summary: &WindowSummary,
) -> BTreeMap<String, FeatureDrift> {
    schema
        .features
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let d = match (
                summary.features.get(i),
                profile.numeric(i),
                profile.categorical(i),
            ) {
                (Some(FeatureStats::Numeric(cur)), Some(reference), _) => numeric(reference, cur),
                (Some(FeatureStats::Categorical(cur)), _, Some(reference)) => {
                    categorical(reference, cur)
                }
                _ => FeatureDrift::undefined(spec.kind, "summary does not match the profile"),
            };
            (spec.name.clone(), d)
        })
        .collect()
}

/// The dataset-level verdict from per-feature verdicts.
pub fn dataset(features: &BTreeMap<String, FeatureDrift>) -> DatasetDrift {
    let verdicts: Vec<bool> = features.values().filter_map(|f| f.drifted).collect();
    let drifted = verdicts.iter().filter(|d| **d).count() as u64;
    let share = Measured::ratio(
        drifted as f64,
        verdicts.len() as f64,
        "no feature has a drift verdict",
    );
    DatasetDrift {
        features: verdicts.len() as u64,
        drifted_features: drifted,
        drifted: share.value().map(|s| s >= DATASET_DRIFT_SHARE),
        share,
    }
}

fn proportions(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

fn floored(p: &[f64]) -> Vec<f64> {
    p.iter()
        .map(|&x| if x == 0.0 { EMPTY_BIN_FLOOR } else { x })
        .collect()
}

/// PSI on proportions, empty bins floored (Evidently).
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let (r, c) = (floored(reference), floored(current));
    r.iter().zip(&c).map(|(r, c)| (c - r) * (c / r).ln()).sum()
}

/// Jensen-Shannon distance with natural logarithms (`scipy.spatial.distance.jensenshannon`).
pub fn jensen_shannon(reference: &[f64], current: &[f64]) -> f64 {
    let (p, q) = (proportions(reference), proportions(current));
    let kl_to_m = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let m = (x + y) / 2.0;
                if x > 0.0 {
                    x * (x / m).ln()
                } else {
                    0.0
                }
            })
            .sum()
    };
    let js = (kl_to_m(&p, &q) + kl_to_m(&q, &p)) / 2.0;
    js.max(0.0).sqrt()
}

/// Hellinger distance on proportions.
pub fn hellinger(reference: &[f64], current: &[f64]) -> f64 {
    let s: f64 = reference
        .iter()
        .zip(current)
        .map(|(r, c)| (r.sqrt() - c.sqrt()).powi(2))
        .sum();
    (0.5 * s).sqrt()
}

/// KL divergence of current from reference, empty bins floored, then renormalised
/// (`scipy.stats.entropy(current, reference)`).
pub fn kl(reference: &[f64], current: &[f64]) -> f64 {
    let (r, c) = (
        proportions(&floored(reference)),
        proportions(&floored(current)),
    );
    c.iter().zip(&r).map(|(c, r)| c * (c / r).ln()).sum()
}

/// Survival function of the Kolmogorov distribution (`scipy.stats.kstwobign.sf`).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < 1.0 {
        // Small x: the theta-function form of the CDF converges fast.
        let w = (2.0 * std::f64::consts::PI).sqrt() / x;
        let f = -std::f64::consts::PI.powi(2) / (8.0 * x * x);
        let cdf: f64 = (1..=7)
            .map(|k| {
                let j = (2 * k - 1) as f64;
                (f * j * j).exp()
            })
            .sum::<f64>()
            * w;
        (1.0 - cdf).clamp(0.0, 1.0)
    } else {
        let sf: f64 = (1..=100)
            .map(|k| {
                let k = k as f64;
                let sign = if k as u64 % 2 == 1 { 1.0 } else { -1.0 };
                sign * (-2.0 * k * k * x * x).exp()
            })
            .sum::<f64>()
            * 2.0;
        sf.clamp(0.0, 1.0)
    }
}

/// The two-sample KS statistic and its asymptotic p-value from binned counts: the CDFs compared
/// at every bin boundary. `reference` and `current` are counts over the same ordered bins.
pub fn ks_binned(reference: &[u64], current: &[u64]) -> Test {
    let n: u64 = reference.iter().sum();
    let m: u64 = current.iter().sum();
    if n == 0 || m == 0 {
        let u = Measured::undefined("an empty sample");
        return Test {
            statistic: u.clone(),
            p_value: u,
        };
    }
    let (mut cr, mut cc, mut d) = (0u64, 0u64, 0.0f64);
    for (r, c) in reference.iter().zip(current) {
        cr += r;
        cc += c;
        d = d.max((cr as f64 / n as f64 - cc as f64 / m as f64).abs());
    }
    let en = (n as f64 * m as f64) / (n + m) as f64;
    Test {
        statistic: Measured::Value(d),
        p_value: Measured::Value(kolmogorov_sf(en.sqrt() * d)),
    }
}

/// Reference counts and current counts over the same bins for a numeric feature:
/// `[below, fine bins..., above]` with the reference's outer slots zero.
fn aligned_fine(reference: &NumericProfile, current: &NumericStats) -> (Vec<u64>, Vec<u64>) {
    let mut r = Vec::with_capacity(FINE_BINS + 2);
    r.push(0);
    r.extend_from_slice(&reference.bins);
    r.push(0);
    (r, current.bins.clone())
}

fn coarse(fine_with_outer: &[u64]) -> Vec<f64> {
    let mut out = vec![0.0; COARSE_BINS];
    let per = FINE_BINS / COARSE_BINS;
    let last = fine_with_outer.len() - 1;
    for (slot, &c) in fine_with_outer.iter().enumerate() {
        let k = if slot == 0 {
            0
        } else if slot == last {
            COARSE_BINS - 1
        } else {
            (slot - 1) / per
        };
        out[k] += c as f64;
    }
    out
}

/// Wasserstein-1 between the reference and current distributions: `∫ |F_c − F_r| dx`.
///
/// Outside the reference range it is exact (there `F_r` is 0 or 1, so the integral is the
/// mean distance of the outlying values to the range, known from their count and sum). Inside,
/// it works bin by bin on `D = F_c − F_r`. Its values at the edges are exact (cumulative
/// counts), and so is `∫D` over a bin once each side's values' offsets from the bin's lower
/// edge are summed: over `[e, e + w)`, `∫F = F(e)·w + (count·w − offsets)/N`.
///
/// The reference profile holds every bin's offsets; the summary holds the current positions
/// in the [`TAIL_BINS`] bins at each end (every bin for a small reference), where bins are
/// widest and the density ratio changes most. Elsewhere the current values are taken to
/// spread within a bin as the reference's do. The two outermost bins, which in heavy tails
/// span most of the range, are split further at the reference's tail quantiles. Where `D`
/// keeps one sign over a bin, `∫|D| = |∫D|` and the bin is exact; where it crosses zero, `D`
/// is taken to run linearly to zero and on, at the crossing point that reproduces `∫D`.
///
/// [`TAIL_BINS`]: crate::quantile::TAIL_BINS
fn wasserstein_binned(reference: &NumericProfile, current: &NumericStats) -> f64 {
    let n = reference.count as f64;
    let m = current.count as f64;
    let e = &reference.edges;
    let b = &current.bins;
    let (below, above) = (b[0] as f64, b[FINE_BINS + 1] as f64);
    let outside = (below * e[0] - current.below_sum) + (current.above_sum - above * e[FINE_BINS]);
    let r_offsets = (reference.bin_offsets.len() == FINE_BINS).then_some(&reference.bin_offsets);
    let summed = current.bin_positions.len();
    let tails = reference.tail_edges.len() == 2 * TAIL_SPLITS
        && reference.tail_bins.len() == TAIL_SUB_BINS
        && reference.tail_offsets.len() == TAIL_SUB_BINS
        && current.tail_bins.len() == TAIL_SUB_BINS
        && current.tail_positions.len() == TAIL_SUB_BINS;
    let (mut fr, mut fc) = (0.0, below / m);
    let mut inside = 0.0;
    for j in 0..FINE_BINS {
        let (rn, cn) = (reference.bins[j] as f64, b[j + 1] as f64);
        let (lo, hi) = (e[j], e[j + 1]);
        let sub_bins = match j {
            0 if tails => 0..TAIL_SPLITS + 1,
            j if j == FINE_BINS - 1 && tails => TAIL_SPLITS + 1..TAIL_SUB_BINS,
            _ => 0..0,
        };
        if sub_bins.is_empty() {
            let width = hi - lo;
            let r_off = r_offsets.map_or(rn * width / 2.0, |o| o[j]);
            let c_off = match sum_slot(j, summed).and_then(|p| current.bin_positions.get(p)) {
                Some(&p) => p as f64 / POSITION_SCALE * width,
                None if rn > 0.0 => cn * r_off / rn,
                None => cn * width / 2.0,
            };
            inside += bin_contribution(width, (fr, fc), (rn / n, r_off / n), (cn / m, c_off / m));
        } else {
            let (mut sr, mut sc) = (fr, fc);
            for t in sub_bins {
                let (slo, shi) = tail_sub_bounds(e, &reference.tail_edges, t);
                let width = shi - slo;
                let (srn, scn) = (reference.tail_bins[t] as f64, current.tail_bins[t] as f64);
                let r_off = reference.tail_offsets[t];
                let c_off = current.tail_positions[t] as f64 / POSITION_SCALE * width;
                inside +=
                    bin_contribution(width, (sr, sc), (srn / n, r_off / n), (scn / m, c_off / m));
                sr += srn / n;
                sc += scn / m;
            }
        }
        fr += rn / n;
        fc += cn / m;
    }
    outside.max(0.0) / m + inside
}

/// `∫|D|` over one bin of `width`, from both CDFs at its lower edge (`(F_r, F_c)`) and, per
/// side, the bin's share of the sample and of its offsets from the lower edge (each divided by
/// the sample size).
fn bin_contribution(
    width: f64,
    (r0, c0): (f64, f64),
    (r_mass, r_off): (f64, f64),
    (c_mass, c_off): (f64, f64),
) -> f64 {
    if width <= 0.0 {
        return 0.0;
    }
    // ∫ over the bin of F − F(lo) is (mass·width − offsets); offsets clamped into the bin.
    let rise = |mass: f64, off: f64| mass * width - off.clamp(0.0, mass * width);
    let area = width * (c0 - r0) + rise(c_mass, c_off) - rise(r_mass, r_off);
    bin_abs_integral(width, c0 - r0, (c0 + c_mass) - (r0 + r_mass), area)
}

/// `∫|D|` over a bin of `width` from `D`'s values `d0`, `d1` at its edges and its exact
/// integral `area`.
fn bin_abs_integral(width: f64, d0: f64, d1: f64, area: f64) -> f64 {
    let same_sign = d0 * d1 >= 0.0 && area * (d0 + d1) >= 0.0;
    if same_sign {
        return area.abs();
    }
    if d0 == d1 {
        return area.abs();
    }
    // D falls linearly from d0 to 0 at t·width, then on to d1: ∫D = width·(t·d0 + (1 − t)·d1)/2.
    let t = ((2.0 * area / width - d1) / (d0 - d1)).clamp(0.0, 1.0);
    let estimate = width * (t * d0.abs() + (1.0 - t) * d1.abs()) / 2.0;
    estimate.max(area.abs())
}

/// Chi-square goodness of fit of observed counts against reference counts scaled to the
/// observed total (`scipy.stats.chisquare`).
pub fn chi_square(reference: &[f64], observed: &[f64]) -> Test {
    let n: f64 = reference.iter().sum();
    let m: f64 = observed.iter().sum();
    if n == 0.0 || m == 0.0 {
        let u = Measured::undefined("an empty sample");
        return Test {
            statistic: u.clone(),
            p_value: u,
        };
    }
    let scale = m / n;
    let mut stat = 0.0;
    for (r, o) in reference.iter().zip(observed) {
        let e = r * scale;
        if e == 0.0 {
            if *o > 0.0 {
                return Test {
                    statistic: Measured::undefined(
                        "a current category never occurs in the reference",
                    ),
                    p_value: Measured::Value(0.0),
                };
            }
            continue;
        }
        stat += (o - e) * (o - e) / e;
    }
    let categories = reference
        .iter()
        .zip(observed)
        .filter(|(r, o)| **r > 0.0 || **o > 0.0)
        .count();
    if categories < 2 {
        return Test {
            statistic: Measured::Value(stat),
            p_value: Measured::undefined("a single category leaves no degrees of freedom"),
        };
    }
    let p = ChiSquared::new((categories - 1) as f64)
        .map(|d| d.sf(stat))
        .unwrap_or(f64::NAN);
    Test {
        statistic: Measured::Value(stat),
        p_value: Measured::finite(p, "chi-square p-value not computable"),
    }
}

/// Evidently's two-proportion Z test on the reference's most frequent category.
pub fn z_test(reference: &[f64], current: &[f64]) -> Measured {
    let n1: f64 = reference.iter().sum();
    let n2: f64 = current.iter().sum();
    if n1 == 0.0 || n2 == 0.0 {
        return Measured::undefined("an empty sample");
    }
    let nonzero = |v: &[f64]| v.iter().filter(|x| **x > 0.0).count();
    let same_constant = nonzero(reference) == 1
        && nonzero(current) == 1
        && reference
            .iter()
            .zip(current)
            .any(|(r, c)| *r > 0.0 && *c > 0.0);
    if same_constant {
        return Measured::Value(1.0);
    }
    let top = reference.iter().enumerate().fold(
        0,
        |best, (i, r)| if *r > reference[best] { i } else { best },
    );
    let p1 = reference[top] / n1;
    let p2 = current[top] / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return Measured::undefined("both samples hold a single value");
    }
    let z = (p1 - p2) / se;
    let normal = Normal::new(0.0, 1.0).expect("the standard normal exists");
    Measured::finite(
        2.0 * (1.0 - normal.cdf(z.abs())),
        "z-test p-value not computable",
    )
}

fn choose(kind: FeatureKind, reference_rows: u64, n_unique: u64) -> Method {
    let few = n_unique <= 5;
    if reference_rows <= SMALL_REFERENCE_ROWS {
        match (kind, few) {
            (FeatureKind::Numeric, false) => Method::Ks,
            (_, _) if n_unique > 2 => Method::ChiSquare,
            _ => Method::Z,
        }
    } else {
        match (kind, few) {
            (FeatureKind::Numeric, false) => Method::Wasserstein,
            _ => Method::JensenShannon,
        }
    }
}

fn verdict(method: Method, score: &Measured) -> Option<bool> {
    let v = score.value()?;
    Some(match method {
        Method::Ks | Method::ChiSquare | Method::Z => v < P_VALUE_THRESHOLD,
        Method::Wasserstein | Method::JensenShannon => v >= DISTANCE_THRESHOLD,
    })
}

/// Drift of a numeric feature.
pub fn numeric(reference: &NumericProfile, current: &NumericStats) -> FeatureDrift {
    if reference.count == 0 || reference.edges.is_empty() || current.bins.is_empty() {
        return FeatureDrift::undefined(FeatureKind::Numeric, "the reference has no values");
    }
    if current.count == 0 {
        return FeatureDrift::undefined(FeatureKind::Numeric, "no current values");
    }
    let (r_fine, c_fine) = aligned_fine(reference, current);
    let (r10, c10) = (coarse(&r_fine), coarse(&c_fine));
    let (rp, cp) = (proportions(&r10), proportions(&c10));
    let ks = ks_binned(&r_fine, &c_fine);
    let wasserstein = match reference.std {
        Some(s) if s > 0.0 => Measured::finite(
            wasserstein_binned(reference, current) / s.max(0.001),
            "wasserstein not computable",
        ),
        _ => Measured::undefined("the reference is constant"),
    };
    let n_unique = u64::from(reference.distinct);
    let method = choose(FeatureKind::Numeric, reference.count, n_unique);
    // Few-valued numeric features are tested as categories: their values sit in distinct bins.
    let (rf, cf): (Vec<f64>, Vec<f64>) = r_fine
        .iter()
        .zip(&c_fine)
        .filter(|(r, c)| **r > 0 || **c > 0)
        .map(|(r, c)| (*r as f64, *c as f64))
        .unzip();
    let chi2 = (method == Method::ChiSquare).then(|| chi_square(&rf, &cf));
    let z = (method == Method::Z).then(|| z_test(&rf, &cf));
    let js = Measured::finite(jensen_shannon(&r10, &c10), "not computable");
    let score = match method {
        Method::Ks => ks.p_value.clone(),
        Method::Wasserstein => wasserstein.clone(),
        Method::JensenShannon => js.clone(),
        Method::ChiSquare => chi2
            .as_ref()
            .map(|t| t.p_value.clone())
            .unwrap_or_else(|| Measured::undefined("no test")),
        Method::Z => z.clone().unwrap_or_else(|| Measured::undefined("no test")),
    };
    FeatureDrift {
        kind: FeatureKind::Numeric,
        psi: Measured::finite(psi(&rp, &cp), "not computable"),
        jensen_shannon: js,
        hellinger: Measured::finite(hellinger(&rp, &cp), "not computable"),
        kl: Measured::finite(kl(&rp, &cp), "not computable"),
        ks: Some(ks),
        wasserstein: Some(wasserstein),
        chi2,
        z,
        n_unique,
        drifted: verdict(method, &score),
        default_method: method,
        score,
    }
}

/// Drift of a categorical feature over the union of reference and current categories.
pub fn categorical(reference: &CategoricalProfile, current: &CategoricalStats) -> FeatureDrift {
    if reference.count == 0 {
        return FeatureDrift::undefined(FeatureKind::Categorical, "the reference has no values");
    }
    if current.count == 0 {
        return FeatureDrift::undefined(FeatureKind::Categorical, "no current values");
    }
    let mut keys: Vec<&String> = reference.frequencies.keys().collect();
    keys.extend(
        current
            .counts
            .keys()
            .filter(|k| !reference.frequencies.contains_key(*k)),
    );
    keys.sort();
    let mut r: Vec<f64> = keys
        .iter()
        .map(|k| reference.frequencies.get(*k).copied().unwrap_or(0) as f64)
        .collect();
    let mut c: Vec<f64> = keys
        .iter()
        .map(|k| current.counts.get(*k).copied().unwrap_or(0) as f64)
        .collect();
    if current.overflow > 0 {
        r.push(0.0);
        c.push(current.overflow as f64);
    }
    let (rp, cp) = (proportions(&r), proportions(&c));
    let n_unique = keys.len() as u64 + u64::from(current.overflow > 0);
    let method = choose(FeatureKind::Categorical, reference.count, n_unique);
    let chi2 = chi_square(&r, &c);
    let z = (method == Method::Z).then(|| z_test(&r, &c));
    let js = Measured::finite(jensen_shannon(&r, &c), "not computable");
    let score = match method {
        Method::ChiSquare => chi2.p_value.clone(),
        Method::Z => z.clone().unwrap_or_else(|| Measured::undefined("no test")),
        _ => js.clone(),
    };
    FeatureDrift {
        kind: FeatureKind::Categorical,
        psi: Measured::finite(psi(&rp, &cp), "not computable"),
        jensen_shannon: js,
        hellinger: Measured::finite(hellinger(&rp, &cp), "not computable"),
        kl: Measured::finite(kl(&rp, &cp), "not computable"),
        ks: None,
        wasserstein: None,
        chi2: Some(chi2),
        z,
        n_unique,
        drifted: verdict(method, &score),
        default_method: method,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_do_not_drift() {
        let p = [0.1; 10];
        assert_eq!(psi(&p, &p), 0.0);
        assert_eq!(jensen_shannon(&p, &p), 0.0);
        assert_eq!(hellinger(&p, &p), 0.0);
        assert!(kl(&p, &p).abs() < 1e-15);
    }

    #[test]
    fn a_bin_without_a_crossing_is_its_exact_integral() {
        // D from 0.1 to 0.3 over width 2 with ∫D = 0.5 (not the linear 0.4): exact, |∫D|.
        assert_eq!(bin_abs_integral(2.0, 0.1, 0.3, 0.5), 0.5);
        assert_eq!(bin_abs_integral(2.0, -0.1, -0.3, -0.5), 0.5);
    }

    #[test]
    fn a_crossing_bin_runs_linearly_through_zero() {
        // D linear from 1 to −1 over width 2: ∫D = 0, ∫|D| = 1.
        assert!((bin_abs_integral(2.0, 1.0, -1.0, 0.0) - 1.0).abs() < 1e-15);
        // ∫D = 0.5 puts the crossing at 1.5: D falls 1 → 0 on [0, 1.5], then 0 → −1 on
        // [1.5, 2], so ∫D = 0.75 − 0.25 and ∫|D| = 0.75 + 0.25.
        let got = bin_abs_integral(2.0, 1.0, -1.0, 0.5);
        assert!((got - 1.0).abs() < 1e-12, "{got}");
        // Never below |∫D|, whatever the endpoints claim.
        assert!(bin_abs_integral(1.0, 0.1, -0.1, 0.9) >= 0.9);
    }

    #[test]
    fn kolmogorov_sf_matches_scipy() {
        // scipy.stats.kstwobign.sf(x) for x = 0.5, 1.0, 1.36, 2.0
        let want = [
            (0.5, 0.963_945_243_664_875_1),
            (1.0, 0.269_999_671_677_354_56),
            (1.36, 0.049_485_876_755_377_876),
            (2.0, 0.000_670_925_255_779_695_3),
        ];
        for (x, p) in want {
            assert!(
                (kolmogorov_sf(x) - p).abs() < 1e-9,
                "x={x}: {}",
                kolmogorov_sf(x)
            );
        }
    }

    #[test]
    fn unseen_category_makes_chi_square_certain() {
        let t = chi_square(&[10.0, 0.0], &[5.0, 5.0]);
        assert_eq!(t.p_value, Measured::Value(0.0));
        assert!(t.statistic.value().is_none());
    }

    #[test]
    fn constant_reference_has_no_normed_wasserstein() {
        let reference = NumericProfile {
            count: 3,
            missing: 0,
            min: Some(1.0),
            max: Some(1.0),
            mean: Some(1.0),
            std: Some(0.0),
            distinct: 1,
            edges: vec![1.0; FINE_BINS + 1],
            bins: {
                let mut b = vec![0; FINE_BINS];
                b[FINE_BINS - 1] = 3;
                b
            },
            bin_offsets: vec![],
            tail_edges: vec![],
            tail_bins: vec![],
            tail_offsets: vec![],
        };
        let mut bins = vec![0; FINE_BINS + 2];
        bins[FINE_BINS] = 2;
        let current = NumericStats {
            count: 2,
            bins,
            min: Some(1.0),
            max: Some(1.0),
            ..NumericStats::default()
        };
        let d = numeric(&reference, &current);
        assert!(matches!(d.wasserstein, Some(Measured::Undefined(_))));
        assert_eq!(d.psi, Measured::Value(0.0));
    }
}
