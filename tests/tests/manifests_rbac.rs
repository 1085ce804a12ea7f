//! The RBAC of the rendered deploy/ manifests: no wildcard anywhere, the
//! agent writes only its reports, Secrets and ConfigMaps are read by name,
//! and the controller may patch every DaemonSet its rollout names.
//!
//! Needs `kubectl` (>= 1.27, kustomize v5).

use clap::CommandFactory;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use std::collections::BTreeSet;
use terway_hybrid_controller::daemon::args::ControllerArgs;
use terway_hybrid_testkit::manifests::{
    all_rules, flag_default, grants_of, renderings, AGENT, CONTROLLER, NAMESPACE,
};

#[test]
fn no_rbac_rule_uses_a_wildcard() {
    for r in renderings() {
        for (role, rule) in all_rules(r) {
            let fields = [
                ("verbs", Some(&rule.verbs)),
                ("apiGroups", rule.api_groups.as_ref()),
                ("resources", rule.resources.as_ref()),
                ("resourceNames", rule.resource_names.as_ref()),
                ("nonResourceURLs", rule.non_resource_urls.as_ref()),
            ];
            for (field, values) in fields {
                for v in values.into_iter().flatten() {
                    assert!(!v.contains('*'), "{}: {role} has a wildcard in {field}: {v:?}", r.dir);
                }
            }
            assert!(rule.non_resource_urls.is_none(), "{}: {role} grants non-resource URLs", r.dir);
        }
        for b in r.typed::<ClusterRoleBinding>() {
            for s in b.subjects.iter().flatten() {
                assert_eq!(s.kind, "ServiceAccount", "{}: bindings name our ServiceAccounts only", r.dir);
                assert_eq!(s.namespace.as_deref(), Some(NAMESPACE));
            }
        }
    }
}

#[test]
fn the_agent_may_write_only_its_reports_and_never_nodes() {
    let expected: BTreeSet<(String, String, String)> = [
        ("", "nodes", "get"),
        ("terway-hybrid.io", "nodenetworkreports", "create"),
        ("terway-hybrid.io", "nodenetworkreports", "patch"),
        // Its own report's spec.probeTargets (fieldSelector metadata.name).
        ("terway-hybrid.io", "nodenetworkreports", "list"),
        ("terway-hybrid.io", "nodenetworkreports", "watch"),
        ("terway-hybrid.io", "nodenetworkreports/status", "patch"),
    ]
    .iter()
    .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
    .collect();
    for r in renderings() {
        let grants = grants_of(r, NAMESPACE, AGENT);
        for (_, (group, resource, verb, _)) in &grants {
            let writes = ["create", "update", "patch", "delete", "deletecollection"].contains(&verb.as_str());
            assert!(
                !(group.is_empty() && resource.starts_with("nodes") && writes),
                "{}: the agent may {verb} {resource}: only the controller writes Nodes",
                r.dir
            );
        }
        let got: BTreeSet<(String, String, String)> =
            grants.iter().map(|(_, (g, res, v, _))| (g.clone(), res.clone(), v.clone())).collect();
        assert_eq!(got, expected, "{}: the agent's permissions", r.dir);
        assert!(grants.iter().all(|(ns, _)| ns.is_none()), "{}: the agent has no namespaced grants", r.dir);
    }
}

