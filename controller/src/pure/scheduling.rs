//! Would a DaemonSet run a pod on a node? Decided the way the DaemonSet
//! controller decides it (`NodeShouldRunDaemonPod` in kubernetes
//! `pkg/controller/daemon`). The controller is the gatekeeper: the pod it
//! creates has its node affinity replaced by `metadata.name In [node]`, so the
//! scheduler only re-checks what is below with the same rules.
//!
//! 1. `spec.template.spec.nodeName`, when set, must be the node's name.
//! 2. `nodeSelector`: every pair must be a label of the node
//!    (`labels.SelectorFromSet`; an empty selector matches every node).
//! 3. Required node affinity (component-helpers `nodeaffinity.LazyErrorNodeSelector`):
//!    absent, it matches every node; present, its `nodeSelectorTerms` are ORed, so
//!    an empty list matches no node. Within a term `matchExpressions` and
//!    `matchFields` are ANDed, and a term with neither matches no node. A term the
//!    scheduler cannot parse (unknown operator, wrong number of values, a `Gt`/`Lt`
//!    value that is not an integer, an invalid label key or value) matches no node
//!    while the other terms still count: parse errors are ignored "for backwards
//!    compatibility". `matchFields` compare node fields, of which only
//!    `metadata.name` exists; a node without a name skips `matchFields` entirely
//!    (`extractNodeFields`), and that is what a hypothetical node from
//!    [`admits_labels`] is.
//! 4. Taints: only `NoSchedule` and `NoExecute` keep a pod off
//!    (`FindMatchingUntoleratedTaint`); each must be tolerated by the pod's own
//!    tolerations or by those the DaemonSet controller adds to every pod
//!    (`AddOrUpdateDaemonPodTolerations`, see [`automatic_tolerations`]). A
//!    cordoned node (`spec.unschedulable`) never keeps a DaemonSet pod off: the
//!    scheduler treats it as the `node.kubernetes.io/unschedulable:NoSchedule`
//!    taint, which every DaemonSet pod tolerates, so it is not modelled.
//!
//! [`admits`] answers for a pod the controller would create. A pod that
//! already runs is judged by [`keeps_running`] (the controller's
//! `shouldContinueRunning`): rules 1–3 as above, but of the taints only an
//! untolerated `NoExecute` one removes it; a `NoSchedule` taint that arrives
//! while it runs only keeps new pods off.
//!
//! Anything missing from the objects counts as empty, as the API server would
//! default it: a DaemonSet without a pod template admits every untainted node.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};
use std::collections::BTreeMap;
use std::fmt;

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// The node field `matchFields` can select on (the only one Kubernetes supports).
pub const NAME_FIELD: &str = "metadata.name";

/// (key, effect) of the `Exists` tolerations the DaemonSet controller adds to
/// every pod it creates (kubernetes `pkg/controller/daemon/util`).
const AUTOMATIC: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
];
/// Added only to hostNetwork pods: they need no pod network to start.
const AUTOMATIC_HOST_NETWORK: (&str, &str) = ("node.kubernetes.io/network-unavailable", NO_SCHEDULE);

/// Whether a DaemonSet would run a pod on a node, and if not, the first rule
/// (in the DaemonSet controller's order) that keeps it off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The pod template names another node in `spec.nodeName`.
    NodeNameMismatch {
        pinned: String,
    },
    /// `nodeSelector` asks for `key=want`; the node has `got` (`None`: no such label).
    NodeSelectorMismatch {
        key: String,
        want: String,
        got: Option<String>,
    },
    /// No term of the required node affinity matches; one entry per term, in
    /// order (none: the affinity has an empty `nodeSelectorTerms` list).
    AffinityMismatch {
        terms: Vec<TermMismatch>,
    },
    /// A `NoSchedule` or `NoExecute` taint no toleration matches.
    UntoleratedTaint {
        key: String,
        value: Option<String>,
        effect: String,
    },
}

impl Admission {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Admission::Admitted)
    }

    /// A stable name of the outcome, for reasons in events and JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            Admission::Admitted => "Admitted",
            Admission::NodeNameMismatch { .. } => "NodeNameMismatch",
            Admission::NodeSelectorMismatch { .. } => "NodeSelectorMismatch",
            Admission::AffinityMismatch { .. } => "AffinityMismatch",
            Admission::UntoleratedTaint { .. } => "UntoleratedTaint",
        }
    }
}

impl fmt::Display for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Admission::Admitted => f.write_str("admitted"),
            Admission::NodeNameMismatch { pinned } => {
                write!(f, "the pod template is pinned to node {pinned:?} (spec.nodeName)")
            }
            Admission::NodeSelectorMismatch { key, want, got } => {
                write!(f, "nodeSelector {key}={want} does not match: ")?;
                match got {
                    Some(got) => write!(f, "the node has {key}={got}"),
                    None => write!(f, "the node has no label {key}"),
                }
            }
            Admission::AffinityMismatch { terms } if terms.is_empty() => f.write_str(
                "required node affinity has an empty nodeSelectorTerms list, which matches no node",
            ),
            Admission::AffinityMismatch { terms } => {
                f.write_str("no term of the required node affinity matches: ")?;
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "nodeSelectorTerms[{i}]: {term}")?;
                }
                Ok(())
            }
            Admission::UntoleratedTaint { key, value, effect } => match value.as_deref() {
                Some(value) if !value.is_empty() => write!(f, "untolerated taint {key}={value}:{effect}"),
                _ => write!(f, "untolerated taint {key}:{effect}"),
            },
        }
    }
}

/// Why one nodeSelectorTerm does not match a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermMismatch {
    /// Neither `matchExpressions` nor `matchFields`: such a term matches no node.
    Empty,
    /// The scheduler cannot parse the term, so it matches no node.
    Invalid { reason: String },
    /// The first `matchExpressions` entry the node's labels fail; `got` is the
    /// node's value for `key` (`None`: no such label).
    Expression { key: String, operator: String, values: Vec<String>, got: Option<String> },
    /// The first `matchFields` entry the node fails; `got` is the node's value of
    /// the field (empty for any field but `metadata.name`).
    Field { key: String, operator: String, values: Vec<String>, got: String },
}

impl fmt::Display for TermMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TermMismatch::Empty => f.write_str("an empty term matches no node"),
            TermMismatch::Invalid { reason } => write!(f, "invalid, so it matches no node ({reason})"),
            TermMismatch::Expression { key, operator, values, got } => {
                write!(f, "{key} {operator} [{}] is not met (", values.join(", "))?;
                match got {
                    Some(got) => write!(f, "the node has {key}={got})"),
                    None => write!(f, "the node has no label {key})"),
                }
            }
            TermMismatch::Field { key, operator, values, got } => {
                write!(
                    f,
                    "field {key} {operator} [{}] is not met (the node has {key}={got:?})",
                    values.join(", ")
                )
            }
        }
    }
}

