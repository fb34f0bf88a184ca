//! Data quality per feature against the reference: missing values, values outside the
//! reference range, categories the reference never saw; and the share of rejected events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Measured;
use crate::profile::ReferenceProfile;
use crate::schema::ModelSchema;
use crate::summary::{FeatureStats, WindowSummary};

/// Data quality of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureQuality {
    /// Share of events where the feature is missing.
    pub missing_rate: Measured,
    /// Share of present numeric values outside the reference [min, max].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_range_rate: Option<Measured>,
    /// Share of present categorical values the reference never saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_category_rate: Option<Measured>,
}

/// Data quality of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataQuality {
    /// Share of received events rejected by validation.
    pub rejected_rate: Measured,
    /// Per feature.
    pub features: BTreeMap<String, FeatureQuality>,
}

/// Data quality of every feature, judged against the reference profile.
pub fn data_quality(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    summary: &WindowSummary,
) -> DataQuality {
    let features = schema
        .features
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let q = match summary.features.get(i)? {
                FeatureStats::Numeric(s) => FeatureQuality {
                    missing_rate: Measured::ratio(
                        s.missing as f64,
                        (s.missing + s.count) as f64,
                        "no events",
                    ),
                    out_of_range_rate: Some(if s.bins.is_empty() {
                        Measured::undefined("the reference has no values")
                    } else {
                        Measured::ratio(
                            (s.bins[0] + s.bins[s.bins.len() - 1]) as f64,
                            s.count as f64,
                            "no present values",
                        )
                    }),
                    unseen_category_rate: None,
                },
                FeatureStats::Categorical(s) => {
                    let known = profile.categorical(i).map(|c| &c.frequencies);
                    FeatureQuality {
                        missing_rate: Measured::ratio(
                            s.missing as f64,
                            (s.missing + s.count) as f64,
                            "no events",
                        ),
                        out_of_range_rate: None,
                        unseen_category_rate: Some(match known {
                            None => Measured::undefined("no reference categories"),
                            Some(known) => {
                                let unseen: u64 = s
                                    .counts
                                    .iter()
                                    .filter(|(k, _)| !known.contains_key(*k))
                                    .map(|(_, v)| v)
                                    .sum::<u64>()
                                    + s.overflow;
                                Measured::ratio(unseen as f64, s.count as f64, "no present values")
                            }
                        }),
                    }
                }
            };
            Some((spec.name.clone(), q))
        })
        .collect();
    DataQuality {
        rejected_rate: Measured::ratio(
            summary.rejected as f64,
            (summary.rejected + summary.events) as f64,
            "no events received",
        ),
        features,
    }
}
