//! Watches feed in-memory stores; every event only says "something changed".
//! The reconcile loop then takes a [`ClusterView`] of the stores as they are.
//!
//! Watches are narrowed where the API allows: the agent's and the CNIs' pods
//! by label, the singletons (eni-config, the RAM Secret, default/kubernetes,
//! Installation default) by name. The Secret is reduced to key presence as
//! each event arrives: its values are never stored.

use crate::fetch::installation_resource;
use crate::view::{
    slim_pod, ClusterView, SecretKeys, ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME,
    ENI_CONFIG_NAMESPACE,
};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};
use tokio::sync::Notify;

/// Pod label selectors of the DaemonSets the plan looks at: the agent, the
/// on-prem CNIs and Terway, by the labels their upstream manifests use.
pub const POD_SELECTORS: [&str; 2] = [
    "k8s-app in (calico-node,canal,cilium,kube-router)",
    "app in (flannel,terway-eniip,terway-hybrid-agent)",
];

/// One object, kept reduced to what the view needs.
type Singleton<T> = Arc<RwLock<Option<T>>>;

#[derive(Clone)]
pub struct Stores {
    nodes: Store<Node>,
    reports: Store<NodeNetworkReport>,
    daemon_sets: Store<DaemonSet>,
    pods: Vec<Store<Pod>>,
    rollouts: Store<TerwayRollout>,
    eni_config: Singleton<ConfigMap>,
    addon_secret: Singleton<SecretKeys>,
    kubernetes_service: Singleton<Service>,
    installation: Singleton<DynamicObject>,
}

impl Stores {
    /// The view as the stores hold it now.
    pub fn view(&self) -> ClusterView {
        ClusterView {
            nodes: owned(self.nodes.state()),
            reports: owned(self.reports.state()),
            daemon_sets: owned(self.daemon_sets.state()),
            pods: self.pods.iter().flat_map(|s| s.state()).map(|p| (*p).clone()).collect(),
            eni_config: read(&self.eni_config),
            addon_secret: read(&self.addon_secret),
            kubernetes_service: read(&self.kubernetes_service),
            installation: read(&self.installation),
            rollout: self
                .rollouts
                .state()
                .into_iter()
                .find(|r| r.metadata.name.as_deref() == Some("default"))
                .map(|r| (*r).clone()),
        }
    }

    /// Every list watch has delivered its first full list.
    pub async fn wait_until_ready(&self) {
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.reports.wait_until_ready().await;
        let _ = self.daemon_sets.wait_until_ready().await;
        for p in &self.pods {
            let _ = p.wait_until_ready().await;
        }
        let _ = self.rollouts.wait_until_ready().await;
    }
}

fn owned<K: Clone>(v: Vec<Arc<K>>) -> Vec<K> {
    v.into_iter().map(|o| (*o).clone()).collect()
}

fn read<T: Clone>(slot: &Singleton<T>) -> Option<T> {
    slot.read().map(|g| g.clone()).unwrap_or_default()
}

/// Starts every watch; `changed` is notified on any event. Returns the
/// stores and the future that drives the watches (run it until shutdown).
pub fn start(
    client: Client,
    installation_exists: bool,
    changed: Arc<Notify>,
) -> (Stores, impl std::future::Future<Output = ()>) {
    let mut drivers: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();

    fn reflect<K>(
        api: Api<K>,
        config: watcher::Config,
        changed: Arc<Notify>,
        drivers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
    ) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (reader, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
        drivers.push(Box::pin(drive(stream, changed)));
        reader
    }

    let nodes =
        reflect(Api::<Node>::all(client.clone()), watcher::Config::default(), changed.clone(), &mut drivers);
    let reports = reflect(
        Api::<NodeNetworkReport>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
        &mut drivers,
    );
    let daemon_sets = reflect(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
        &mut drivers,
    );
    let pods = POD_SELECTORS
        .iter()
        .map(|sel| {
            let (reader, writer) = reflector::store();
            let stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default().labels(sel))
                .modify(slim_pod)
                .default_backoff();
            drivers.push(Box::pin(drive(reflector::reflector(writer, stream), changed.clone())));
            reader
        })
        .collect();
    let rollouts = reflect(
        Api::<TerwayRollout>::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
        &mut drivers,
    );

    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let eni_config = Singleton::default();
    drivers.push(Box::pin(singleton(
        Api::<ConfigMap>::namespaced(client.clone(), ENI_CONFIG_NAMESPACE),
        by_name(ENI_CONFIG_NAME),
        eni_config.clone(),
        Some,
        changed.clone(),
    )));
    let addon_secret = Singleton::default();
    drivers.push(Box::pin(singleton(
        Api::<Secret>::namespaced(client.clone(), ADDON_SECRET_NAMESPACE),
        by_name(ADDON_SECRET_NAME),
        addon_secret.clone(),
        |s: Secret| Some(SecretKeys::from_secret(&s)),
        changed.clone(),
    )));
    let kubernetes_service = Singleton::default();
    drivers.push(Box::pin(singleton(
        Api::<Service>::namespaced(client.clone(), "default"),
        by_name("kubernetes"),
        kubernetes_service.clone(),
        Some,
        changed.clone(),
    )));
    let installation = Singleton::default();
    if installation_exists {
        drivers.push(Box::pin(singleton(
            Api::<DynamicObject>::all_with(client.clone(), &installation_resource()),
            by_name("default"),
            installation.clone(),
            Some,
            changed.clone(),
        )));
    }
    let stores = Stores {
        nodes,
        reports,
        daemon_sets,
        pods,
        rollouts,
        eni_config,
        addon_secret,
        kubernetes_service,
        installation,
    };
    (stores, futures::future::join_all(drivers).map(drop))
}

async fn drive<S, T, E>(stream: S, changed: Arc<Notify>)
where
    S: Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            // The backoff retries; a dropped watch re-lists and the store
            // catches up, so nothing is lost, only delayed.
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }
}

/// Keeps one named object, reduced by `reduce`, in `slot`.
async fn singleton<K, T>(
    api: Api<K>,
    config: watcher::Config,
    slot: Singleton<T>,
    reduce: impl Fn(K) -> Option<T>,
    changed: Arc<Notify>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    // Objects seen during a re-list; what is not seen again was deleted.
    let mut relist: Option<Option<T>> = None;
    while let Some(event) = stream.next().await {
        let write = |value: Option<T>| {
            if let Ok(mut guard) = slot.write() {
                *guard = value;
            }
            changed.notify_one();
        };
        match event {
            Ok(watcher::Event::Apply(obj)) => write(reduce(obj)),
            Ok(watcher::Event::Delete(_)) => write(None),
            Ok(watcher::Event::Init) => relist = Some(None),
            Ok(watcher::Event::InitApply(obj)) => relist = Some(reduce(obj)),
            Ok(watcher::Event::InitDone) => write(relist.take().flatten()),
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }
}
