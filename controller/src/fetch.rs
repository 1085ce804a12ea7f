//! One-shot reads of everything a ClusterView holds, for `terway-hybrid
//! preflight` against a live cluster: the same objects the controller's
//! watches keep, chosen by the same [`Scope`]. The Secret is reduced to key
//! presence here, at the edge: its values go no further.

use crate::api_error::ApiError;
use crate::pure::address_plan::CNI_CONFIG_MAPS;
use crate::pure::pod::SlimPod;
use crate::pure::scope::Scope;
use crate::pure::view::{slim_cni_config, slim_ip_pool, slim_node, slim_pod, ClusterView, SecretKeys};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use std::sync::Arc;
use terway_hybrid_api::names::{
    ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE, INSTALLATION_NAME,
    KUBERNETES_SERVICE_NAME, KUBERNETES_SERVICE_NAMESPACE, ROLLOUT_NAME,
};
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};

pub fn installation_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("operator.tigera.io", "v1", "Installation"))
}

/// Calico's IPPool (crd.projectcalico.org/v1), the CRD Calico's manifests
/// and the Tigera operator install.
pub fn ip_pool_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("crd.projectcalico.org", "v1", "IPPool"))
}

pub async fn cluster_view(client: &Client) -> Result<ClusterView, ApiError> {
    let lp = ListParams::default();
    // Nodes and pods reduced as the controller's watches reduce them (and
    // to no fewer paths than the dump keeps): a DaemonSet's pod is ~30 KiB in
    // memory whole.
    let nodes = Api::<Node>::all(client.clone())
        .list(&lp)
        .await
        .map_err(ApiError::context("list nodes"))?
        .items
        .into_iter()
        .map(|mut n| {
            slim_node(&mut n);
            Arc::new(n)
        })
        .collect();
    // Without the CRD (the agent not installed yet) there are no reports.
    let reports = match Api::<NodeNetworkReport>::all(client.clone()).list(&lp).await {
        Err(kube::Error::Api(e)) if e.code == 404 => vec![],
        other => other
            .map_err(ApiError::context("list nodenetworkreports.terway-hybrid.io"))?
            .items
            .into_iter()
            .map(Arc::new)
            .collect(),
    };
    let rollout =
        get_opt(Api::<TerwayRollout>::all(client.clone()), ROLLOUT_NAME, "terwayrollouts.terway-hybrid.io")
            .await?;
    let daemon_sets = Api::<DaemonSet>::all(client.clone())
        .list(&lp)
        .await
        .map_err(ApiError::context("list daemonsets"))?
        .items;
    let scope = Scope::of(&rollout.as_ref().map(|r| r.spec.clone()).unwrap_or_default());
    let mut pods = Vec::new();
    for query in scope.pod_queries(&daemon_sets) {
        let list = Api::<SlimPod>::namespaced(client.clone(), &query.namespace)
            .list(&ListParams::default().labels(&query.selector))
            .await
            .map_err(ApiError::context(format!("list pods in {} ({})", query.namespace, query.selector)))?;
        pods.extend(list.items.into_iter().map(|mut p| {
            slim_pod(&mut p);
            Arc::new(p)
        }));
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
    // Without Calico's CRD, or on a server older than ServiceCIDR (1.33),
    // the list is a 404: there are none.
    let mut ip_pools = list_present(
        Api::<DynamicObject>::all_with(client.clone(), &ip_pool_resource()),
        "ippools.crd.projectcalico.org",
    )
    .await?;
    ip_pools.iter_mut().for_each(slim_ip_pool);
    let service_cidrs =
        list_present(Api::<ServiceCIDR>::all(client.clone()), "servicecidrs.networking.k8s.io").await?;
    let mut cni_configs = Vec::new();
    for (namespace, name) in CNI_CONFIG_MAPS {
        if let Some(mut cm) =
            get_opt(Api::<ConfigMap>::namespaced(client.clone(), namespace), name, "configmap").await?
        {
            slim_cni_config(&mut cm);
            cni_configs.push(cm);
        }
    }
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
        ip_pools,
        service_cidrs,
        cni_configs,
    })
}

/// Lists every object of a kind; a 404 (the API or its CRD absent) is none.
async fn list_present<K>(api: Api<K>, resource: &str) -> Result<Vec<K>, ApiError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(ApiError::context(format!("list {resource}"))(e)),
    }
}

/// Reads one object by name; absent (or its CRD absent) is None. `kind`
/// names it in errors.
async fn get_opt<K>(api: Api<K>, name: &str, kind: &str) -> Result<Option<K>, ApiError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // `get secret kube-system/x`, `get terwayrollouts.terway-hybrid.io/default`.
    let what = match api.namespace() {
        Some(ns) => format!("get {kind} {ns}/{name}"),
        None => format!("get {kind}/{name}"),
    };
    get_present(&api, name).await.map_err(ApiError::context(what))
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
