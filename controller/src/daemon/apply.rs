//! apply: carries out [`Action`]s against the API, with server-side apply
//! under the controller's field manager. Each action is one request.

use crate::api_error::ApiError;
use crate::fetch::installation_resource;
use crate::pure::actions::{Action, FIELD_MANAGER};
use crate::pure::cni_fix::{self, Target};
use crate::pure::plan::{PlannedEvent, Remediation};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Affinity, Node, ObjectReference};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use std::time::Duration;
use terway_hybrid_api::names::{INSTALLATION_NAME, ROLLOUT_NAME};
use terway_hybrid_api::rollout::GATE_LABEL;
use terway_hybrid_api::{NodeNetworkReport, TerwayRollout};

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{what}: no answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { what: String },
}

async fn call<T>(
    what: String,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, ApplyError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|source| ApiError { what, source }.into()),
        Err(_) => Err(ApplyError::Timeout { what }),
    }
}

pub struct Applier {
    client: Client,
    recorder: Recorder,
}

impl Applier {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance };
        Applier { recorder: Recorder::new(client.clone(), reporter), client }
    }

    fn ssa() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// Runs one action; the rollout object is needed for status and events.
    pub async fn run(&self, action: &Action, rollout: Option<&TerwayRollout>) -> Result<(), ApplyError> {
        match action {
            Action::CreateRollout => {
                let api: Api<TerwayRollout> = Api::all(self.client.clone());
                let object = TerwayRollout::new(ROLLOUT_NAME, Default::default());
                match call("create terwayrollout default".into(), api.create(&PostParams::default(), &object))
                    .await
                {
                    // Another replica (or a person) created it first: fine.
                    Err(ApplyError::Api(e)) if e.code() == Some(409) => Ok(()),
                    other => other.map(drop),
                }
            }
            Action::NodeLabels { node, labels } => {
                let api: Api<Node> = Api::all(self.client.clone());
                let body =
                    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}});
                call(format!("label node {node}"), api.patch(node, &Self::ssa(), &Patch::Apply(&body)))
                    .await
                    .map(drop)
            }
            Action::RemoveGate { node } => {
                let api: Api<Node> = Api::all(self.client.clone());
                let body = json!({"metadata": {"labels": {GATE_LABEL: null}}});
                let params =
                    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
                call(
                    format!("close the Terway gate on node {node}"),
                    api.patch(node, &params, &Patch::Merge(&body)),
                )
                .await
                .map(drop)
            }
            Action::TerwayGate(gate) => {
                let target = Target::DaemonSet { namespace: gate.namespace.clone(), name: gate.name.clone() };
                self.apply_affinity(&target, &gate.affinity, false).await
            }
            Action::Remediate(Remediation::DaemonSet { namespace, name, affinity, apply, .. }) => {
                let target = Target::DaemonSet { namespace: namespace.clone(), name: name.clone() };
                self.apply_affinity(&target, affinity, !apply).await
            }
            Action::Remediate(Remediation::Installation { affinity, apply, .. }) => {
                self.apply_affinity(&Target::Installation, affinity, !apply).await
            }
            Action::RolloutStatus(status) => {
                let api: Api<TerwayRollout> = Api::all(self.client.clone());
                let body = json!({"apiVersion": TerwayRollout::api_version(&()), "kind": TerwayRollout::kind(&()),
                    "metadata": {"name": ROLLOUT_NAME}, "status": status});
                call(
                    "update terwayrollout default status".into(),
                    api.patch_status(ROLLOUT_NAME, &Self::ssa(), &Patch::Apply(&body)),
                )
                .await
                .map(drop)
            }
            Action::ProbeTargets { node, targets } => {
                let api: Api<NodeNetworkReport> = Api::all(self.client.clone());
                // Only spec.probeTargets, under the controller's own manager:
                // the agent's fields (spec.nodeName, the status) stay its own.
                // Without targets the field is left out, which removes it.
                let spec = if targets.is_empty() { json!({}) } else { json!({"probeTargets": targets}) };
                let body = json!({"apiVersion": NodeNetworkReport::api_version(&()),
                    "kind": NodeNetworkReport::kind(&()), "metadata": {"name": node}, "spec": spec});
                call(
                    format!("set the probe targets of nodenetworkreport {node}"),
                    api.patch(node, &Self::ssa(), &Patch::Apply(&body)),
                )
                .await
                .map(drop)
            }
            Action::Event(event) => match rollout {
                Some(rollout) => self.event(event, rollout).await,
                None => Ok(()), // nothing to attach it to yet; the condition is in the status
            },
        }
    }

    /// Sets a pod affinity by server-side apply ([`cni_fix::apply_body`]).
    async fn apply_affinity(
        &self,
        target: &Target,
        affinity: &Affinity,
        dry_run: bool,
    ) -> Result<(), ApplyError> {
        let body = cni_fix::apply_body(target, affinity, None);
        let mut params = Self::ssa();
        params.dry_run = dry_run;
        let verb = if dry_run { "dry-run patch" } else { "patch" };
        match target {
            Target::DaemonSet { namespace, name } => {
                let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), namespace);
                let what = format!("{verb} daemonset {namespace}/{name} affinity");
                call(what, api.patch(name, &params, &Patch::Apply(&body))).await.map(drop)
            }
            Target::Installation => {
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &installation_resource());
                let what = format!("{verb} installation {INSTALLATION_NAME}");
                call(what, api.patch(INSTALLATION_NAME, &params, &Patch::Apply(&body))).await.map(drop)
            }
        }
    }

    async fn event(&self, event: &PlannedEvent, rollout: &TerwayRollout) -> Result<(), ApplyError> {
        let reference: ObjectReference = rollout.object_ref(&());
        let e = Event {
            type_: if event.warning { EventType::Warning } else { EventType::Normal },
            reason: event.reason.clone(),
            note: Some(event.message.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        call(format!("record event {} on terwayrollout {}", event.reason, rollout.name_any()), async {
            self.recorder.publish(&e, &reference).await
        })
        .await
    }
}
