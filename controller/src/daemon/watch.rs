//! Watches feed in-memory stores; every event only says "something changed".
//! The reconcile loop then takes a [`ClusterView`] of the stores as they are.
//!
//! Watches are narrowed where the API allows: pods to those of the
//! DaemonSets the [`Scope`] names (one watch per DaemonSet, by its own
//! selector, re-scoped by [`Stores::rescope`] when the TerwayRollout or the
//! DaemonSets change), the singletons (eni-config, the RAM Secret,
//! default/kubernetes, Installation default, the CNI ConfigMaps) by name.
//! The Secret is reduced to key presence as each event arrives: its values
//! are never stored. Calico's IPPools and the ServiceCIDRs are watched where
//! the server serves them ([`Optional`]).

use crate::fetch::{installation_resource, ip_pool_resource};
use crate::pure::address_plan::CNI_CONFIG_MAPS;
use crate::pure::pod::SlimPod;
use crate::pure::scope::{PodQuery, Scope};
use crate::pure::view::{
    slim_cni_config, slim_ip_pool, slim_node, slim_pod, slim_service_cidr, ClusterView, SecretKeys,
};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use terway_hybrid_api::names::{
    ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE, INSTALLATION_NAME,
    KUBERNETES_SERVICE_NAME, KUBERNETES_SERVICE_NAMESPACE, ROLLOUT_NAME,
};
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};
use tokio::sync::Notify;

/// One object, kept reduced to what the view needs.
type Singleton<T> = Arc<RwLock<Option<T>>>;

/// The pods of one relevant DaemonSet; dropping it stops its watch.
struct PodWatch {
    store: Store<SlimPod>,
    task: tokio::task::AbortHandle,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
pub struct Stores {
    client: Client,
    changed: Arc<Notify>,
    nodes: Store<Node>,
    reports: Store<NodeNetworkReport>,
    daemon_sets: Store<DaemonSet>,
    pods: Arc<Mutex<BTreeMap<PodQuery, PodWatch>>>,
    rollouts: Store<TerwayRollout>,
    eni_config: Singleton<ConfigMap>,
    addon_secret: Singleton<SecretKeys>,
    kubernetes_service: Singleton<Service>,
    installation: Singleton<DynamicObject>,
    /// Which of the APIs that a server may lack are watched.
    optional: Optional,
    ip_pools: Store<DynamicObject>,
    service_cidrs: Store<ServiceCIDR>,
    /// One per [`CNI_CONFIG_MAPS`] entry.
    cni_configs: Vec<Singleton<ConfigMap>>,
}

/// The APIs a server may not serve, each watched only where it does (the
/// controller asks at start: run.rs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Optional {
    /// Installation (operator.tigera.io/v1): the Tigera operator's CRD.
    pub installation: bool,
    /// IPPool (crd.projectcalico.org/v1): Calico's CRD.
    pub ip_pools: bool,
    /// ServiceCIDR (networking.k8s.io/v1): Kubernetes 1.33 and later.
    pub service_cidrs: bool,
}

impl Stores {
    /// The view as the stores hold it now.
    pub fn view(&self) -> ClusterView {
        ClusterView {
            nodes: self.nodes.state(),
            reports: self.reports.state(),
            daemon_sets: owned(self.daemon_sets.state()),
            pods: self.pods(),
            eni_config: read(&self.eni_config),
            addon_secret: read(&self.addon_secret),
            kubernetes_service: read(&self.kubernetes_service),
            installation: read(&self.installation),
            rollout: self
                .rollouts
                .state()
                .into_iter()
                .find(|r| r.metadata.name.as_deref() == Some(ROLLOUT_NAME))
                .map(|r| (*r).clone()),
            ip_pools: owned(self.ip_pools.state()),
            service_cidrs: owned(self.service_cidrs.state()),
            cni_configs: self.cni_configs.iter().filter_map(read).collect(),
        }
    }

    /// The pods every current pod watch holds, each once (two DaemonSets'
    /// selectors may overlap).
    fn pods(&self) -> Vec<Arc<SlimPod>> {
        let watches = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = BTreeSet::new();
        watches
            .values()
            .flat_map(|w| w.store.state())
            .filter(|p| seen.insert((p.metadata.namespace.clone(), p.metadata.name.clone())))
            .collect()
    }

    /// Every list watch has delivered its first full list, the pod watches
    /// the scope asks for included.
    pub async fn wait_until_ready(&self) {
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.reports.wait_until_ready().await;
        let _ = self.daemon_sets.wait_until_ready().await;
        let _ = self.rollouts.wait_until_ready().await;
        // A store that is not watched never becomes ready.
        if self.optional.ip_pools {
            let _ = self.ip_pools.wait_until_ready().await;
        }
        if self.optional.service_cidrs {
            let _ = self.service_cidrs.wait_until_ready().await;
        }
        self.rescope();
        self.pods_ready().await;
    }

    /// Every pod watch has delivered its first full list.
    pub async fn pods_ready(&self) {
        let stores: Vec<Store<SlimPod>> =
            self.pods.lock().unwrap_or_else(|e| e.into_inner()).values().map(|w| w.store.clone()).collect();
        for store in stores {
            let _ = store.wait_until_ready().await;
        }
    }

