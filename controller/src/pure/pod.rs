//! pod: the controller's own Pod type, holding only the fields the plan
//! reads (the paths `terway-hybrid dump` keeps for a Pod, `dump_cmd::KEEP`).
//!
//! Why not k8s-openapi's `Pod`: it is 2 KiB before it holds anything
//! (`PodSpec` alone is 1.4 KiB of inline fields, a container status 0.75
//! KiB), and the controller watches a pod per node for each DaemonSet it
//! reads: 9,000 pods at 5,000 nodes. Decoding the API's JSON straight into
//! this type never allocates the rest, and the wire names are Kubernetes',
//! so a dump written from it reads back the same.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Pod (`v1`), as the plan reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlimPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SlimPodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SlimPodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The responder pods' addresses are probe targets.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<PodCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodCondition {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStateWaiting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// What lets kube's `Api`, watcher and reflector serve this type: the same
// resource as k8s-openapi's `Pod`.
impl k8s_openapi::Resource for SlimPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for SlimPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A whole pod as the API serves it decodes to the kept fields, and
    /// those encode back under the same names.
    #[test]
    fn decodes_what_the_api_serves_and_keeps_the_wire_names() {
        let served = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "calico-node-x", "namespace": "kube-system", "labels": {"k8s-app": "calico-node"}},
            "spec": {"nodeName": "idc-1", "hostNetwork": true, "containers": [{"name": "calico-node", "image": "calico/node"}],
                "tolerations": [{"operator": "Exists"}]},
            "status": {"phase": "Pending", "podIP": "10.0.0.1", "hostIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "initContainerStatuses": [{"name": "install-cni", "image": "calico/cni", "imageID": "", "ready": false,
                    "restartCount": 3, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}}}],
                "containerStatuses": [{"name": "calico-node", "image": "calico/node", "ready": false, "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
        });
        let pod: SlimPod = serde_json::from_value(served).unwrap();
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("idc-1"));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
        let init = &status.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
            Some("ImagePullBackOff")
        );
        assert_eq!(
            serde_json::to_value(&pod).unwrap(),
            json!({
                "metadata": {"name": "calico-node-x", "namespace": "kube-system", "labels": {"k8s-app": "calico-node"}},
                "spec": {"nodeName": "idc-1"},
                "status": {"phase": "Pending", "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "initContainerStatuses": [{"name": "install-cni", "image": "calico/cni", "ready": false,
                        "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
                    "containerStatuses": [{"name": "calico-node", "image": "calico/node", "ready": false, "state": {}}]}
            })
        );
        // Missing parts are missing, not an error.
        assert_eq!(serde_json::from_value::<SlimPod>(json!({})).unwrap(), SlimPod::default());
    }

    /// Why it exists (the module's doc): a fraction of k8s-openapi's Pod.
    #[test]
    fn a_fraction_of_the_full_pod() {
        let full = std::mem::size_of::<k8s_openapi::api::core::v1::Pod>();
        let slim = std::mem::size_of::<SlimPod>();
        assert!(slim * 4 < full, "{slim} bytes against {full}");
    }
}
