//! The project's CustomResourceDefinitions, as `crdgen` prints them and
//! `deploy/crds/` commits them (a test fails when the two differ).

/// Every CRD of the project, in the order `crdgen` prints them.
pub fn crds(
) -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![crate::NodeNetworkReport::crd(), rollout_crd()]
}

/// The TerwayRollout CRD, with a root rule that only `default` may exist
/// (the derive can only place rules inside spec).
fn rollout_crd(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    use kube::CustomResourceExt;
    let mut crd = crate::rollout::TerwayRollout::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.x_kubernetes_validations = Some(vec![ValidationRule {
                rule: "self.metadata.name == 'default'".to_owned(),
                message: Some("the controller only reads the TerwayRollout named default".to_owned()),
                ..ValidationRule::default()
            }]);
        }
    }
    crd
}

/// The CRDs as the multi-document YAML committed under `deploy/crds/`.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| yaml_serde::to_string(crd).expect("a CRD serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}