/// Would the DaemonSet run a pod on this node?
pub fn admits(ds: &DaemonSet, node: &Node) -> Admission {
    let no_labels = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&no_labels);
    with_template_spec(ds, |spec| admits_spec(spec, labels, node.metadata.name.as_deref(), node_taints(node)))
}

/// Would a pod of the DaemonSet that already runs on this node keep running
/// there (`NodeShouldRunDaemonPod`'s `shouldContinueRunning`)? As [`admits`],
/// except that only an untolerated `NoExecute` taint removes it: the DaemonSet
/// controller leaves it alone under an untolerated `NoSchedule` taint (it only
/// creates no new pod there), while it deletes it, and the taint eviction
/// controller evicts it, under an untolerated `NoExecute` one. Whatever
/// [`admits`] admits keeps running; not the converse.
pub fn keeps_running(ds: &DaemonSet, node: &Node) -> Admission {
    let no_labels = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&no_labels);
    let no_execute: Vec<Taint> =
        node_taints(node).iter().filter(|t| t.effect == NO_EXECUTE).cloned().collect();
    with_template_spec(ds, |spec| admits_spec(spec, labels, node.metadata.name.as_deref(), &no_execute))
}

fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

/// Would the DaemonSet run a pod on a hypothetical node with these labels and
/// taints, and no name (so `matchFields` do not restrict it, as in Kubernetes)?
pub fn admits_labels(ds: &DaemonSet, labels: &BTreeMap<String, String>, taints: &[Taint]) -> Admission {
    with_template_spec(ds, |spec| admits_spec(spec, labels, None, taints))
}

/// The DaemonSet's pod template spec; missing parts count as empty.
pub fn pod_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec.as_ref().and_then(|s| s.template.spec.clone()).unwrap_or_default()
}

/// Runs `f` on the template spec without copying it (an empty one when missing).
fn with_template_spec<T>(ds: &DaemonSet, f: impl FnOnce(&PodSpec) -> T) -> T {
    match ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
        Some(spec) => f(spec),
        None => f(&PodSpec::default()),
    }
}

/// Would a DaemonSet pod with this template spec run on a node with these
/// labels, name (`None` or empty: unnamed) and taints?
pub fn admits_spec(
    spec: &PodSpec,
    labels: &BTreeMap<String, String>,
    name: Option<&str>,
    taints: &[Taint],
) -> Admission {
    let name = name.unwrap_or("");
    if let Some(pinned) = spec.node_name.as_deref().filter(|p| !p.is_empty()) {
        if pinned != name {
            return Admission::NodeNameMismatch { pinned: pinned.to_owned() };
        }
    }
    for (key, want) in spec.node_selector.iter().flatten() {
        let got = labels.get(key);
        if got != Some(want) {
            return Admission::NodeSelectorMismatch {
                key: key.clone(),
                want: want.clone(),
                got: got.cloned(),
            };
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    if let Some(required) = required {
        if let Err(terms) = node_selector_matches(required, labels, Some(name)) {
            return Admission::AffinityMismatch { terms };
        }
    }
    if let Some(taint) = untolerated_taint(taints, &daemon_tolerations(spec)) {
        return Admission::UntoleratedTaint {
            key: taint.key.clone(),
            value: taint.value.clone(),
            effect: taint.effect.clone(),
        };
    }
    Admission::Admitted
}

/// Does a required node affinity match a node? `Err` lists why each term
/// does not (empty when there are no terms).
fn node_selector_matches(
    selector: &NodeSelector,
    labels: &BTreeMap<String, String>,
    name: Option<&str>,
) -> Result<(), Vec<TermMismatch>> {
    let mut misses = Vec::with_capacity(selector.node_selector_terms.len());
    for term in &selector.node_selector_terms {
        match term_matches(term, labels, name) {
            Ok(()) => return Ok(()),
            Err(miss) => misses.push(miss),
        }
    }
    Err(misses)
}

/// Does one nodeSelectorTerm match a node with these labels and name (`None`
/// or empty: unnamed, so `matchFields` are skipped)?
fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: Option<&str>,
) -> Result<(), TermMismatch> {
    let parsed = parse_term(term)?;
    for (req, op) in &parsed.expressions {
        let got = labels.get(&req.key).map(String::as_str);
        if !op.matches(got) {
            return Err(TermMismatch::Expression {
                key: req.key.clone(),
                operator: req.operator.clone(),
                values: values_of(req).to_vec(),
                got: got.map(str::to_owned),
            });
        }
    }
    let name = name.unwrap_or("");
    if name.is_empty() {
        return Ok(());
    }
    for (req, op) in &parsed.fields {
        let got = if req.key == NAME_FIELD { name } else { "" };
        if !op.matches(got) {
            return Err(TermMismatch::Field {
                key: req.key.clone(),
                operator: req.operator.clone(),
                values: values_of(req).to_vec(),
                got: got.to_owned(),
            });
        }
    }
    Ok(())
}

/// `Some` when a term can match no node whatever its labels: it is empty, or
/// the scheduler cannot parse it.
pub fn term_defect(term: &NodeSelectorTerm) -> Option<TermMismatch> {
    parse_term(term).err()
}

/// Why the scheduler could not parse this `matchExpressions` entry, if it could not.
pub fn expression_error(req: &NodeSelectorRequirement) -> Option<String> {
    parse_expression(req).err()
}

/// Does a node whose labels are `labels` meet this `matchExpressions` entry?
/// An entry the scheduler cannot parse is met by no node.
pub fn requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    parse_expression(req).is_ok_and(|op| op.matches(labels.get(&req.key).map(String::as_str)))
}

/// Does the toleration tolerate the taint (`Toleration.ToleratesTaint`)?
/// An empty effect matches every effect, an empty key every key; `Exists`
/// matches any value, `Equal` (or no operator) compares values.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        // Unknown operators (and the 1.35 alpha Gt/Lt, beyond this API version) tolerate nothing.
        _ => false,
    }
}

