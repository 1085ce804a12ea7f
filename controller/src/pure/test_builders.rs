//! Builders the unit tests of `scheduling` and `affinity` share.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use std::collections::BTreeMap;

/// A requirement; no values means the field is absent (Exists, DoesNotExist).
pub fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_owned(),
        operator: op.to_owned(),
        values: if values.is_empty() { None } else { Some(values.iter().map(|v| v.to_string()).collect()) },
    }
}

/// A term of label expressions only.
pub fn term(exprs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm { match_expressions: Some(exprs), match_fields: None }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
