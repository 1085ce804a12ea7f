//! One-shot reads of everything a ClusterView holds, for `terway-hybrid
//! preflight` against a live cluster. The Secret is reduced to key presence
//! here, at the edge: its values go no further.

use crate::cluster::{AGENT_DAEMONSET, WELL_KNOWN_CNI_DAEMONSETS};
use crate::view::{
    ClusterView, SecretKeys, ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use terway_hybrid_api::rollout::ROLLOUT_NAME;
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

/// Treats 404 as absent.
fn optional<T>(r: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn installation_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("operator.tigera.io", "v1", "Installation"))
}

pub async fn cluster_view(client: &Client) -> Result<ClusterView, FetchError> {
    let lp = ListParams::default();
    let nodes = Api::<Node>::all(client.clone()).list(&lp).await.map_err(ctx("list nodes"))?.items;
    let reports = optional(Api::<NodeNetworkReport>::all(client.clone()).list(&lp).await)
        .map_err(ctx("list nodenetworkreports.terway-hybrid.io"))?
        .map(|l| l.items)
        .unwrap_or_default();
    let rollout = optional(Api::<TerwayRollout>::all(client.clone()).get(ROLLOUT_NAME).await)
        .map_err(ctx("get terwayrollouts.terway-hybrid.io/default"))?;
    let daemon_sets =
        Api::<DaemonSet>::all(client.clone()).list(&lp).await.map_err(ctx("list daemonsets"))?.items;
    let spec = rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default();
    let relevant = |ds: &DaemonSet| {
        let name = ds.metadata.name.as_deref().unwrap_or("");
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        WELL_KNOWN_CNI_DAEMONSETS.contains(&name)
            || name == AGENT_DAEMONSET
            || (ns == spec.terway.namespace && name == spec.terway.daemon_set_name)
            || spec.on_prem_cni.daemon_sets.iter().any(|d| d.namespace == ns && d.name == name)
    };
    let mut pods = Vec::new();
    for ds in daemon_sets.iter().filter(|d| relevant(d)) {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let labels = ds.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let list = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
            .map_err(ctx(format!("list pods in {ns}")))?;
        pods.extend(list.items);
    }
    let eni_config = optional(
        Api::<ConfigMap>::namespaced(client.clone(), ENI_CONFIG_NAMESPACE).get(ENI_CONFIG_NAME).await,
    )
    .map_err(ctx("get configmap kube-system/eni-config"))?;
    let addon_secret = optional(
        Api::<Secret>::namespaced(client.clone(), ADDON_SECRET_NAMESPACE).get(ADDON_SECRET_NAME).await,
    )
    .map_err(ctx("get secret kube-system/alibaba-addon-secret"))?
    .map(|s| SecretKeys::from_secret(&s));
    let kubernetes_service =
        optional(Api::<Service>::namespaced(client.clone(), "default").get("kubernetes").await)
            .map_err(ctx("get service default/kubernetes"))?;
    let installation = optional(
        Api::<DynamicObject>::all_with(client.clone(), &installation_resource()).get("default").await,
    )
    .map_err(ctx("get installations.operator.tigera.io/default"))?;
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
