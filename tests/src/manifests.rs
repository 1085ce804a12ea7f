//! The deploy/ manifests as a cluster receives them, for the `manifests_*`
//! tests (docs/testing.md): every kustomization rendered with `kubectl
//! kustomize` (once per test binary), its objects as JSON and as their
//! k8s-openapi types, and what the tests ask of pods, RBAC and the binaries'
//! flags.

use crate::control_plane::repo_root;
use crate::system::find_program;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::{Metadata, Resource};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

/// Every kustomization a user may apply; `deploy` is the complete install.
const KUSTOMIZATIONS: [&str; 4] =
    ["deploy", "deploy/base", "deploy/overlays/ack-one-registered", "deploy/overlays/plain"];
/// The kustomizations that carry the monitoring objects (base does not).
pub const WITH_MONITORING: [&str; 3] =
    ["deploy", "deploy/overlays/ack-one-registered", "deploy/overlays/plain"];
pub const NAMESPACE: &str = "terway-hybrid";
pub const AGENT: &str = "terway-hybrid-agent";
pub const CONTROLLER: &str = "terway-hybrid-controller";

/// A file of the repository, as text.
pub fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Multi-document YAML (documents separated by `---` lines), empty ones dropped.
pub fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("one document at least");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .map(|doc| yaml_serde::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{what}: bad YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// One rendered kustomization.
pub struct Rendering {
    pub dir: &'static str,
    pub objects: Vec<Value>,
}

/// Every kustomization of [`KUSTOMIZATIONS`], rendered once per test binary.
///
/// Needs `kubectl` (>= 1.27, kustomize v5); a missing one fails the test with
/// how to install it.
pub fn renderings() -> &'static [Rendering] {
    static RENDERED: OnceLock<Vec<Rendering>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let kubectl = find_program("kubectl").unwrap_or_else(|| {
            panic!(
                "`kubectl` is not installed: these tests render deploy/ with `kubectl kustomize` \
                 (kubectl >= 1.27, which embeds kustomize v5). Install it as \
                 https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ describes"
            )
        });
        KUSTOMIZATIONS
            .iter()
            .map(|dir| {
                let out = Command::new(&kubectl)
                    .arg("kustomize")
                    .arg(repo_root().join(dir))
                    .output()
                    .unwrap_or_else(|e| panic!("run {} kustomize {dir}: {e}", kubectl.display()));
                assert!(
                    out.status.success(),
                    "kubectl kustomize {dir} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
                Rendering { dir, objects: yaml_documents(&text, &format!("kubectl kustomize {dir}")) }
            })
            .collect()
    })
}

pub fn rendering(dir: &str) -> &'static Rendering {
    renderings().iter().find(|r| r.dir == dir).expect("a rendered kustomization")
}

/// `Kind namespace/name` (or `Kind name`), for messages.
pub fn name_of(v: &Value) -> String {
    let meta = &v["metadata"];
    match meta["namespace"].as_str() {
        Some(ns) => {
            format!("{} {ns}/{}", v["kind"].as_str().unwrap_or("?"), meta["name"].as_str().unwrap_or("?"))
        }
        None => format!("{} {}", v["kind"].as_str().unwrap_or("?"), meta["name"].as_str().unwrap_or("?")),
    }
}

impl Rendering {
    fn of_kind<'a>(&'a self, api_version: &str, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let (api_version, kind) = (api_version.to_owned(), kind.to_owned());
        self.objects
            .iter()
            .filter(move |v| v["apiVersion"] == api_version.as_str() && v["kind"] == kind.as_str())
    }

    /// Every object of kind `K`, loaded into its type.
    pub fn typed<K: Resource + DeserializeOwned>(&self) -> Vec<K> {
        self.of_kind(K::API_VERSION, K::KIND)
            .map(|v| {
                serde_json::from_value(v.clone())
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", self.dir, name_of(v)))
            })
            .collect()
    }

    /// The one object of kind `K` named `name`.
    pub fn one<K: Resource + DeserializeOwned + Metadata<Ty = ObjectMeta>>(&self, name: &str) -> K {
        let mut found: Vec<K> =
            self.typed::<K>().into_iter().filter(|o| o.metadata().name.as_deref() == Some(name)).collect();
        assert_eq!(found.len(), 1, "{}: expected one {} named {name}", self.dir, K::KIND);
        found.remove(0)
    }

    /// Objects of a kind k8s-openapi has no type for, as JSON.
    pub fn untyped(&self, api_version: &str, kind: &str) -> Vec<&Value> {
        self.of_kind(api_version, kind).collect()
    }
}

