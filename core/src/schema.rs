//! The model schema: what the agent expects in every prediction event.
//!
//! It is declared in the agent's configuration and travels with reference profiles. Protected
//! and segment attributes declare their groups up front; any other value counts into the
//! [`OTHER_GROUP`] bucket so that no label cardinality ever comes from event data.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Name of the bucket for attribute values outside the declared groups.
pub const OTHER_GROUP: &str = "other";

/// How a feature is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A real number; binned on the reference profile's quantile edges.
    Numeric,
    /// A string category; counted per category.
    Categorical,
}

/// One model input feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Key in the event's `features` object (and CSV column name).
    pub name: String,
    /// Numeric or categorical.
    pub kind: FeatureKind,
}

/// A protected or segment attribute, such as gender or age band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    /// Key in the event's `attributes` object.
    pub name: String,
    /// The declared groups; any other value counts as [`OTHER_GROUP`].
    pub groups: Vec<String>,
    /// The privileged / reference group for AIF360-style signed metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_group: Option<String>,
    /// Groups with fewer predictions are left out of this attribute's parity metrics and
    /// listed as too small, unless an objective sets its own `min_group_samples`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_group_samples: Option<u64>,
}

impl AttributeSpec {
    /// Index of `value` among the groups; values outside them map to the `other` bucket,
    /// whose index is `groups.len()`.
    pub fn group_index(&self, value: &str) -> usize {
        self.groups
            .iter()
            .position(|g| crate::few::same_text(g, value))
            .unwrap_or(self.groups.len())
    }

    /// Name of the group at `index` (the `other` bucket included).
    pub fn group_name(&self, index: usize) -> &str {
        self.groups
            .get(index)
            .map(String::as_str)
            .unwrap_or(OTHER_GROUP)
    }

    /// Number of buckets: the declared groups plus `other`.
    pub fn bucket_count(&self) -> usize {
        self.groups.len() + 1
    }
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Two classes, one of them positive.
    Binary,
    /// More than two classes; fairness treats the positive class one-vs-rest.
    Multiclass,
    /// A real-valued prediction.
    Regression,
}

/// The declared shape of a model's prediction events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSchema {
    /// Model name, as objectives and metrics labels refer to it.
    pub name: String,
    /// Model version deployed.
    #[serde(default = "default_version")]
    pub version: String,
    /// Binary, multiclass or regression.
    pub task: Task,
    /// Class labels (string form) for classification; `["0", "1"]` by default for binary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The positive class for binary (and one-vs-rest multiclass) metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<String>,
    /// Input features, in a fixed order that summaries and profiles follow.
    #[serde(default)]
    pub features: Vec<FeatureSpec>,
    /// Protected or segment attributes.
    #[serde(default)]
    pub attributes: Vec<AttributeSpec>,
    /// Intersections of two or more attributes (`[[gender, age_band]]`): summaries count every
    /// cell of their declared groups (`other` included), and each is a fairness attribute of
    /// its own, named by [`intersection_name`] (`gender*age_band`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intersections: Vec<IntersectionSpec>,
}

/// Joins the attribute names of an intersection, and the group names of one of its cells.
pub const INTERSECTION_SEPARATOR: &str = "*";

/// The most cells one intersection may have (the product of its attributes' bucket counts):
/// keeps a summary's size bounded whatever the schema. A cell is 100 to 120 bytes of JSON,
/// so the largest intersection adds under 30 KiB to a summary (gender × age band, 18 cells:
/// under 2 KiB).
pub const MAX_INTERSECTION_CELLS: usize = 256;

/// An intersection of attributes, written either as a list of attribute names
/// (`[gender, age_band]`) or, to set its own minimum group size, as
/// `{of: [gender, age_band], min_group_samples: 30}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntersectionSpec {
    /// Just the attribute names.
    Attributes(Vec<String>),
    /// The attribute names and options.
    Detailed(DetailedIntersection),
}

/// The long form of an [`IntersectionSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedIntersection {
    /// The attribute names, two or more.
    pub of: Vec<String>,
    /// As [`AttributeSpec::min_group_samples`], for the cells of this intersection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_group_samples: Option<u64>,
}

impl IntersectionSpec {
    /// The attribute names it intersects.
    pub fn attributes(&self) -> &[String] {
        match self {
            Self::Attributes(a) => a,
            Self::Detailed(d) => &d.of,
        }
    }

    /// Its own minimum group size, if declared.
    pub fn min_group_samples(&self) -> Option<u64> {
        match self {
            Self::Attributes(_) => None,
            Self::Detailed(d) => d.min_group_samples,
        }
    }

    /// Its name as objectives, metrics labels and reports carry it: the attribute names
    /// joined by [`INTERSECTION_SEPARATOR`] (`gender*age_band`).
    pub fn name(&self) -> String {
        intersection_name(self.attributes())
    }
}

/// The name of the intersection of `attributes`: `gender*age_band`.
pub fn intersection_name(attributes: &[impl AsRef<str>]) -> String {
    attributes
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(INTERSECTION_SEPARATOR)
}

