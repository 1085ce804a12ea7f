//! `terway-hybrid-controller`: watches feed the stores; the leader reconciles
//! the whole view after every change (coalesced) and at least every resync.

use crate::daemon::apply::Applier;
use crate::daemon::http::{self, Health};
use crate::daemon::metrics::Metrics;
use crate::daemon::reconcile::{reconcile_probing, Memo};
use crate::daemon::webhook::{self, ClientConfig};
use crate::{daemon::certs, daemon::watch, fetch};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    /// The Terway gate's admission webhook (docs/architecture.md).
    pub webhook: WebhookConfig,
    /// The port agents and responder pods answer probes on: the port of
    /// every probe target (docs/contracts.md §13).
    pub probe_port: u16,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where it is served (HTTPS).
    pub addr: SocketAddr,
    /// How the API server reaches it (written into the configuration).
    pub client: ClientConfig,
    /// The Secret holding the webhook's CA: (namespace, name).
    pub ca_secret: (String, String),
    /// A new serving certificate this often; each is valid for twice as long
    /// plus five minutes, so a late rotation never leaves an expired one.
    pub rotate: Duration,
}

/// The leader reads the webhook configuration back this often, and applies
/// it again when someone edited or emptied it (a re-apply of the shipped
/// manifests does).
const WEBHOOK_RECHECK: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("webhook certificate: {0}")]
    Cert(#[from] certs::CertError),
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

    let optional = optional_apis(&client).await;
    let changed = Arc::new(Notify::new());
    let (stores, driver) = watch::start(client.clone(), optional, changed.clone());
    let driver = tokio::spawn(driver);

    let WebhookTls { resolver, listener: webhook_listener, ca_bundle, rotation } =
        WebhookTls::start(&client, &cfg.webhook).await?;

    let (mut leader, lease_task) = elect(&client, &cfg).await?;

    let applier_client = client.clone();
    let applier = Applier::new(client, Some(cfg.identity.clone()));
    let mut memo = Memo::default();
    tokio::pin!(shutdown);
    tokio::select! {
        _ = stores.wait_until_ready() => {}
        _ = &mut shutdown => {
            rotation.abort();
            return finish(leader, lease_task, driver, server).await;
        }
    }
    let spec_source: webhook::SpecSource = {
        let stores = stores.clone();
        Arc::new(move || stores.rollout_spec())
    };
    let webhook_server =
        tokio::spawn(webhook::serve(webhook_listener, resolver, webhook::router(spec_source)));
    health.set_synced();
    tracing::info!(?optional, "watches synced");
    let mut applied_webhook: Option<(serde_json::Value, Instant)> = None;
    loop {
        let is_leader = *leader.borrow_and_update();
        metrics.set_leader(is_leader);
        if !is_leader {
            applied_webhook = None;
        }
        // A TerwayRollout that names other DaemonSets, or a DaemonSet that
        // appeared, changes which pods matter: watch those before deciding.
        if stores.rescope() {
            tokio::select! {
                _ = stores.pods_ready() => {}
                _ = &mut shutdown => break,
            }
        }
        if is_leader {
            let spec = stores.rollout_spec().unwrap_or_default();
            let desired = webhook::configuration(&spec, &cfg.webhook.client, &ca_bundle);
            keep_webhook_configuration(&applier_client, desired, spec.mode, &mut applied_webhook).await;
            // A reconcile of thousands of writes takes a while: SIGTERM
            // drops it between writes (each is an idempotent apply the next
            // leader repeats if it did not land).
            let view = stores.view();
            let (plan, outcome) = tokio::select! {
                done = reconcile_probing(&view, &applier, &metrics, &mut memo, cfg.probe_port) => done,
                _ = &mut shutdown => break,
            };
            tracing::info!(
                scenario = %plan.scenario, passed = plan.passed, writes = outcome.writes,
                errors = outcome.errors.len(), deferred = outcome.deferred,
                wave = plan.status.current_wave, "reconciled"
            );
            if outcome.deferred > 0 && outcome.errors.is_empty() {
                // Probe targets over the budget: the next reconcile sends
                // them, with whatever changed meanwhile. (After a failed
                // write it waits as usual, not to hammer a failing server.)
                continue;
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = changed.notified() => tokio::time::sleep(cfg.coalesce).await,
            _ = leader.changed() => {}
            _ = tokio::time::sleep(cfg.resync) => {}
        }
    }
    webhook_server.abort();
    rotation.abort();
    finish(leader, lease_task, driver, server).await
}

/// Which of the APIs a server may lack it serves: without the Tigera
/// operator's CRD, Calico's, or the ServiceCIDR API (before Kubernetes 1.33)
/// there is nothing to watch.
async fn optional_apis(client: &Client) -> watch::Optional {
    let serves = |resource: kube::api::ApiResource| {
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        async move { api.list(&ListParams::default().limit(1)).await.is_ok() }
    };
    watch::Optional {
        installation: serves(fetch::installation_resource()).await,
        ip_pools: serves(fetch::ip_pool_resource()).await,
        service_cidrs: serves(
            kube::api::ApiResource::erase::<k8s_openapi::api::networking::v1::ServiceCIDR>(&()),
        )
        .await,
    }
}

/// The webhook's TLS: its CA (shared by the replicas through the Secret), a
/// serving certificate issued from it and renewed by `rotation`, and the
/// listener, bound now so a taken port fails the start. It serves only once
/// the watches synced: before that it could not tell Auto from Manual, and
/// an unanswered call fails closed (failurePolicy Fail).
struct WebhookTls {
    resolver: Arc<certs::Resolver>,
    listener: tokio::net::TcpListener,
    /// The CA certificate (PEM): the configuration's caBundle.
    ca_bundle: String,
    rotation: tokio::task::JoinHandle<()>,
}

impl WebhookTls {
    async fn start(client: &Client, wh: &WebhookConfig) -> Result<WebhookTls, RunError> {
        let (ca_ns, ca_name) = &wh.ca_secret;
        let ca =
            certs::load_or_create(&Api::<Secret>::namespaced(client.clone(), ca_ns), ca_ns, ca_name).await?;
        let names = wh.client.server_names();
        let validity = wh.rotate * 2 + Duration::from_secs(300);
        let resolver = certs::Resolver::new(ca.issue(&names, validity)?);
        let ca_bundle = ca.cert_pem.clone();
        let listener = tokio::net::TcpListener::bind(wh.addr)
            .await
            .map_err(|source| RunError::Bind { addr: wh.addr, source })?;
        tracing::info!(addr = %listener.local_addr().map_or(wh.addr, |a| a), ?names, "webhook listening");
        let rotation = tokio::spawn({
            let resolver = resolver.clone();
            let rotate = wh.rotate;
            async move {
                let mut n = 0u64;
                loop {
                    tokio::time::sleep(rotate).await;
                    match ca.issue(&names, validity) {
                        Ok(next) => {
                            resolver.swap(next);
                            n += 1;
                            tracing::info!(rotation = n, "rotated the webhook's serving certificate");
                        }
                        Err(e) => tracing::warn!(error = %e, "webhook certificate rotation failed; retrying"),
                    }
                }
            }
        });
        Ok(WebhookTls { resolver, listener, ca_bundle, rotation })
    }
}

type LeaseTask =
    tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>;

/// Leadership: from the Lease when one is configured, else always.
async fn elect(
    client: &Client,
    cfg: &Config,
) -> Result<(tokio::sync::watch::Receiver<bool>, Option<LeaseTask>), RunError> {
    let Some((namespace, name)) = &cfg.lease else {
        return Ok((tokio::sync::watch::channel(true).1, None));
    };
    let manager = LeaseManagerBuilder::new(client.clone(), name)
        .with_namespace(namespace)
        .with_identity(&cfg.identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (rx, task) = manager.watch().await;
    Ok((rx, Some(task)))
}

/// Applies the webhook configuration when it changed. A new leader, and
/// every [`WEBHOOK_RECHECK`], reads it first and applies only when the
/// server's differs (`webhook::holds`), so a steady state sends no write;
/// a failed read is answered by applying. A failure is retried on the next
/// reconcile.
async fn keep_webhook_configuration(
    client: &Client,
    desired: serde_json::Value,
    mode: terway_hybrid_api::rollout::Mode,
    applied: &mut Option<(serde_json::Value, Instant)>,
) {
    let check_first = match applied.as_ref() {
        None => true,
        Some((last, _)) if *last != desired => false,
        Some((_, at)) if at.elapsed() >= WEBHOOK_RECHECK => true,
        Some(_) => return,
    };
    if check_first {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let read =
            tokio::time::timeout(crate::daemon::apply::REQUEST_TIMEOUT, api.get(webhook::CONFIGURATION_NAME))
                .await;
        match read.map(|r| r.map(|c| serde_json::to_value(c).unwrap_or_default())) {
            Ok(Ok(actual)) if webhook::holds(&actual, &desired) => {
                *applied = Some((desired, Instant::now()));
                return;
            }
            Ok(Ok(_)) => tracing::info!("the webhook configuration differs from the leader's; applying it"),
            Ok(Err(e)) => tracing::warn!(error = %e, "reading the webhook configuration; applying it"),
            Err(_) => tracing::warn!("reading the webhook configuration: no answer; applying it"),
        }
    }
    match apply_webhook_configuration(client, &desired).await {
        Ok(()) => {
            tracing::info!(?mode, "applied the Terway gate's webhook configuration");
            *applied = Some((desired, Instant::now()));
        }
        Err(e) => tracing::warn!(error = %e, "webhook configuration; the next reconcile retries it"),
    }
}

/// Server-side apply of the MutatingWebhookConfiguration (it exists: the
/// manifests ship it empty, so `patch` by name is all RBAC grants).
async fn apply_webhook_configuration(
    client: &Client,
    desired: &serde_json::Value,
) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let params = PatchParams::apply(crate::pure::actions::FIELD_MANAGER).force();
    match tokio::time::timeout(
        crate::daemon::apply::REQUEST_TIMEOUT,
        api.patch(webhook::CONFIGURATION_NAME, &params, &Patch::Apply(desired)),
    )
    .await
    {
        Ok(r) => r.map(drop),
        Err(_) => Err(kube::Error::Service("no answer within the request timeout".into())),
    }
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
