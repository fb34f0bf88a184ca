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
}

impl AttributeSpec {
    /// Index of `value` among the groups; values outside them map to the `other` bucket,
    /// whose index is `groups.len()`.
    pub fn group_index(&self, value: &str) -> usize {
        self.groups
            .iter()
            .position(|g| g == value)
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
        Ok(self)
    }

    /// Index of the positive class (classification only).
    pub fn positive_index(&self) -> Option<usize> {
        let p = self.positive_class.as_ref()?;
        self.classes.iter().position(|c| c == p)
    }

    /// Index of a class label given in its string form.
    pub fn class_index(&self, label: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == label)
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
