//! One-shot reads of everything a ClusterView holds, for `terway-hybrid
//! preflight` against a live cluster: the same objects the controller's
//! watches keep, chosen by the same [`Scope`]. The Secret is reduced to key
//! presence here, at the edge: its values go no further.

use crate::scope::Scope;
use crate::view::{ClusterView, SecretKeys};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use terway_hybrid_api::names::{
    ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE, INSTALLATION_NAME,
    KUBERNETES_SERVICE_NAME, KUBERNETES_SERVICE_NAMESPACE, ROLLOUT_NAME,
};
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct FetchError {
    pub what: String,
    #[source]
    pub source: kube::Error,
}

fn ctx(what: impl Into<String>) -> impl FnOnce(kube::Error) -> FetchError {
    let what = what.into();
    move |source| FetchError { what, source }
}

pub fn installation_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("operator.tigera.io", "v1", "Installation"))
}

pub async fn cluster_view(client: &Client) -> Result<ClusterView, FetchError> {
    let lp = ListParams::default();
    let nodes = Api::<Node>::all(client.clone()).list(&lp).await.map_err(ctx("list nodes"))?.items;
    // Without the CRD (the agent not installed yet) there are no reports.
    let reports = match Api::<NodeNetworkReport>::all(client.clone()).list(&lp).await {
        Err(kube::Error::Api(e)) if e.code == 404 => vec![],
        other => other.map_err(ctx("list nodenetworkreports.terway-hybrid.io"))?.items,
    };
    let rollout =
        get_opt(Api::<TerwayRollout>::all(client.clone()), ROLLOUT_NAME, "terwayrollouts.terway-hybrid.io")
            .await?;
    let daemon_sets =
        Api::<DaemonSet>::all(client.clone()).list(&lp).await.map_err(ctx("list daemonsets"))?.items;
    let scope = Scope::of(&rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default());
    let mut pods = Vec::new();
    for query in scope.pod_queries(&daemon_sets) {
        let list = Api::<Pod>::namespaced(client.clone(), &query.namespace)
            .list(&ListParams::default().labels(&query.selector))
            .await
            .map_err(ctx(format!("list pods in {} ({})", query.namespace, query.selector)))?;
        pods.extend(list.items);
    }
    let eni_config = get_opt(
        Api::<ConfigMap>::namespaced(client.clone(), ENI_CONFIG_NAMESPACE),
        ENI_CONFIG_NAME,
        "configmap",
    )
    .await?;
    let addon_secret = get_opt(
        Api::<Secret>::namespaced(client.clone(), ADDON_SECRET_NAMESPACE),
        ADDON_SECRET_NAME,
        "secret",
    )
    .await?
    .map(|s| SecretKeys::from_secret(&s));
    let kubernetes_service = get_opt(
        Api::<Service>::namespaced(client.clone(), KUBERNETES_SERVICE_NAMESPACE),
        KUBERNETES_SERVICE_NAME,
        "service",
    )
    .await?;
    // Without the Tigera operator's CRD the get is a 404 too: no Installation.
    let installation = get_opt(
        Api::<DynamicObject>::all_with(client.clone(), &installation_resource()),
        INSTALLATION_NAME,
        "installations.operator.tigera.io",
    )
    .await?;
    Ok(ClusterView {
        nodes,
        reports,
        daemon_sets,
        pods,
        eni_config,
        addon_secret,
        kubernetes_service,
        installation,
        rollout,
    })
}

/// Reads one object by name; absent (or its CRD absent) is None. `kind`
/// names it in errors.
async fn get_opt<K>(api: Api<K>, name: &str, kind: &str) -> Result<Option<K>, FetchError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // `get secret kube-system/x`, `get terwayrollouts.terway-hybrid.io/default`.
    let what = match api.namespace() {
        Some(ns) => format!("get {kind} {ns}/{name}"),
        None => format!("get {kind}/{name}"),
    };
    get_present(&api, name).await.map_err(ctx(what))
}

/// Reads one object by name; any 404 is None. Unlike `Api::get_opt`, which
/// is None only for a `NotFound` Status: a real API server without the
/// object's CRD (no Tigera operator, say) answers a plain-text
/// `404 page not found`, which kube cannot read as a Status.
pub async fn get_present<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(object) => Ok(Some(object)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}