/// The tolerations the DaemonSet controller adds to every pod:
/// `node.kubernetes.io/not-ready` and `unreachable` (`NoExecute`);
/// `disk-pressure`, `memory-pressure`, `pid-pressure`, `unschedulable`
/// (`NoSchedule`); and for hostNetwork pods `network-unavailable` (`NoSchedule`).
/// Note `not-ready:NoSchedule` is not among them.
fn automatic_tolerations(host_network: bool) -> Vec<Toleration> {
    let extra = host_network.then_some(AUTOMATIC_HOST_NETWORK);
    AUTOMATIC
        .iter()
        .copied()
        .chain(extra)
        .map(|(key, effect)| Toleration {
            key: Some(key.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some(effect.to_owned()),
            ..Toleration::default()
        })
        .collect()
}

/// The template's tolerations plus the automatic ones.
pub fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut all = spec.tolerations.clone().unwrap_or_default();
    all.extend(automatic_tolerations(spec.host_network.unwrap_or(false)));
    all
}

/// The first `NoSchedule`/`NoExecute` taint none of the tolerations tolerates.
pub fn untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE)
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

fn values_of(req: &NodeSelectorRequirement) -> &[String] {
    req.values.as_deref().unwrap_or(&[])
}

/// A parsed `matchExpressions` entry (`labels.Requirement`).
#[derive(Debug, Clone, Copy)]
enum LabelOp<'a> {
    In(&'a [String]),
    NotIn(&'a [String]),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

impl LabelOp<'_> {
    /// `Requirement.Matches` on the node's value of the key (`None`: absent).
    fn matches(self, got: Option<&str>) -> bool {
        match (self, got) {
            (LabelOp::In(values), Some(v)) => values.iter().any(|x| x == v),
            (LabelOp::NotIn(values), Some(v)) => !values.iter().any(|x| x == v),
            (LabelOp::In(_), None) => false,
            // NotIn and DoesNotExist hold for a node without the label.
            (LabelOp::NotIn(_), None) => true,
            (LabelOp::Exists, got) => got.is_some(),
            (LabelOp::DoesNotExist, got) => got.is_none(),
            (LabelOp::Gt(bound), Some(v)) => parse_int(v).is_some_and(|n| n > bound),
            (LabelOp::Lt(bound), Some(v)) => parse_int(v).is_some_and(|n| n < bound),
            (LabelOp::Gt(_) | LabelOp::Lt(_), None) => false,
        }
    }
}

/// A parsed `matchFields` entry: a one-term field selector.
#[derive(Debug, Clone, Copy)]
enum FieldOp<'a> {
    Equal(&'a str),
    NotEqual(&'a str),
}

impl FieldOp<'_> {
    fn matches(self, got: &str) -> bool {
        match self {
            FieldOp::Equal(v) => got == v,
            FieldOp::NotEqual(v) => got != v,
        }
    }
}

struct ParsedTerm<'a> {
    expressions: Vec<(&'a NodeSelectorRequirement, LabelOp<'a>)>,
    fields: Vec<(&'a NodeSelectorRequirement, FieldOp<'a>)>,
}

/// `newNodeSelectorTerm`: empty terms and terms with any parse error are rejected.
fn parse_term(term: &NodeSelectorTerm) -> Result<ParsedTerm<'_>, TermMismatch> {
    let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if expressions.is_empty() && fields.is_empty() {
        return Err(TermMismatch::Empty);
    }
    let mut errors = Vec::new();
    let mut parsed = ParsedTerm { expressions: Vec::new(), fields: Vec::new() };
    for (i, req) in expressions.iter().enumerate() {
        match parse_expression(req) {
            Ok(op) => parsed.expressions.push((req, op)),
            Err(e) => errors.push(format!("matchExpressions[{i}]: {e}")),
        }
    }
    for (i, req) in fields.iter().enumerate() {
        match parse_field(req) {
            Ok(op) => parsed.fields.push((req, op)),
            Err(e) => errors.push(format!("matchFields[{i}]: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(TermMismatch::Invalid { reason: errors.join("; ") })
    }
}

/// `labels.NewRequirement` as called by `nodeSelectorRequirementsAsSelector`.
fn parse_expression(req: &NodeSelectorRequirement) -> Result<LabelOp<'_>, String> {
    let values = values_of(req);
    let mut errors = Vec::new();
    if !is_qualified_name(&req.key) {
        errors.push(format!("key {:?} is not a valid label key", req.key));
    }
    let op = match req.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            errors.push(format!("operator {} needs at least one value", req.operator));
            None
        }
        "In" => Some(LabelOp::In(values)),
        "NotIn" => Some(LabelOp::NotIn(values)),
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            errors.push(format!("operator {} takes no values", req.operator));
            None
        }
        "Exists" => Some(LabelOp::Exists),
        "DoesNotExist" => Some(LabelOp::DoesNotExist),
        "Gt" | "Lt" => match values {
            [value] => match parse_int(value) {
                Some(n) if req.operator == "Gt" => Some(LabelOp::Gt(n)),
                Some(n) => Some(LabelOp::Lt(n)),
                None => {
                    errors.push(format!("operator {} needs an integer, not {value:?}", req.operator));
                    None
                }
            },
            _ => {
                errors.push(format!("operator {} needs exactly one value", req.operator));
                None
            }
        },
        other => {
            errors.push(format!("operator {other:?} is not supported"));
            None
        }
    };
    for value in values {
        if !is_label_value(value) {
            errors.push(format!("value {value:?} is not a valid label value"));
        }
    }
    match op {
        Some(op) if errors.is_empty() => Ok(op),
        _ => Err(errors.join(", ")),
    }
}

