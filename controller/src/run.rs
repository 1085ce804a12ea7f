//! `terway-hybrid-controller`: watches feed the stores; the leader reconciles
//! the whole view after every change (coalesced) and at least every resync.

use crate::apply::Applier;
use crate::http::{self, Health};
use crate::metrics::Metrics;
use crate::reconcile::{reconcile, Memo};
use crate::{fetch, watch};
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Config {
    pub metrics_addr: SocketAddr,
    /// Lease name and namespace for leader election; None runs unelected
    /// (a single replica).
    pub lease: Option<(String, String)>,
    /// This replica's identity in the Lease (the pod name).
    pub identity: String,
    /// Changes closer together than this are reconciled once.
    pub coalesce: Duration,
    /// Reconcile at least this often (wave readiness timeouts need the clock).
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
}

pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    let metrics = Metrics::new();
    let health = Health::new(metrics.clone());
    let listener = tokio::net::TcpListener::bind(cfg.metrics_addr)
        .await
        .map_err(|source| RunError::Bind { addr: cfg.metrics_addr, source })?;
    let router = http::router(health.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Without the Tigera operator's CRD there is nothing to watch.
    let installation_exists = Api::<DynamicObject>::all_with(client.clone(), &fetch::installation_resource())
        .list(&ListParams::default().limit(1))
        .await
        .is_ok();
    let changed = Arc::new(Notify::new());
    let (stores, driver) = watch::start(client.clone(), installation_exists, changed.clone());
    let driver = tokio::spawn(driver);

    let (mut leader, lease_task) = match &cfg.lease {
        Some((namespace, name)) => {
            let manager = LeaseManagerBuilder::new(client.clone(), name)
                .with_namespace(namespace)
                .with_identity(&cfg.identity)
                .with_duration(15)
                .with_grace(5)
                .build()
                .await?;
            let (rx, task) = manager.watch().await;
            (rx, Some(task))
        }
        None => (tokio::sync::watch::channel(true).1, None),
    };

    let applier = Applier::new(client, Some(cfg.identity.clone()));
    let mut memo = Memo::default();
    tokio::pin!(shutdown);
    tokio::select! {
        _ = stores.wait_until_ready() => {}
        _ = &mut shutdown => return finish(leader, lease_task, driver, server).await,
    }
    health.set_synced();
    tracing::info!(installation_exists, "watches synced");
    loop {
        let is_leader = *leader.borrow_and_update();
        metrics.set_leader(is_leader);
        // A TerwayRollout that names other DaemonSets, or a DaemonSet that
        // appeared, changes which pods matter: watch those before deciding.
        if stores.rescope() {
            tokio::select! {
                _ = stores.pods_ready() => {}
                _ = &mut shutdown => break,
            }
        }
        if is_leader {
            let (plan, outcome) = reconcile(&stores.view(), &applier, &metrics, &mut memo).await;
            tracing::info!(
                scenario = %plan.scenario, passed = plan.passed, writes = outcome.writes,
                errors = outcome.errors.len(), wave = plan.status.current_wave, "reconciled"
            );
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = changed.notified() => tokio::time::sleep(cfg.coalesce).await,
            _ = leader.changed() => {}
            _ = tokio::time::sleep(cfg.resync) => {}
        }
    }
    finish(leader, lease_task, driver, server).await
}

/// Hands the Lease over at once (instead of letting it expire) and stops.
async fn finish<T, S>(
    leader: tokio::sync::watch::Receiver<bool>,
    lease_task: Option<tokio::task::JoinHandle<T>>,
    driver: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<S>,
) -> Result<(), RunError> {
    drop(leader);
    if let Some(task) = lease_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    driver.abort();
    server.abort();
    Ok(())
}