/// The first place where two JSON values differ, as a path. Numbers compare
/// by value: kustomize writes the CRD schema's `0.0` as `0`.
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{path}.{k}")),
                (p, q) => Some(format!("{path}.{k}: {p:?} vs {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

// ---------------------------------------------------------------------------
// What the binaries are

/// The default of the flag whose clap id is `id` (the field's name, e.g.
/// `lease_name`), in `command` or one of its subcommands: taken from clap's
/// command, so it is the default the binary runs with.
pub fn flag_default(command: &clap::Command, id: &str) -> String {
    let arg = command
        .get_arguments()
        .find(|a| a.get_id() == id)
        .or_else(|| command.get_subcommands().flat_map(|c| c.get_arguments()).find(|a| a.get_id() == id))
        .unwrap_or_else(|| panic!("{}: no flag {id}", command.get_name()));
    match arg.get_default_values() {
        [one] => one.to_string_lossy().into_owned(),
        other => panic!("{}: {id} has {} defaults, not one", command.get_name(), other.len()),
    }
}

/// The binaries the workspace's packages build, as cargo itself lists them
/// (`cargo metadata`).
pub fn built_binaries() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let targets = metadata["packages"].as_array().expect("packages").iter().flat_map(|p| {
        p["targets"].as_array().expect("targets").iter().filter(|t| t["kind"] == serde_json::json!(["bin"]))
    });
    targets.map(|t| t["name"].as_str().expect("a target name").to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Pods

pub fn pod_spec_of_daemon_set(ds: &DaemonSet) -> &PodSpec {
    ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a DaemonSet with a pod spec")
}

pub fn pod_spec_of_deployment(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a Deployment with a pod spec")
}

/// The pod's container, which must be its only one (and no init containers).
pub fn only_container(spec: &PodSpec, what: &str) -> Container {
    assert_eq!(spec.containers.len(), 1, "{what}: one container");
    assert!(spec.init_containers.as_ref().is_none_or(Vec::is_empty), "{what}: no init containers");
    spec.containers[0].clone()
}

pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    assert!(selector.match_expressions.is_none(), "only matchLabels selectors are used");
    let wanted = selector.match_labels.clone().unwrap_or_default();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The downward-API field an environment variable is set from.
pub fn field_ref(c: &Container, name: &str) -> Option<String> {
    let env = c.env.iter().flatten().find(|e| e.name == name)?;
    env.value_from.as_ref()?.field_ref.as_ref().map(|f| f.field_path.clone())
}

/// `--flag value` or `--flag=value` in the container's args.
pub fn arg_value(c: &Container, flag: &str) -> Option<String> {
    let args = c.args.clone().unwrap_or_default();
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{flag}=")).map(str::to_owned)
        }
    })
}

/// The port number a probe or Service names, resolved through the container's ports.
pub fn resolve_port(c: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("container {} has no port named {name}", c.name))
                .container_port
        }
    }
}

// ---------------------------------------------------------------------------
// RBAC

/// One (apiGroup, resource, verb, resourceNames) grant, from a rule.
type Grant = (String, String, String, Vec<String>);

fn grants(rule: &PolicyRule) -> Vec<Grant> {
    let mut out = Vec::new();
    for group in rule.api_groups.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                out.push((
                    group.clone(),
                    resource.clone(),
                    verb.clone(),
                    rule.resource_names.clone().unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// Every grant a ServiceAccount receives in a rendering, with where it applies
/// (`None`: cluster-wide).
pub fn grants_of(r: &Rendering, namespace: &str, sa: &str) -> Vec<(Option<String>, Grant)> {
    let is_subject = |subjects: &Option<Vec<Subject>>| {
        subjects
            .iter()
            .flatten()
            .any(|s| s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(namespace))
    };
    let cluster_roles = r.typed::<ClusterRole>();
    let roles = r.typed::<Role>();
    let cluster_rules = |name: &str| -> Vec<PolicyRule> {
        let role = cluster_roles.iter().find(|c| c.metadata.name.as_deref() == Some(name));
        role.unwrap_or_else(|| panic!("{}: ClusterRole {name} is bound but not rendered", r.dir))
            .rules
            .clone()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for b in r.typed::<ClusterRoleBinding>().iter().filter(|b| is_subject(&b.subjects)) {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        out.extend(cluster_rules(&b.role_ref.name).iter().flat_map(grants).map(|g| (None, g)));
    }
    for b in r.typed::<RoleBinding>().iter().filter(|b| is_subject(&b.subjects)) {
        let ns = b.metadata.namespace.clone().expect("a namespaced RoleBinding");
        let rules = if b.role_ref.kind == "ClusterRole" {
            cluster_rules(&b.role_ref.name)
        } else {
            let role = roles.iter().find(|x| {
                x.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                    && x.metadata.namespace.as_deref() == Some(ns.as_str())
            });
            role.unwrap_or_else(|| {
                panic!("{}: Role {ns}/{} is bound but not rendered", r.dir, b.role_ref.name)
            })
            .rules
            .clone()
            .unwrap_or_default()
        };
        out.extend(rules.iter().flat_map(grants).map(|g| (Some(ns.clone()), g)));
    }
    out
}

/// Every rule of every ClusterRole and Role, with the role's name.
pub fn all_rules(r: &Rendering) -> Vec<(String, PolicyRule)> {
    let mut out: Vec<(String, PolicyRule)> = Vec::new();
    for c in r.typed::<ClusterRole>() {
        assert!(c.aggregation_rule.is_none(), "ClusterRole {:?}: no aggregation", c.metadata.name);
        let name = format!("ClusterRole {}", c.metadata.name.unwrap_or_default());
        out.extend(c.rules.unwrap_or_default().into_iter().map(|rule| (name.clone(), rule)));
    }
    for role in r.typed::<Role>() {
        let name = format!(
            "Role {}/{}",
            role.metadata.namespace.unwrap_or_default(),
            role.metadata.name.unwrap_or_default()
        );
        out.extend(role.rules.unwrap_or_default().into_iter().map(|rule| (name.clone(), rule)));
    }
    out
}