/// `nodeSelectorRequirementsAsFieldSelector`: In/NotIn with exactly one value.
fn parse_field(req: &NodeSelectorRequirement) -> Result<FieldOp<'_>, String> {
    match (req.operator.as_str(), values_of(req)) {
        ("In", [value]) => Ok(FieldOp::Equal(value)),
        ("NotIn", [value]) => Ok(FieldOp::NotEqual(value)),
        ("In" | "NotIn", _) => Err(format!("operator {} on a field needs exactly one value", req.operator)),
        (other, _) => Err(format!("operator {other:?} is not supported on fields")),
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits, no
/// spaces; Rust's `i64::from_str` accepts exactly the same strings.
fn parse_int(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// `validation.IsQualifiedName`: `[prefix/]name`, the prefix a DNS-1123
/// subdomain, the name at most 63 characters of `[A-Za-z0-9_.-]`, alphanumeric
/// at both ends.
fn is_qualified_name(key: &str) -> bool {
    let name = match key.split_once('/') {
        None => key,
        Some((prefix, name)) => {
            if name.contains('/') || !is_dns1123_subdomain(prefix) {
                return false;
            }
            name
        }
    };
    name.len() <= 63 && is_name_part(name)
}

/// `validation.IsValidLabelValue`: empty, or a name part of at most 63 characters.
fn is_label_value(value: &str) -> bool {
    value.is_empty() || (value.len() <= 63 && is_name_part(value))
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `validation.IsDNS1123Subdomain`: at most 253 characters, dot-separated
/// labels of `[a-z0-9-]`, alphanumeric at both ends.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    is_lower_alnum(*first)
                        && is_lower_alnum(*last)
                        && bytes.iter().all(|b| is_lower_alnum(*b) || *b == b'-')
                }
                _ => false,
            }
        })
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
    use crate::pure::test_builders::{labels, req, term};
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;

    fn fields_term(fields: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: None, match_fields: Some(fields) }
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect: effect.to_owned(),
            time_added: None,
        }
    }

    fn toleration(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(str::to_owned),
            operator: op.map(str::to_owned),
            value: value.map(str::to_owned),
            effect: effect.map(str::to_owned),
            toleration_seconds: None,
        }
    }

    fn ds_with(spec: PodSpec) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta { name: Some("ds".into()), ..ObjectMeta::default() },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec { metadata: None, spec: Some(spec) },
                ..DaemonSetSpec::default()
            }),
            status: None,
        }
    }

    fn ds_terms(terms: Option<Vec<NodeSelectorTerm>>) -> DaemonSet {
        ds_with(PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: terms
                        .map(|node_selector_terms| NodeSelector { node_selector_terms }),
                    preferred_during_scheduling_ignored_during_execution: None,
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        })
    }

    fn node(name: Option<&str>, pairs: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: name.map(str::to_owned),
                labels: Some(labels(pairs)),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec { taints: Some(taints), ..NodeSpec::default() }),
            status: None,
        }
    }

    #[test]
    fn operators_table() {
        let present = |v: &str| labels(&[("k", v)]);
        let absent = labels(&[("other", "x")]);
        #[rustfmt::skip]
        let cases: Vec<(NodeSelectorRequirement, BTreeMap<String, String>, bool)> = vec![
            (req("k", "In", &["a", "b"]), present("a"), true),
            (req("k", "In", &["a", "b"]), present("b"), true),
            (req("k", "In", &["a", "b"]), present("c"), false),
            (req("k", "In", &["a"]), absent.clone(), false),
            (req("k", "In", &[""]), present(""), true),
            (req("k", "In", &[]), present("a"), false), // In needs values
            (req("k", "NotIn", &["a", "b"]), present("a"), false),
            (req("k", "NotIn", &["a", "b"]), present("c"), true),
            (req("k", "NotIn", &["a"]), absent.clone(), true),
            (req("k", "NotIn", &[]), absent.clone(), false), // NotIn needs values
            (req("k", "Exists", &[]), present("a"), true),
            (req("k", "Exists", &[]), present(""), true),
            (req("k", "Exists", &[]), absent.clone(), false),
            (req("k", "Exists", &["a"]), present("a"), false), // Exists takes no values
            (req("k", "DoesNotExist", &[]), absent.clone(), true),
            (req("k", "DoesNotExist", &[]), present("a"), false),
            (req("k", "DoesNotExist", &["a"]), absent.clone(), false),
            (req("k", "Gt", &["5"]), present("6"), true),
            (req("k", "Gt", &["5"]), present("5"), false),
            (req("k", "Gt", &["5"]), present("4"), false),
            (req("k", "Gt", &["5"]), present("007"), true),
            (req("k", "Gt", &["5"]), present("+6"), true),
            (req("k", "Gt", &["5"]), present("-6"), false),
            (req("k", "Gt", &["5"]), present("six"), false),
            (req("k", "Gt", &["5"]), present("6.0"), false),
            (req("k", "Gt", &["5"]), present(" 6"), false),
            (req("k", "Gt", &["5"]), present("99999999999999999999"), false), // overflows i64
            (req("k", "Gt", &["5"]), absent.clone(), false),
            (req("k", "Gt", &["5", "6"]), present("9"), false), // exactly one value
            (req("k", "Gt", &[]), present("9"), false),
            (req("k", "Gt", &["five"]), present("9"), false),
            (req("k", "Gt", &["-1"]), present("0"), false), // "-1" is no label value
            (req("k", "Lt", &["5"]), present("4"), true),
            (req("k", "Lt", &["5"]), present("0"), true),
            (req("k", "Lt", &["5"]), present("5"), false),
            (req("k", "Lt", &["5"]), present("-9"), true),
            (req("k", "Lt", &["5"]), present("x"), false),
            (req("k", "Lt", &["5"]), absent.clone(), false),
            (req("k", "Lt", &["05"]), present("4"), true),
            (req("k", "Equal", &["a"]), present("a"), false), // unknown operator
            (req("k", "in", &["a"]), present("a"), false), // operators are case-sensitive
            (req("k", "", &["a"]), present("a"), false),
            (req("k", "In", &["has space"]), labels(&[("k", "has space")]), false), // invalid value
            (req("bad key", "Exists", &[]), labels(&[("bad key", "a")]), false),
            (req("", "DoesNotExist", &[]), absent.clone(), false),
            (req("a/b/c", "DoesNotExist", &[]), absent.clone(), false),
            (req("Example.com/k", "DoesNotExist", &[]), absent.clone(), false), // prefix is lowercase
            (req("example.com/k", "Exists", &[]), labels(&[("example.com/k", "x")]), true),
            (req("/k", "DoesNotExist", &[]), absent.clone(), false),
            (req("example.com/", "DoesNotExist", &[]), absent.clone(), false),
            (req(&"k".repeat(64), "DoesNotExist", &[]), absent.clone(), false),
            (req(&"k".repeat(63), "DoesNotExist", &[]), absent.clone(), true),
            (req("k", "In", &[&"v".repeat(64)]), labels(&[("k", &"v".repeat(64))]), false),
        ];
        for (i, (r, l, want)) in cases.iter().enumerate() {
            assert_eq!(requirement_matches(r, l), *want, "case {i}: {r:?} on {l:?}");
            // The same verdict through a DaemonSet with a single-term affinity.
            let ds = ds_terms(Some(vec![term(vec![r.clone()])]));
            assert_eq!(admits_labels(&ds, l, &[]).is_admitted(), *want, "case {i} via admits_labels");
        }
    }

    #[test]
    fn invalid_expressions_are_reported() {
        assert_eq!(expression_error(&req("k", "In", &["a"])), None);
        for r in [
            req("k", "In", &[]),
            req("k", "Exists", &["a"]),
            req("k", "Gt", &["x"]),
            req("k", "Gt", &["1", "2"]),
            req("k", "Nope", &[]),
            req("no spaces", "Exists", &[]),
            req("k", "NotIn", &["-x"]),
        ] {
            assert!(expression_error(&r).is_some(), "{r:?}");
        }
    }

    #[test]
    fn term_list_semantics() {
        let l = labels(&[("zone", "a"), ("tier", "db")]);
        let zone_a = term(vec![req("zone", "In", &["a"])]);
        let zone_b = term(vec![req("zone", "In", &["b"])]);
        let empty = NodeSelectorTerm::default();
        let empty_lists = NodeSelectorTerm { match_expressions: Some(vec![]), match_fields: Some(vec![]) };
        let invalid_and_zone_a = term(vec![req("zone", "In", &["a"]), req("tier", "Bogus", &[])]);
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<Vec<NodeSelectorTerm>>, bool)> = vec![
            ("no required affinity matches all", None, true),
            ("empty term list matches nothing", Some(vec![]), false),
            ("empty term matches nothing", Some(vec![empty.clone()]), false),
            ("empty lists match nothing", Some(vec![empty_lists.clone()]), false),
            ("one matching term", Some(vec![zone_a.clone()]), true),
            ("one failing term", Some(vec![zone_b.clone()]), false),
            ("terms are ORed", Some(vec![zone_b.clone(), zone_a.clone()]), true),
            ("empty term does not poison others", Some(vec![empty.clone(), zone_a.clone()]), true),
            ("invalid term matches nothing", Some(vec![invalid_and_zone_a.clone()]), false),
            ("invalid term does not poison others", Some(vec![invalid_and_zone_a, zone_a.clone()]), true),
            ("expressions are ANDed", Some(vec![term(vec![
                req("zone", "In", &["a"]), req("tier", "NotIn", &["db"])])]), false),
            ("expressions are ANDed, all met", Some(vec![term(vec![
                req("zone", "In", &["a"]), req("tier", "In", &["db"])])]), true),
        ];
        for (what, terms, want) in cases {
            let ds = ds_terms(terms);
            assert_eq!(admits_labels(&ds, &l, &[]).is_admitted(), want, "{what}");
        }
        // Affinity present but without a required part, or no node affinity: all match.
        let mut ds = ds_terms(None);
        assert!(admits_labels(&ds, &l, &[]).is_admitted());
        ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap().affinity = Some(Affinity::default());
        assert!(admits_labels(&ds, &l, &[]).is_admitted());
    }

    #[test]
    fn match_fields_semantics() {
        let name_in = |v: &[&str]| req(NAME_FIELD, "In", v);
        let name_not_in = |v: &[&str]| req(NAME_FIELD, "NotIn", v);
        #[rustfmt::skip]
        let cases: Vec<(NodeSelectorTerm, Option<&str>, bool)> = vec![
            (fields_term(vec![name_in(&["n1"])]), Some("n1"), true),
            (fields_term(vec![name_in(&["n1"])]), Some("n2"), false),
            (fields_term(vec![name_not_in(&["n1"])]), Some("n1"), false),
            (fields_term(vec![name_not_in(&["n1"])]), Some("n2"), true),
            (fields_term(vec![name_in(&["n1"]), name_not_in(&["n1"])]), Some("n1"), false),
            // An unnamed node skips matchFields (extractNodeFields yields no fields).
            (fields_term(vec![name_in(&["n1"])]), None, true),
            (fields_term(vec![name_in(&["n1"])]), Some(""), true),
            // Exactly one value, In/NotIn only: anything else is a parse error.
            (fields_term(vec![name_in(&["n1", "n2"])]), Some("n1"), false),
            (fields_term(vec![name_in(&[])]), Some("n1"), false),
            (fields_term(vec![req(NAME_FIELD, "Exists", &[])]), Some("n1"), false),
            (fields_term(vec![req(NAME_FIELD, "Exists", &[])]), None, false),
            // Unknown fields read as "".
            (fields_term(vec![req("spec.other", "In", &["x"])]), Some("n1"), false),
            (fields_term(vec![req("spec.other", "NotIn", &["x"])]), Some("n1"), true),
            // Expressions and fields are ANDed.
            (NodeSelectorTerm { match_expressions: Some(vec![req("zone", "In", &["a"])]),
                match_fields: Some(vec![name_in(&["n1"])]) }, Some("n1"), true),
            (NodeSelectorTerm { match_expressions: Some(vec![req("zone", "In", &["b"])]),
                match_fields: Some(vec![name_in(&["n1"])]) }, Some("n1"), false),
            (NodeSelectorTerm { match_expressions: Some(vec![req("zone", "In", &["a"])]),
                match_fields: Some(vec![name_in(&["n1"])]) }, Some("n2"), false),
        ];
        for (i, (t, name, want)) in cases.into_iter().enumerate() {
            let ds = ds_terms(Some(vec![t]));
            let n = node(name, &[("zone", "a")], vec![]);
            assert_eq!(admits(&ds, &n).is_admitted(), want, "case {i}");
        }
    }

    #[test]
    fn node_selector_and_node_name() {
        let sel = |pairs: &[(&str, &str)]| {
            ds_with(PodSpec { node_selector: Some(labels(pairs)), ..PodSpec::default() })
        };
        let l = labels(&[("os", "linux"), ("zone", "a")]);
        assert!(admits_labels(&sel(&[]), &l, &[]).is_admitted());
        assert!(admits_labels(&sel(&[("os", "linux")]), &l, &[]).is_admitted());
        assert!(admits_labels(&sel(&[("os", "linux"), ("zone", "a")]), &l, &[]).is_admitted());
        assert_eq!(
            admits_labels(&sel(&[("os", "linux"), ("zone", "b")]), &l, &[]),
            Admission::NodeSelectorMismatch { key: "zone".into(), want: "b".into(), got: Some("a".into()) }
        );
        assert_eq!(
            admits_labels(&sel(&[("gpu", "yes")]), &l, &[]),
            Admission::NodeSelectorMismatch { key: "gpu".into(), want: "yes".into(), got: None }
        );
        // An empty selector value still needs the label.
        assert!(!admits_labels(&sel(&[("gpu", "")]), &l, &[]).is_admitted());

        let pinned = ds_with(PodSpec { node_name: Some("n1".into()), ..PodSpec::default() });
        assert!(admits(&pinned, &node(Some("n1"), &[], vec![])).is_admitted());
        assert_eq!(
            admits(&pinned, &node(Some("n2"), &[], vec![])),
            Admission::NodeNameMismatch { pinned: "n1".into() }
        );
        assert!(!admits_labels(&pinned, &l, &[]).is_admitted());
        let empty_pin = ds_with(PodSpec { node_name: Some(String::new()), ..PodSpec::default() });
        assert!(admits(&empty_pin, &node(Some("n2"), &[], vec![])).is_admitted());
    }

    #[test]
    fn toleration_table() {
        let t = taint("dedicated", Some("gpu"), NO_SCHEDULE);
        let no_value = taint("dedicated", None, NO_SCHEDULE);
        #[rustfmt::skip]
        let cases: Vec<(Toleration, &Taint, bool)> = vec![
            (toleration(None, Some("Exists"), None, None), &t, true), // tolerates everything
            (toleration(Some(""), Some("Exists"), None, Some("")), &t, true),
            (toleration(None, Some("Exists"), None, Some(NO_EXECUTE)), &t, false), // effect differs
            (toleration(Some("dedicated"), Some("Exists"), None, None), &t, true),
            (toleration(Some("dedicated"), Some("Exists"), Some("ignored"), None), &t, true),
            (toleration(Some("other"), Some("Exists"), None, None), &t, false),
            (toleration(Some("dedicated"), Some("Equal"), Some("gpu"), Some(NO_SCHEDULE)), &t, true),
            (toleration(Some("dedicated"), Some("Equal"), Some("cpu"), Some(NO_SCHEDULE)), &t, false),
            (toleration(Some("dedicated"), None, Some("gpu"), None), &t, true), // empty operator = Equal
            (toleration(Some("dedicated"), Some(""), Some("gpu"), None), &t, true),
            (toleration(Some("dedicated"), None, None, None), &t, false),
            (toleration(Some("dedicated"), None, None, None), &no_value, true), // "" == ""
            (toleration(Some("dedicated"), Some("Equal"), Some(""), None), &no_value, true),
            (toleration(Some("dedicated"), Some("Equal"), Some("gpu"), Some(NO_EXECUTE)), &t, false),
            (toleration(Some("dedicated"), Some("equal"), Some("gpu"), None), &t, false), // unknown op
            (toleration(Some("dedicated"), Some("Gt"), Some("1"), None), &t, false),
            (toleration(Some("Dedicated"), Some("Exists"), None, None), &t, false), // keys are exact
            // Empty key with Equal compares only values (k8s does; the API forbids it).
            (toleration(None, Some("Equal"), Some("gpu"), None), &t, true),
        ];
        for (i, (tol, taint, want)) in cases.iter().enumerate() {
            assert_eq!(tolerates(tol, taint), *want, "case {i}: {tol:?} vs {taint:?}");
        }
    }

    #[test]
    fn taint_effects_and_automatic_tolerations() {
        let plain = ds_with(PodSpec::default());
        let host = ds_with(PodSpec { host_network: Some(true), ..PodSpec::default() });
        #[rustfmt::skip]
        let cases: Vec<(Taint, bool, bool)> = vec![
            // (taint, admitted without hostNetwork, admitted with hostNetwork)
            (taint("x", None, NO_SCHEDULE), false, false),
            (taint("x", Some("y"), NO_EXECUTE), false, false),
            (taint("x", None, PREFER_NO_SCHEDULE), true, true),
            (taint("x", None, "SomethingElse"), true, true),
            (taint("node.kubernetes.io/not-ready", None, NO_EXECUTE), true, true),
            (taint("node.kubernetes.io/not-ready", None, NO_SCHEDULE), false, false),
            (taint("node.kubernetes.io/unreachable", None, NO_EXECUTE), true, true),
            (taint("node.kubernetes.io/unreachable", None, NO_SCHEDULE), false, false),
            (taint("node.kubernetes.io/disk-pressure", None, NO_SCHEDULE), true, true),
            (taint("node.kubernetes.io/disk-pressure", None, NO_EXECUTE), false, false),
            (taint("node.kubernetes.io/memory-pressure", None, NO_SCHEDULE), true, true),
            (taint("node.kubernetes.io/pid-pressure", None, NO_SCHEDULE), true, true),
            (taint("node.kubernetes.io/unschedulable", None, NO_SCHEDULE), true, true),
            (taint("node.kubernetes.io/network-unavailable", None, NO_SCHEDULE), false, true),
            (taint("node.kubernetes.io/network-unavailable", None, NO_EXECUTE), false, false),
            (taint("node-role.kubernetes.io/control-plane", None, NO_SCHEDULE), false, false),
        ];
        let l = BTreeMap::new();
        for (i, (t, want_plain, want_host)) in cases.iter().enumerate() {
            let taints = std::slice::from_ref(t);
            assert_eq!(admits_labels(&plain, &l, taints).is_admitted(), *want_plain, "case {i} plain");
            assert_eq!(admits_labels(&host, &l, taints).is_admitted(), *want_host, "case {i} host");
        }
        assert_eq!(automatic_tolerations(false).len(), 6);
        assert_eq!(automatic_tolerations(true).len(), 7);

        // The first untolerated blocking taint is the one reported.
        let taints = vec![
            taint("soft", None, PREFER_NO_SCHEDULE),
            taint("ok", None, NO_SCHEDULE),
            taint("hard", Some("v"), NO_EXECUTE),
            taint("later", None, NO_SCHEDULE),
        ];
        let tolerating_ok = ds_with(PodSpec {
            tolerations: Some(vec![toleration(Some("ok"), Some("Exists"), None, None)]),
            ..PodSpec::default()
        });
        assert_eq!(
            admits_labels(&tolerating_ok, &l, &taints),
            Admission::UntoleratedTaint {
                key: "hard".into(),
                value: Some("v".into()),
                effect: NO_EXECUTE.into()
            }
        );
        let cni = ds_with(PodSpec {
            tolerations: Some(vec![toleration(None, Some("Exists"), None, None)]),
            ..PodSpec::default()
        });
        assert!(admits_labels(&cni, &l, &taints).is_admitted());
    }

    #[test]
    fn a_running_pod_is_removed_only_by_an_untolerated_no_execute_taint() {
        let zone_a = ds_with(PodSpec {
            node_selector: Some(labels(&[("zone", "a")])),
            tolerations: Some(vec![toleration(Some("ok"), Some("Exists"), None, Some(NO_EXECUTE))]),
            ..PodSpec::default()
        });
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Taint>, bool, bool)> = vec![
            // (zone, taints, admits, keeps running)
            ("a", vec![], true, true),
            // Arrives while the pod runs: no new pod, the running one stays.
            ("a", vec![taint("x", None, NO_SCHEDULE)], false, true),
            ("a", vec![taint("ok", None, NO_SCHEDULE)], false, true),
            ("a", vec![taint("x", Some("y"), NO_EXECUTE)], false, false),
            ("a", vec![taint("ok", None, NO_EXECUTE), taint("x", None, NO_SCHEDULE)], false, true),
            ("a", vec![taint("node.kubernetes.io/not-ready", None, NO_EXECUTE)], true, true),
            ("a", vec![taint("x", None, PREFER_NO_SCHEDULE)], true, true),
            // The node no longer matches: the pod goes, whatever the taints.
            ("b", vec![], false, false),
            ("b", vec![taint("x", None, NO_SCHEDULE)], false, false),
        ];
        for (i, (zone, taints, admitted, kept)) in cases.into_iter().enumerate() {
            let n = node(Some("n"), &[("zone", zone)], taints);
            assert_eq!(admits(&zone_a, &n).is_admitted(), admitted, "case {i}");
            assert_eq!(keeps_running(&zone_a, &n).is_admitted(), kept, "case {i}");
        }
        let off = node(Some("n"), &[("zone", "a")], vec![taint("x", Some("y"), NO_EXECUTE)]);
        assert_eq!(keeps_running(&zone_a, &off).to_string(), "untolerated taint x=y:NoExecute");
        let pinned = ds_with(PodSpec { node_name: Some("m".into()), ..PodSpec::default() });
        assert_eq!(keeps_running(&pinned, &node(Some("n"), &[], vec![])).reason(), "NodeNameMismatch");
        assert!(keeps_running(&DaemonSet::default(), &Node::default()).is_admitted());
    }

    #[test]
    fn missing_fields_do_not_panic() {
        let bare_ds = DaemonSet::default();
        let bare_node = Node::default();
        assert!(admits(&bare_ds, &bare_node).is_admitted());
        let no_template_spec = DaemonSet { spec: Some(DaemonSetSpec::default()), ..DaemonSet::default() };
        assert!(admits(&no_template_spec, &bare_node).is_admitted());
        let ds = ds_terms(Some(vec![term(vec![req("zone", "In", &["a"])])]));
        assert!(!admits(&ds, &bare_node).is_admitted());
        let node_without_spec = Node { spec: None, ..node(Some("n"), &[("zone", "a")], vec![]) };
        assert!(admits(&ds, &node_without_spec).is_admitted());
    }

    #[test]
    fn explanations_read_well() {
        let l = labels(&[("zone", "a")]);
        let ds = ds_terms(Some(vec![
            term(vec![req("zone", "In", &["b", "c"])]),
            term(vec![req("tier", "Exists", &[])]),
            NodeSelectorTerm::default(),
            term(vec![req("zone", "Bogus", &[])]),
        ]));
        let got = admits_labels(&ds, &l, &[]);
        assert_eq!(got.reason(), "AffinityMismatch");
        assert_eq!(
            got.to_string(),
            "no term of the required node affinity matches: \
             nodeSelectorTerms[0]: zone In [b, c] is not met (the node has zone=a); \
             nodeSelectorTerms[1]: tier Exists [] is not met (the node has no label tier); \
             nodeSelectorTerms[2]: an empty term matches no node; \
             nodeSelectorTerms[3]: invalid, so it matches no node \
             (matchExpressions[0]: operator \"Bogus\" is not supported)"
        );
        assert_eq!(
            admits_labels(&ds_terms(Some(vec![])), &l, &[]).to_string(),
            "required node affinity has an empty nodeSelectorTerms list, which matches no node"
        );
        let fields = ds_terms(Some(vec![fields_term(vec![req(NAME_FIELD, "In", &["n1"])])]));
        assert_eq!(
            admits(&fields, &node(Some("n2"), &[], vec![])).to_string(),
            "no term of the required node affinity matches: nodeSelectorTerms[0]: \
             field metadata.name In [n1] is not met (the node has metadata.name=\"n2\")"
        );
        assert_eq!(
            Admission::UntoleratedTaint {
                key: "k".into(),
                value: Some("v".into()),
                effect: NO_SCHEDULE.into()
            }
            .to_string(),
            "untolerated taint k=v:NoSchedule"
        );
        assert_eq!(
            Admission::UntoleratedTaint { key: "k".into(), value: None, effect: NO_EXECUTE.into() }
                .to_string(),
            "untolerated taint k:NoExecute"
        );
        assert_eq!(
            Admission::NodeSelectorMismatch { key: "k".into(), want: "v".into(), got: None }.to_string(),
            "nodeSelector k=v does not match: the node has no label k"
        );
        assert_eq!(Admission::Admitted.to_string(), "admitted");
        assert!(Admission::NodeNameMismatch { pinned: "n".into() }.to_string().contains("\"n\""));
    }

    #[test]
    fn the_order_of_checks_is_the_controllers() {
        let ds = ds_with(PodSpec {
            node_selector: Some(labels(&[("zone", "b")])),
            affinity: ds_terms(Some(vec![])).spec.unwrap().template.spec.unwrap().affinity,
            ..PodSpec::default()
        });
        let taints = [taint("x", None, NO_SCHEDULE)];
        assert_eq!(admits_labels(&ds, &labels(&[("zone", "a")]), &taints).reason(), "NodeSelectorMismatch");
        assert_eq!(admits_labels(&ds, &labels(&[("zone", "b")]), &taints).reason(), "AffinityMismatch");
    }

    // ---- properties ----

    const KEYS: [&str; 4] = ["alibabacloud.com/external", "zone", "num", "tier"];
    const VALUES: [&str; 7] = ["true", "false", "a", "b", "1", "7", "-3"];
    const OPS: [&str; 7] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Bogus"];

    fn arb_req() -> impl Strategy<Value = NodeSelectorRequirement> {
        (0..KEYS.len(), 0..OPS.len(), prop::collection::vec(0..VALUES.len(), 0..3)).prop_map(|(k, o, vs)| {
            let ok_shape = (2..=3).contains(&o);
            NodeSelectorRequirement {
                key: KEYS[k].to_owned(),
                operator: OPS[o].to_owned(),
                // Mostly well-formed: Exists/DoesNotExist without values, others with some.
                values: if ok_shape {
                    None
                } else {
                    Some(vs.iter().map(|&v| VALUES[v].to_owned()).collect())
                },
            }
        })
    }

    fn arb_term() -> impl Strategy<Value = NodeSelectorTerm> {
        (prop::collection::vec(arb_req(), 0..4), prop::option::of(prop::sample::select(vec!["n0", "n1"])))
            .prop_map(|(exprs, name)| NodeSelectorTerm {
                match_expressions: Some(exprs),
                match_fields: name.map(|n| vec![req(NAME_FIELD, "In", &[n])]),
            })
    }

    fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(
            prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            prop::sample::select(vec!["true", "false", "a", "b", "1", "7", "0"]).prop_map(str::to_owned),
            0..4,
        )
    }

    fn arb_name() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec!["n0", "n1", "n2"]).prop_map(str::to_owned))
    }

    fn arb_taint() -> impl Strategy<Value = Taint> {
        (
            prop::sample::select(vec![
                "a",
                "b",
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unschedulable",
            ]),
            prop::option::of(prop::sample::select(vec!["", "x", "y"])),
            prop::sample::select(vec![NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE, ""]),
        )
            .prop_map(|(k, v, e)| taint(k, v, e))
    }

    fn arb_toleration() -> impl Strategy<Value = Toleration> {
        (
            prop::option::of(prop::sample::select(vec!["", "a", "b", "node.kubernetes.io/not-ready"])),
            prop::option::of(prop::sample::select(vec!["", "Exists", "Equal", "Bogus"])),
            prop::option::of(prop::sample::select(vec!["", "x", "y"])),
            prop::option::of(prop::sample::select(vec!["", NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE])),
        )
            .prop_map(|(k, o, v, e)| toleration(k, o, v, e))
    }

    fn with_tolerations(tolerations: Vec<Toleration>, host_network: bool) -> DaemonSet {
        ds_with(PodSpec {
            tolerations: Some(tolerations),
            host_network: Some(host_network),
            ..PodSpec::default()
        })
    }

    fn admitted(
        ds: &DaemonSet,
        l: &BTreeMap<String, String>,
        name: &Option<String>,
        taints: &[Taint],
    ) -> bool {
        admits_spec(&pod_spec(ds), l, name.as_deref(), taints).is_admitted()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn terms_are_ored(terms in prop::collection::vec(arb_term(), 0..4), l in arb_labels(), name in arb_name()) {
            let all = admitted(&ds_terms(Some(terms.clone())), &l, &name, &[]);
            let any = terms.iter().any(|t| admitted(&ds_terms(Some(vec![t.clone()])), &l, &name, &[]));
            prop_assert_eq!(all, any);
        }

        #[test]
        fn a_term_is_the_and_of_its_requirements(exprs in prop::collection::vec(arb_req(), 1..4), l in arb_labels()) {
            let whole = admitted(&ds_terms(Some(vec![term(exprs.clone())])), &l, &None, &[]);
            let each = exprs.iter().all(|r| requirement_matches(r, &l));
            prop_assert_eq!(whole, each);
        }

        #[test]
        fn adding_a_requirement_never_admits_more(
            t in arb_term(), extra in arb_req(), l in arb_labels(), name in arb_name()
        ) {
            // An empty term matches nothing, but with one requirement it matches
            // many nodes: the one way adding a requirement widens (see affinity.rs).
            prop_assume!(term_defect(&t) != Some(TermMismatch::Empty));
            let mut narrowed = t.clone();
            narrowed.match_expressions.get_or_insert_with(Vec::new).push(extra);
            let before = admitted(&ds_terms(Some(vec![t])), &l, &name, &[]);
            let after = admitted(&ds_terms(Some(vec![narrowed])), &l, &name, &[]);
            prop_assert!(!after || before);
        }

        #[test]
        fn in_and_not_in_are_complements_on_present_labels(
            k in 0..KEYS.len(), vs in prop::collection::vec(0..VALUES.len() - 1, 1..3), l in arb_labels()
        ) {
            let values: Vec<&str> = vs.iter().map(|&v| VALUES[v]).collect();
            let key = KEYS[k];
            let is_in = requirement_matches(&req(key, "In", &values), &l);
            let not_in = requirement_matches(&req(key, "NotIn", &values), &l);
            if l.contains_key(key) {
                prop_assert_ne!(is_in, not_in);
            } else {
                prop_assert!(!is_in && not_in);
            }
            prop_assert_eq!(requirement_matches(&req(key, "Exists", &[]), &l), l.contains_key(key));
            prop_assert_eq!(requirement_matches(&req(key, "DoesNotExist", &[]), &l), !l.contains_key(key));
        }

        #[test]
        fn gt_and_lt_compare_integers(label in -20i64..20, bound in 0i64..10) {
            let l = labels(&[("num", &label.to_string())]);
            prop_assert_eq!(requirement_matches(&req("num", "Gt", &[&bound.to_string()]), &l), label > bound);
            prop_assert_eq!(requirement_matches(&req("num", "Lt", &[&bound.to_string()]), &l), label < bound);
        }

        #[test]
        fn adding_a_toleration_never_unadmits(
            tols in prop::collection::vec(arb_toleration(), 0..4),
            extra in arb_toleration(),
            taints in prop::collection::vec(arb_taint(), 0..4),
            host in any::<bool>(),
        ) {
            let l = BTreeMap::new();
            let before = admitted(&with_tolerations(tols.clone(), host), &l, &None, &taints);
            let mut more = tols;
            more.push(extra);
            let after = admitted(&with_tolerations(more, host), &l, &None, &taints);
            prop_assert!(!before || after);
        }

        #[test]
        fn removing_a_taint_never_unadmits(
            tols in prop::collection::vec(arb_toleration(), 0..4),
            taints in prop::collection::vec(arb_taint(), 1..4),
            drop in any::<prop::sample::Index>(),
        ) {
            let l = BTreeMap::new();
            let ds = with_tolerations(tols, false);
            let before = admitted(&ds, &l, &None, &taints);
            let mut fewer = taints;
            fewer.remove(drop.index(fewer.len()));
            prop_assert!(!before || admitted(&ds, &l, &None, &fewer));
        }

        #[test]
        fn only_no_schedule_and_no_execute_block(
            tols in prop::collection::vec(arb_toleration(), 0..3),
            taints in prop::collection::vec(arb_taint(), 0..4),
        ) {
            let l = BTreeMap::new();
            let ds = with_tolerations(tols, false);
            let blocking: Vec<Taint> =
                taints.iter().filter(|t| t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE).cloned().collect();
            prop_assert_eq!(admitted(&ds, &l, &None, &taints), admitted(&ds, &l, &None, &blocking));
        }

        #[test]
        fn tolerate_everything_admits_every_taint(taints in prop::collection::vec(arb_taint(), 0..4)) {
            let ds = with_tolerations(vec![toleration(None, Some("Exists"), None, None)], false);
            prop_assert!(admitted(&ds, &BTreeMap::new(), &None, &taints));
        }

        #[test]
        fn what_is_admitted_keeps_running(
            tols in prop::collection::vec(arb_toleration(), 0..3),
            taints in prop::collection::vec(arb_taint(), 0..4),
            host in any::<bool>(),
        ) {
            let ds = with_tolerations(tols, host);
            let n = node(Some("n"), &[], taints.clone());
            let kept = keeps_running(&ds, &n).is_admitted();
            prop_assert!(!admits(&ds, &n).is_admitted() || kept);
            let no_execute: Vec<Taint> = taints.into_iter().filter(|t| t.effect == NO_EXECUTE).collect();
            prop_assert_eq!(kept, admits(&ds, &node(Some("n"), &[], no_execute)).is_admitted());
        }
    }
}