#[test]
fn secrets_are_readable_only_by_name() {
    let secret = terway_hybrid_api::names::ADDON_SECRET_NAME.to_owned();
    let secret_ns = terway_hybrid_api::names::ADDON_SECRET_NAMESPACE;
    // The webhook's CA (controller/src/daemon/certs.rs, --webhook-ca-secret): created by the controller in
    // its own namespace, read back by name.
    let ca = flag_default(&ControllerArgs::command(), "webhook_ca_secret");
    for r in renderings() {
        let mut secret_rules = 0;
        for (role, rule) in all_rules(r) {
            if !rule.resources.iter().flatten().any(|res| res.starts_with("secrets")) {
                continue;
            }
            secret_rules += 1;
            assert_eq!(rule.resources, Some(vec!["secrets".to_owned()]), "{}: {role}", r.dir);
            if role == format!("Role {NAMESPACE}/{CONTROLLER}-leader-election") {
                match rule.resource_names.as_deref() {
                    None => {
                        assert_eq!(rule.verbs, ["create"], "{}: {role}: only create without a name", r.dir)
                    }
                    Some(names) => {
                        assert_eq!(
                            names,
                            std::slice::from_ref(&ca),
                            "{}: {role}: the webhook CA only",
                            r.dir
                        );
                        assert_eq!(rule.verbs, ["get"], "{}: {role}: the webhook CA is only read", r.dir);
                    }
                }
                continue;
            }
            assert_eq!(
                role,
                format!("Role {secret_ns}/{CONTROLLER}"),
                "{}: only the controller's kube-system Role",
                r.dir
            );
            assert_eq!(
                rule.resource_names,
                Some(vec![secret.clone()]),
                "{}: {role}: by resourceNames only",
                r.dir
            );
            for verb in &rule.verbs {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{}: {role} may {verb} Secrets",
                    r.dir
                );
            }
        }
        assert_eq!(secret_rules, 3, "{}: the add-on Secret's rule and the webhook CA's two", r.dir);
        // ConfigMaps are granted by name too: eni-config in kube-system; the
        // two CNI ConfigMaps whose ranges CIDROverlap reads (flannel's lives
        // in kube-flannel or kube-system) anywhere, list and watch only.
        let eni = terway_hybrid_api::names::ENI_CONFIG_NAME.to_owned();
        let cni: Vec<String> = ["kube-flannel-cfg", "cilium-config"].map(str::to_owned).to_vec();
        let grants = grants_of(r, NAMESPACE, CONTROLLER);
        for (ns, (_, res, verb, names)) in grants.iter().filter(|(_, (_, res, _, _))| res == "configmaps") {
            match ns.as_deref() {
                Some("kube-system") => {
                    assert_eq!(names, &vec![eni.clone()], "{}: {res} {verb} only {eni}", r.dir)
                }
                None => {
                    assert_eq!(names, &cni, "{}: cluster-wide {res} {verb} only by name", r.dir);
                    assert!(["list", "watch"].contains(&verb.as_str()), "{}: {res} {verb}", r.dir);
                }
                other => panic!("{}: ConfigMaps {verb} in {other:?}", r.dir),
            }
        }
    }
}

#[test]
fn the_controller_may_patch_every_daemon_set_its_rollout_names() {
    let well_known: Vec<String> =
        terway_hybrid_api::names::WELL_KNOWN_CNI_DAEMONSETS.iter().map(|n| (*n).to_owned()).collect();
    assert!(well_known.len() >= 5, "{well_known:?}");
    for r in renderings() {
        let patchable: BTreeSet<String> = grants_of(r, NAMESPACE, CONTROLLER)
            .into_iter()
            .filter(|(ns, (g, res, v, _))| ns.is_none() && g == "apps" && res == "daemonsets" && v == "patch")
            .flat_map(|(_, (_, _, _, names))| {
                assert!(!names.is_empty(), "{}: DaemonSet patch only by name", r.dir);
                names
            })
            .collect();
        let rollout = r.untyped("terway-hybrid.io/v1alpha1", "TerwayRollout");
        assert_eq!(rollout.len(), 1, "{}: one TerwayRollout", r.dir);
        let spec = &rollout[0]["spec"];
        let mut named: Vec<String> = well_known.clone();
        named.push(spec["terway"]["daemonSetName"].as_str().unwrap_or("terway-eniip").to_owned());
        for d in spec["onPremCNI"]["daemonSets"].as_array().into_iter().flatten() {
            named.push(d["name"].as_str().expect("a DaemonSet name").to_owned());
        }
        for name in named {
            assert!(patchable.contains(&name), "{}: the controller cannot patch DaemonSet {name}", r.dir);
        }
        // Reads are cluster-wide (the DaemonSets live in any namespace).
        let grants = grants_of(r, NAMESPACE, CONTROLLER);
        for (res, verbs) in [
            ("nodes", &["list", "watch", "patch"][..]),
            ("daemonsets", &["list", "watch"]),
            ("pods", &["list", "watch"]),
        ] {
            for verb in verbs {
                assert!(
                    grants.iter().any(|(ns, (_, gr, v, names))| ns.is_none()
                        && gr == res
                        && v == verb
                        && names.is_empty()),
                    "{}: the controller may {verb} {res} cluster-wide",
                    r.dir
                );
            }
        }
    }
}
