//! Structured inputs for the scheduling targets: DaemonSets and Nodes built
//! with `arbitrary` from small alphabets (so keys, values and names collide
//! often) plus free strings (so validation is exercised too).
#![allow(dead_code)] // each target uses a part
use arbitrary::Arbitrary;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, PodSpec,
    PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

const KEYS: [&str; 9] = [
    "alibabacloud.com/external",
    "terway-hybrid.io/terway-gate",
    "a",
    "b",
    "x.io/z",
    "node.kubernetes.io/not-ready",
    "metadata.name",
    "",
    "Bad/Key",
];
const VALUES: [&str; 10] = ["true", "false", "open", "1", "-2", "10", "", "n1", "a b", "9223372036854775808"];
const NAMES: [&str; 3] = ["n1", "n2", ""];
const OPERATORS: [&str; 9] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Equal", "", "in"];
const EFFECTS: [&str; 5] = ["NoSchedule", "NoExecute", "PreferNoSchedule", "", "Other"];

#[derive(Arbitrary, Debug, Clone)]
pub enum Str {
    Pick(u8),
    Any(String),
}

impl Str {
    fn from(&self, table: &[&str]) -> String {
        match self {
            Str::Pick(i) => table[usize::from(*i) % table.len()].to_owned(),
            Str::Any(s) => s.clone(),
        }
    }
    pub fn key(&self) -> String {
        self.from(&KEYS)
    }
    pub fn value(&self) -> String {
        self.from(&VALUES)
    }
    pub fn name(&self) -> String {
        self.from(&NAMES)
    }
    pub fn operator(&self) -> String {
        self.from(&OPERATORS)
    }
    pub fn effect(&self) -> String {
        self.from(&EFFECTS)
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Req {
    pub key: Str,
    pub operator: Str,
    pub values: Option<Vec<Str>>,
}

impl Req {
    pub fn build(&self) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: self.key.key(),
            operator: self.operator.operator(),
            values: self.values.as_ref().map(|v| v.iter().map(Str::value).collect()),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Term {
    expressions: Option<Vec<Req>>,
    fields: Option<Vec<(bool, Req)>>,
}

impl Term {
    fn build(&self) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: self.expressions.as_ref().map(|v| v.iter().map(Req::build).collect()),
            // Mostly the one field Kubernetes has, with node names for values.
            match_fields: self.fields.as_ref().map(|v| {
                v.iter()
                    .map(|(name_field, r)| {
                        let mut req = r.build();
                        if *name_field {
                            req.key = "metadata.name".to_owned();
                            req.values = r.values.as_ref().map(|v| v.iter().map(Str::name).collect());
                        }
                        req
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct TaintGen {
    key: Str,
    value: Option<Str>,
    effect: Str,
}

impl TaintGen {
    pub fn build(&self) -> Taint {
        Taint {
            key: self.key.key(),
            value: self.value.as_ref().map(Str::value),
            effect: self.effect.effect(),
            time_added: None,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct TolerationGen {
    key: Option<Str>,
    operator: Option<Str>,
    value: Option<Str>,
    effect: Option<Str>,
}

impl TolerationGen {
    pub fn build(&self) -> Toleration {
        Toleration {
            key: self.key.as_ref().map(Str::key),
            operator: self.operator.as_ref().map(|o| match o {
                Str::Pick(i) if i % 2 == 0 => "Exists".to_owned(),
                other => other.operator(),
            }),
            value: self.value.as_ref().map(Str::value),
            effect: self.effect.as_ref().map(Str::effect),
            toleration_seconds: None,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct NodeGen {
    pub name: Option<Str>,
    labels: Option<Vec<(Str, Str)>>,
    taints: Option<Vec<TaintGen>>,
}

impl NodeGen {
    pub fn build(&self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: self.name.as_ref().map(Str::name),
                labels: self.labels.as_ref().map(|l| l.iter().map(|(k, v)| (k.key(), v.value())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: self.taints.as_ref().map(|t| t.iter().map(TaintGen::build).collect()),
                ..Default::default()
            }),
            status: None,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct DaemonSetGen {
    node_name: Option<Str>,
    node_selector: Option<Vec<(Str, Str)>>,
    /// None: no affinity; Some(None): affinity without required terms.
    required: Option<Option<Vec<Term>>>,
    tolerations: Option<Vec<TolerationGen>>,
    host_network: Option<bool>,
    no_template_spec: bool,
}

impl DaemonSetGen {
    pub fn build(&self) -> DaemonSet {
        let affinity = self.required.as_ref().map(|r| Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: r.as_ref().map(|terms| NodeSelector {
                    node_selector_terms: terms.iter().map(Term::build).collect(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let spec = PodSpec {
            node_name: self.node_name.as_ref().map(Str::name),
            node_selector: self
                .node_selector
                .as_ref()
                .map(|s| s.iter().map(|(k, v)| (k.key(), v.value())).collect::<BTreeMap<_, _>>()),
            affinity,
            tolerations: self.tolerations.as_ref().map(|t| t.iter().map(TolerationGen::build).collect()),
            host_network: self.host_network,
            ..Default::default()
        };
        DaemonSet {
            metadata: ObjectMeta { name: Some("ds".to_owned()), ..Default::default() },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    spec: (!self.no_template_spec).then_some(spec),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: None,
        }
    }
}

pub fn labels_of(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}
