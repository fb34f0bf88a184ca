//! The metrics catalogue: every metric is a pure function of a (merged) window summary and the
//! reference profile.
//!
//! A metric that cannot be computed (a group without positives has no TPR, a single-class window
//! has no AUC) is [`Measured::Undefined`] with the reason, never NaN and never a panic.

pub mod catalogue;
pub mod drift;
pub mod fairness;
pub mod intervals;
pub mod performance;
pub mod quality;
pub mod why;

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::profile::ReferenceProfile;
use crate::schema::ModelSchema;
use crate::summary::WindowSummary;

pub use catalogue::{
    measure, measure_with_options, CatalogueError, Measurement, MetricSpec, Scope, Selector,
};

/// A metric value, or the reason it has none.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// A finite value.
    Value(f64),
    /// No value, and why.
    Undefined(String),
}

impl Measured {
    /// `Value(x)` when `x` is finite, otherwise undefined with `reason`.
    pub fn finite(x: f64, reason: &str) -> Self {
        if x.is_finite() {
            Self::Value(x)
        } else {
            Self::Undefined(reason.to_owned())
        }
    }

    /// Undefined with `reason`.
    pub fn undefined(reason: impl Into<String>) -> Self {
        Self::Undefined(reason.into())
    }

    /// `numerator / denominator`, undefined with `reason` when the denominator is zero.
    pub fn ratio(numerator: f64, denominator: f64, reason: &str) -> Self {
        if denominator == 0.0 {
            Self::undefined(reason)
        } else {
            Self::finite(numerator / denominator, reason)
        }
    }

    /// The value, if defined.
    pub fn value(&self) -> Option<f64> {
        match self {
            Self::Value(x) => Some(*x),
            Self::Undefined(_) => None,
        }
    }
}

impl Serialize for Measured {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(x) => s.serialize_f64(*x),
            Self::Undefined(reason) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("undefined", reason)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Measured {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Value(f64),
            Undefined { undefined: String },
        }
        Ok(match Form::deserialize(d)? {
            Form::Value(x) => Measured::Value(x),
            Form::Undefined { undefined } => Measured::Undefined(undefined),
        })
    }
}

/// Every metric of the catalogue for one summary against one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per feature drift statistics, the default method and its verdict.
    pub drift: BTreeMap<String, drift::FeatureDrift>,
    /// Share of drifted features and the dataset-level verdict.
    pub dataset_drift: drift::DatasetDrift,
    /// Classification or regression performance, coverage, errors, throughput.
    pub performance: performance::Performance,
    /// Per attribute: per-group values and every parity metric.
    pub fairness: BTreeMap<String, fairness::AttributeFairness>,
    /// Per feature data-quality rates, and the model's rejected rate.
    pub data_quality: quality::DataQuality,
    /// Latency quantiles.
    pub latency: performance::Latency,
    /// CBPE estimates without labels (binary models whose profile carries a calibration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated: Option<Estimated>,
    /// PCA reconstruction error against its reference thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<Reconstruction>,
}

/// Method statement shown beside every CBPE estimate.
pub const CBPE_METHOD: &str = "confidence-based performance estimation (NannyML's CBPE): the \
    expected confusion matrix from reference-calibrated scores (isotonic); it assumes no concept \
    drift, i.e. that the reference relation between score and outcome still holds";

/// Method statement of the reconstruction error.
pub const RECONSTRUCTION_METHOD: &str = "PCA reconstruction error (NannyML's data \
    reconstruction): impute, frequency-encode, standardise, project onto the components \
    explaining 65 % of the reference variance; mean per-event Euclidean error, thresholds \
    mean ± 3 σ over 10 reference chunks";

/// CBPE estimates of a window, with the method they were made by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimated {
    /// How the estimates were made, and what they assume.
    pub method: String,
    /// Whether the reference needed calibration (NannyML's rule).
    pub calibrated: bool,
    /// The estimates with their ±3 SE bands.
    #[serde(flatten)]
    pub estimates: crate::cbpe::CbpeEstimates,
    /// Per attribute, per group with rows (`other` included): the group's estimates, from
    /// which estimated TPR and FPR parity follow without labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, BTreeMap<String, crate::cbpe::GroupEstimates>>,
}

impl Estimated {
    /// One group's estimates (absent when the group had no scored rows).
    pub fn group(&self, attribute: &str, group: &str) -> Option<&crate::cbpe::GroupEstimates> {
        self.groups.get(attribute)?.get(group)
    }
}

/// The window's reconstruction error against the reference thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    /// How it is computed.
    pub method: String,
    /// Mean per-event error, or why there is none.
    pub value: Measured,
    /// Its sampling error, `std / √n`.
    pub sampling_error: Option<f64>,
    /// Components kept.
    pub components: usize,
    /// Default lower threshold from the reference.
    pub lower_threshold: f64,
    /// Default upper threshold from the reference.
    pub upper_threshold: f64,
    /// Whether the value lies outside the thresholds.
    pub alert: bool,
}

fn estimated(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    summary: &WindowSummary,
) -> Option<Estimated> {
    let c = profile.cbpe.as_ref()?;
    let sums = summary.cbpe.as_ref()?;
    let estimates = sums.estimate(&c.sampling, &summary.prediction.score_bins)?;
    let groups = schema
        .attributes
        .iter()
        .zip(&sums.groups)
        .map(|(a, buckets)| {
            let per_group = buckets
                .iter()
                .enumerate()
                .filter_map(|(i, g)| {
                    let e = g.estimate(&c.sampling)?;
                    Some((a.group_name(i).to_owned(), e))
                })
                .collect();
            (a.name.clone(), per_group)
        })
        .collect();
    Some(Estimated {
        method: CBPE_METHOD.to_owned(),
        calibrated: c.calibrated,
        estimates,
        groups,
    })
}

fn reconstruction(profile: &ReferenceProfile, summary: &WindowSummary) -> Option<Reconstruction> {
    let model = profile.reconstruction.as_ref()?;
    let m = summary.reconstruction.as_ref()?;
    let mean = m.mean();
    Some(Reconstruction {
        method: RECONSTRUCTION_METHOD.to_owned(),
        value: mean.map_or_else(
            || Measured::undefined("no events"),
            |v| Measured::finite(v, "not computable"),
        ),
        sampling_error: m.sampling_error(),
        components: model.components.len(),
        lower_threshold: model.lower_threshold,
        upper_threshold: model.upper_threshold,
        alert: mean.is_some_and(|v| model.alerts(v)),
    })
}

/// Computes the whole catalogue. `window_seconds` is the span throughput is measured over; when
/// absent, the span between the first and last event is used.
pub fn report(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    summary: &WindowSummary,
    window_seconds: Option<f64>,
) -> Report {
    let drift = drift::features(schema, profile, summary);
    let dataset_drift = drift::dataset(&drift);
    Report {
        dataset_drift,
        drift,
        performance: performance::performance(schema, summary, window_seconds),
        fairness: fairness::fairness(schema, summary),
        data_quality: quality::data_quality(schema, profile, summary),
        latency: performance::latency(summary),
        estimated: estimated(schema, profile, summary),
        reconstruction: reconstruction(profile, summary),
    }
}