/// One fairness attribute resolved against the schema: a declared attribute or an
/// intersection, with the name of each of its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairnessAttribute {
    /// `gender`, or `gender*age_band`.
    pub name: String,
    /// Bucket names in summary order: `F`, `M`, `other`; for an intersection, its cells in
    /// row-major order of its attributes (the last attribute varies fastest), each named by
    /// its groups joined by [`INTERSECTION_SEPARATOR`] (`F*18-29`).
    pub group_names: Vec<String>,
    /// The reference group of the signed metrics: the attribute's, or for an intersection the
    /// cell of every attribute's reference group (when each declares one).
    pub reference_group: Option<String>,
    /// The declared minimum group size.
    pub min_group_samples: Option<u64>,
}

fn default_version() -> String {
    "0".to_owned()
}

/// A schema that cannot be used, with the field at fault.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("model schema: {field}: {reason}")]
pub struct SchemaError {
    /// Dotted path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn schema_error(field: impl Into<String>, reason: impl Into<String>) -> SchemaError {
    SchemaError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl ModelSchema {
    /// Checks internal consistency and fills defaults (binary classes `["0", "1"]`, positive
    /// class the last class). Returns the schema ready for use.
    pub fn validated(mut self) -> Result<Self, SchemaError> {
        if self.name.trim().is_empty() {
            return Err(schema_error("name", "must not be empty"));
        }
        match self.task {
            Task::Binary => {
                if self.classes.is_empty() {
                    self.classes = vec!["0".to_owned(), "1".to_owned()];
                }
                if self.classes.len() != 2 {
                    return Err(schema_error(
                        "classes",
                        "a binary model has exactly two classes",
                    ));
                }
            }
            Task::Multiclass => {
                if self.classes.len() < 2 {
                    return Err(schema_error(
                        "classes",
                        "a multiclass model declares at least two classes",
                    ));
                }
            }
            Task::Regression => {
                if !self.classes.is_empty() {
                    return Err(schema_error("classes", "a regression model has no classes"));
                }
                if self.positive_class.is_some() {
                    return Err(schema_error(
                        "positive_class",
                        "a regression model has no positive class",
                    ));
                }
            }
        }
        if self.task != Task::Regression {
            let positive = self
                .positive_class
                .get_or_insert_with(|| self.classes.last().cloned().unwrap_or_default());
            if !self.classes.contains(positive) {
                return Err(schema_error(
                    "positive_class",
                    format!("{positive:?} is not one of the classes"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.features.iter().enumerate() {
            if f.name.is_empty() {
                return Err(schema_error(
                    format!("features[{i}].name"),
                    "must not be empty",
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(schema_error(
                    format!("features[{i}].name"),
                    format!("duplicate feature {:?}", f.name),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.attributes.iter().enumerate() {
            if a.name.contains(INTERSECTION_SEPARATOR) {
                return Err(schema_error(
                    format!("attributes[{i}].name"),
                    format!(
                        "{INTERSECTION_SEPARATOR:?} is reserved for the names of intersections"
                    ),
                ));
            }
            if !seen.insert(a.name.as_str()) {
                return Err(schema_error(
                    format!("attributes[{i}].name"),
                    format!("duplicate attribute {:?}", a.name),
                ));
            }
            if a.groups.is_empty() {
                return Err(schema_error(
                    format!("attributes[{i}].groups"),
                    "declare at least one group",
                ));
            }
            if a.groups.iter().any(|g| g == OTHER_GROUP) {
                return Err(schema_error(
                    format!("attributes[{i}].groups"),
                    format!("{OTHER_GROUP:?} is reserved for undeclared values"),
                ));
            }
            if let Some(r) = &a.reference_group {
                if !a.groups.contains(r) {
                    return Err(schema_error(
                        format!("attributes[{i}].reference_group"),
                        format!("{r:?} is not one of the groups"),
                    ));
                }
            }
        }
        self.validate_intersections()?;
        Ok(self)
    }

    fn validate_intersections(&self) -> Result<(), SchemaError> {
        let mut seen = std::collections::HashSet::new();
        for (i, x) in self.intersections.iter().enumerate() {
            let field = format!("intersections[{i}]");
            let names = x.attributes();
            if names.len() < 2 {
                return Err(schema_error(field, "intersect at least two attributes"));
            }
            let mut cells: usize = 1;
            let mut members = std::collections::HashSet::new();
            for (j, name) in names.iter().enumerate() {
                let Some(a) = self.attributes.iter().find(|a| &a.name == name) else {
                    return Err(schema_error(
                        format!("{field}[{j}]"),
                        format!("{name:?} is not a declared attribute"),
                    ));
                };
                if !members.insert(name.as_str()) {
                    return Err(schema_error(
                        format!("{field}[{j}]"),
                        format!("{name:?} appears twice"),
                    ));
                }
                let sep = INTERSECTION_SEPARATOR;
                if name.contains(sep) || a.groups.iter().any(|g| g.contains(sep)) {
                    return Err(schema_error(
                        format!("{field}[{j}]"),
                        format!(
                            "attribute {name:?} or one of its groups contains {sep:?}, which \
                             joins the names of an intersection's cells"
                        ),
                    ));
                }
                cells = cells.saturating_mul(a.bucket_count());
            }
            if cells > MAX_INTERSECTION_CELLS {
                return Err(schema_error(
                    field,
                    format!(
                        "{cells} cells (the product of the groups, other included) is more \
                         than {MAX_INTERSECTION_CELLS}"
                    ),
                ));
            }
            if !seen.insert(x.name()) {
                return Err(schema_error(
                    field,
                    format!("duplicate intersection {:?}", x.name()),
                ));
            }
        }
        Ok(())
    }

    /// The attribute positions of each intersection, in declaration order (the schema must be
    /// validated).
    pub fn intersection_members(&self) -> Vec<Vec<usize>> {
        self.intersections
            .iter()
            .map(|x| {
                x.attributes()
                    .iter()
                    .filter_map(|n| self.attribute_index(n))
                    .collect()
            })
            .collect()
    }

    /// Every fairness attribute: the declared attributes, then the intersections.
    pub fn fairness_attributes(&self) -> Vec<FairnessAttribute> {
        let mut out: Vec<FairnessAttribute> = self
            .attributes
            .iter()
            .map(|a| FairnessAttribute {
                name: a.name.clone(),
                group_names: (0..a.bucket_count())
                    .map(|i| a.group_name(i).to_owned())
                    .collect(),
                reference_group: a.reference_group.clone(),
                min_group_samples: a.min_group_samples,
            })
            .collect();
        for (x, members) in self.intersections.iter().zip(self.intersection_members()) {
            let specs: Vec<&AttributeSpec> = members.iter().map(|&i| &self.attributes[i]).collect();
            let mut group_names = vec![String::new()];
            for a in &specs {
                group_names = group_names
                    .iter()
                    .flat_map(|prefix| {
                        (0..a.bucket_count()).map(move |g| {
                            if prefix.is_empty() {
                                a.group_name(g).to_owned()
                            } else {
                                format!("{prefix}{INTERSECTION_SEPARATOR}{}", a.group_name(g))
                            }
                        })
                    })
                    .collect();
            }
            let reference_group = specs
                .iter()
                .map(|a| a.reference_group.clone())
                .collect::<Option<Vec<String>>>()
                .map(|r| r.join(INTERSECTION_SEPARATOR));
            out.push(FairnessAttribute {
                name: x.name(),
                group_names,
                reference_group,
                min_group_samples: x.min_group_samples(),
            });
        }
        out
    }

    /// A fairness attribute (declared or intersection) by name.
    pub fn fairness_attribute(&self, name: &str) -> Option<FairnessAttribute> {
        self.fairness_attributes()
            .into_iter()
            .find(|a| a.name == name)
    }

    /// Index of the positive class (classification only).
    pub fn positive_index(&self) -> Option<usize> {
        let p = self.positive_class.as_ref()?;
        self.classes.iter().position(|c| c == p)
    }

    /// Index of a class label given in its string form.
    pub fn class_index(&self, label: &str) -> Option<usize> {
        self.classes
            .iter()
            .position(|c| crate::few::same_text(c, label))
    }

    /// Position of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    /// Position of an attribute by name.
    pub fn attribute_index(&self, name: &str) -> Option<usize> {
        self.attributes.iter().position(|a| a.name == name)
    }

    /// Whether the task is a classification.
    pub fn is_classification(&self) -> bool {
        self.task != Task::Regression
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary() -> ModelSchema {
        ModelSchema {
            intersections: Vec::new(),
            name: "m".into(),
            version: "1".into(),
            task: Task::Binary,
            classes: vec![],
            positive_class: None,
            features: vec![FeatureSpec {
                name: "x".into(),
                kind: FeatureKind::Numeric,
            }],
            attributes: vec![AttributeSpec {
                min_group_samples: None,
                name: "g".into(),
                groups: vec!["a".into(), "b".into()],
                reference_group: Some("a".into()),
            }],
        }
    }

    #[test]
    fn binary_defaults_to_zero_one_with_one_positive() {
        let s = binary().validated().unwrap();
        assert_eq!(s.classes, vec!["0", "1"]);
        assert_eq!(s.positive_index(), Some(1));
    }

    #[test]
    fn undeclared_values_fall_into_other() {
        let s = binary().validated().unwrap();
        let a = &s.attributes[0];
        assert_eq!(a.group_index("b"), 1);
        assert_eq!(a.group_index("zzz"), 2);
        assert_eq!(a.group_name(2), OTHER_GROUP);
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = binary();
        s.attributes[0].reference_group = Some("c".into());
        let e = s.validated().unwrap_err();
        assert_eq!(e.field, "attributes[0].reference_group");

        let mut s = binary();
        s.features.push(s.features[0].clone());
        assert_eq!(s.validated().unwrap_err().field, "features[1].name");
    }
}