    /// Starts a pod watch for every query the [`Scope`] now asks for (from
    /// the TerwayRollout and the DaemonSets in the stores) and stops the
    /// ones it no longer does. Returns whether anything changed; await
    /// [`Stores::pods_ready`] before trusting the view after a change.
    pub fn rescope(&self) -> bool {
        let spec = self.rollout_spec().unwrap_or_default();
        let wanted = Scope::of(&spec).pod_queries(self.daemon_sets.state().iter().map(|d| &**d));
        let mut watches = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let before = watches.len();
        watches.retain(|query, _| wanted.contains(query));
        let mut changed = watches.len() != before;
        for query in wanted {
            if watches.contains_key(&query) {
                continue;
            }
            tracing::info!(namespace = %query.namespace, selector = %query.selector, "watching pods");
            let (store, writer) = reflector::store();
            let config = watcher::Config::default().labels(&query.selector);
            let api = Api::<SlimPod>::namespaced(self.client.clone(), &query.namespace);
            let stream = watcher(api, config).modify(slim_pod).default_backoff();
            let task = tokio::spawn(drive(reflector::reflector(writer, stream), self.changed.clone()));
            watches.insert(query, PodWatch { store, task: task.abort_handle() });
            changed = true;
        }
        changed
    }

    /// The spec of TerwayRollout `default` as the watch holds it (None: there
    /// is none, which the controller reads as the defaults).
    pub fn rollout_spec(&self) -> Option<terway_hybrid_api::TerwayRolloutSpec> {
        self.rollouts
            .state()
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some(ROLLOUT_NAME))
            .map(|r| r.spec.clone())
    }
}

fn owned<K: Clone>(v: Vec<Arc<K>>) -> Vec<K> {
    v.into_iter().map(|o| (*o).clone()).collect()
}

fn read<T: Clone>(slot: &Singleton<T>) -> Option<T> {
    slot.read().map(|g| g.clone()).unwrap_or_default()
}

/// Starts every watch; `changed` is notified on any event. Returns the
/// stores and the future that drives the watches (run it until shutdown);
/// the pod watches start with [`Stores::wait_until_ready`] and follow
/// [`Stores::rescope`], each on its own task.
pub fn start(
    client: Client,
    optional: Optional,
    changed: Arc<Notify>,
) -> (Stores, impl std::future::Future<Output = ()>) {
    let mut w = Watches { changed: changed.clone(), drivers: Vec::new() };
    let nodes = w.reflect(Api::all(client.clone()), slim_node);
    let reports = w.reflect(Api::<NodeNetworkReport>::all(client.clone()), without_managed_fields);
    let daemon_sets = w.reflect(Api::<DaemonSet>::all(client.clone()), without_managed_fields);
    let rollouts = w.reflect(Api::<TerwayRollout>::all(client.clone()), without_managed_fields);
    let eni_config =
        w.singleton(Api::namespaced(client.clone(), ENI_CONFIG_NAMESPACE), ENI_CONFIG_NAME, Some);
    let addon_secret = w.singleton(
        Api::namespaced(client.clone(), ADDON_SECRET_NAMESPACE),
        ADDON_SECRET_NAME,
        |s: Secret| Some(SecretKeys::from_secret(&s)),
    );
    let kubernetes_service = w.singleton(
        Api::namespaced(client.clone(), KUBERNETES_SERVICE_NAMESPACE),
        KUBERNETES_SERVICE_NAME,
        Some,
    );
    let installation = if optional.installation {
        w.singleton(Api::all_with(client.clone(), &installation_resource()), INSTALLATION_NAME, Some)
    } else {
        Singleton::default()
    };
    let pools = reflector::store::Writer::new(ip_pool_resource());
    let ip_pools = pools.as_reader();
    if optional.ip_pools {
        let api = Api::<DynamicObject>::all_with(client.clone(), &ip_pool_resource());
        let stream = watcher(api, watcher::Config::default()).modify(slim_ip_pool).default_backoff();
        w.drivers.push(Box::pin(drive(reflector::reflector(pools, stream), changed.clone())));
    }
    let service_cidrs = if optional.service_cidrs {
        w.reflect(Api::<ServiceCIDR>::all(client.clone()), slim_service_cidr)
    } else {
        reflector::store().0
    };
    let cni_configs = CNI_CONFIG_MAPS
        .iter()
        .map(|(namespace, name)| {
            w.singleton(Api::namespaced(client.clone(), namespace), name, |mut cm: ConfigMap| {
                slim_cni_config(&mut cm);
                Some(cm)
            })
        })
        .collect();
    let stores = Stores {
        client,
        changed,
        nodes,
        reports,
        daemon_sets,
        pods: Arc::default(),
        rollouts,
        eni_config,
        addon_secret,
        kubernetes_service,
        installation,
        optional,
        ip_pools,
        service_cidrs,
        cni_configs,
    };
    (stores, futures::future::join_all(w.drivers).map(drop))
}

/// The watches being started, and the futures that will drive them.
struct Watches {
    changed: Arc<Notify>,
    drivers: Vec<futures::future::BoxFuture<'static, ()>>,
}

impl Watches {
    /// A reflector of every `K`, each object cut down by `slim` as it arrives.
    fn reflect<K>(&mut self, api: Api<K>, slim: fn(&mut K)) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (reader, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default()).modify(slim).default_backoff();
        let stream = reflector::reflector(writer, stream);
        self.drivers.push(Box::pin(drive(stream, self.changed.clone())));
        reader
    }

    /// One object by name, kept as `reduce` makes it.
    fn singleton<K, T>(&mut self, api: Api<K>, name: &str, reduce: fn(K) -> Option<T>) -> Singleton<T>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        T: Send + Sync + 'static,
    {
        let slot = Singleton::default();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        self.drivers.push(Box::pin(singleton(api, config, slot.clone(), reduce, self.changed.clone())));
        slot
    }
}

// managedFields are most of what a kwok- or kubelet-updated object weighs,
// and nothing here reads them: 1,200 nodes held 157 MiB with them. Nodes keep
// only what the plan reads (slim_node).
fn without_managed_fields<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
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
