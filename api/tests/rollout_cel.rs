//! The TerwayRollout CRD's CEL rules, evaluated client-side with kube's CEL
//! implementation (no API server can run here). Each rule is shown to accept
//! the defaults and to reject what it is there to reject.
//!
//! kube-cel cannot evaluate `type(self)`, which the int-or-string rule of
//! `maxUnavailable` needs (Kubernetes can); that one rule is taken out of the
//! schema here, and the controller re-checks the value when it resolves it.

use serde_json::{json, Value};

fn schema() -> Value {
    let crd = terway_hybrid_api::crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "TerwayRollout")
        .expect("TerwayRollout CRD");
    serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap())
        .unwrap()
}

/// Removes rules kube-cel cannot evaluate; returns how many were removed.
fn strip_type_rules(v: &mut Value) -> usize {
    let mut removed = 0;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                let before = rules.len();
                rules.retain(|r| !r["rule"].as_str().unwrap_or("").contains("type(self)"));
                removed += before - rules.len();
            }
            removed += map.values_mut().map(strip_type_rules).sum::<usize>();
        }
        Value::Array(items) => removed += items.iter_mut().map(strip_type_rules).sum::<usize>(),
        _ => {}
    }
    removed
}

fn evaluable_schema() -> Value {
    let mut s = schema();
    assert_eq!(strip_type_rules(&mut s), 1, "only the maxUnavailable rule uses type()");
    s
}

fn rollout(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "terway-hybrid.io/v1alpha1", "kind": "TerwayRollout",
           "metadata": {"name": name}, "spec": spec})
}

fn errors(object: &Value) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&evaluable_schema(), object, None) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn defaults_and_a_full_spec_are_valid() {
    assert_eq!(errors(&rollout("default", json!({}))), Vec::<String>::new());
    let full = json!({
        "mode": "Auto", "maxUnavailable": "25%", "paused": false,
        "cloudNodeSelector": {"alibabacloud.com/external": "true"},
        "onPremCNI": {"daemonSets": [{"namespace": "kube-system", "name": "calico-node"}], "remediate": "DryRun"},
        "terway": {"namespace": "kube-system", "daemonSetName": "terway-eniip"},
        "ignoreChecks": ["RamSecret", "PathMTU", "all"], "readinessTimeout": "1h30m",
        "crossSite": {"onPremNetworks": ["192.168.0.0/16"], "vbrPeers": ["10.255.0.1"], "gateWaves": true, "peersPerNode": 3}
    });
    assert_eq!(errors(&rollout("default", full.clone())), Vec::<String>::new());
    // Every field of the full spec is a field of the type: nothing was pruned.
    let parsed: terway_hybrid_api::TerwayRolloutSpec = serde_json::from_value(full.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), full);
    assert_eq!(errors(&rollout("default", json!({"maxUnavailable": 3}))), Vec::<String>::new());
}

#[test]
fn each_rule_rejects_what_it_guards() {
    let cases: &[(&str, Value, &str)] = &[
        ("other", json!({}), "named default"),
        ("default", json!({"cloudNodeSelector": {}}), "cloudNodeSelector"),
        ("default", json!({"ignoreChecks": ["NoSuchCheck"]}), "ignoreChecks"),
        ("default", json!({"readinessTimeout": "10 minutes"}), "readinessTimeout"),
        ("default", json!({"readinessTimeout": ""}), "readinessTimeout"),
    ];
    for (name, spec, expected) in cases {
        let errs = errors(&rollout(name, spec.clone()));
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{name} {spec}: expected a {expected} error, got {errs:?}"
        );
    }
}
