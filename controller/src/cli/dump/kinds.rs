//! What an object is: its apiVersion, kind and name ([`Header`]), and which
//! part of the view, if any, keeps it ([`Slot`]).

use serde_json::Value;
use terway_hybrid_api::names::{
    ADDON_SECRET_NAME, ADDON_SECRET_NAMESPACE, ENI_CONFIG_NAME, ENI_CONFIG_NAMESPACE, INSTALLATION_NAME,
    KUBERNETES_SERVICE_NAME, KUBERNETES_SERVICE_NAMESPACE, ROLLOUT_NAME,
};

pub(super) const TERWAY_HYBRID_API: &str = "terway-hybrid.io/v1alpha1";
pub(super) const TIGERA_API: &str = "operator.tigera.io/v1";
pub(super) const CALICO_CRD_API: &str = "crd.projectcalico.org/v1";
pub(super) const BOM: &[u8] = b"\xef\xbb\xbf";

/// apiVersion, kind and identity of one object, read before its body.
#[derive(Debug, Clone, Default)]
pub(super) struct Header {
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
}

impl Header {
    pub(super) fn summary_key(&self) -> String {
        format!("{} {}", self.api_version, self.kind)
    }

    /// `Node "node-4"`, `Pod "kube-system/calico-node-x"`, for messages.
    pub(super) fn label(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!("{} \"{ns}/{name}\"", self.kind),
            (None, Some(name)) => format!("{} \"{name}\"", self.kind),
            _ => self.kind.clone(),
        }
    }

    pub(super) fn is(&self, namespace: Option<&str>, name: &str) -> bool {
        self.name.as_deref() == Some(name) && (namespace.is_none() || self.namespace.as_deref() == namespace)
    }

    /// Inferred apiVersion/kind for the items of a typed list (`NodeList` -> `Node`).
    pub(super) fn item_type(&self) -> Option<(String, String)> {
        let kind = self.kind.strip_suffix("List").filter(|k| !k.is_empty())?;
        Some((self.api_version.clone(), kind.to_string()))
    }
}

pub(super) fn header_from(
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    inferred: Option<&(String, String)>,
) -> Option<Header> {
    // Items of a typed list have no apiVersion/kind of their own.
    let (api_version, kind) = match (api_version, kind, inferred) {
        (Some(a), Some(k), _) => (a, k),
        (None, None, Some((a, k))) => (a.clone(), k.clone()),
        _ => return None,
    };
    if kind.is_empty() {
        return None;
    }
    Some(Header { api_version, kind, namespace, name })
}

pub(super) fn is_list_kind(kind: &str) -> bool {
    kind.ends_with("List")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Slot {
    Node,
    Report,
    DaemonSet,
    Pod,
    EniConfig,
    AddonSecret,
    KubernetesService,
    Installation,
    Rollout,
    IpPool,
    ServiceCidr,
    CniConfig,
}

impl Slot {
    /// The lists of the view: every object of the kind is kept, whatever its name.
    pub(super) fn listed(h: &Header) -> Option<Slot> {
        let slot = match (h.api_version.as_str(), h.kind.as_str()) {
            ("v1", "Node") => Slot::Node,
            (TERWAY_HYBRID_API, "NodeNetworkReport") => Slot::Report,
            ("apps/v1", "DaemonSet") => Slot::DaemonSet,
            ("v1", "Pod") => Slot::Pod,
            (CALICO_CRD_API, "IPPool") => Slot::IpPool,
            ("networking.k8s.io/v1", "ServiceCIDR") => Slot::ServiceCidr,
            _ => return None,
        };
        Some(slot)
    }

    pub(super) fn of(h: &Header) -> Option<Slot> {
        if let Some(slot) = Slot::listed(h) {
            return Some(slot);
        }
        let slot = match (h.api_version.as_str(), h.kind.as_str()) {
            ("v1", "ConfigMap") if h.is(Some(ENI_CONFIG_NAMESPACE), ENI_CONFIG_NAME) => Slot::EniConfig,
            ("v1", "ConfigMap")
                if crate::pure::address_plan::is_cni_config(
                    h.namespace.as_deref().unwrap_or(""),
                    h.name.as_deref().unwrap_or(""),
                ) =>
            {
                Slot::CniConfig
            }
            ("v1", "Secret") if h.is(Some(ADDON_SECRET_NAMESPACE), ADDON_SECRET_NAME) => Slot::AddonSecret,
            ("v1", "Service") if h.is(Some(KUBERNETES_SERVICE_NAMESPACE), KUBERNETES_SERVICE_NAME) => {
                Slot::KubernetesService
            }
            // Cluster-scoped: a stray namespace in a hand-made dump does not matter.
            (TIGERA_API, "Installation") if h.is(None, INSTALLATION_NAME) => Slot::Installation,
            (TERWAY_HYBRID_API, "TerwayRollout") if h.is(None, ROLLOUT_NAME) => Slot::Rollout,
            _ => return None,
        };
        Some(slot)
    }
}

pub(super) fn map_header(
    map: &serde_json::Map<String, Value>,
    inferred: Option<&(String, String)>,
) -> Option<Header> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let meta = map.get("metadata");
    header_from(
        text(map.get("apiVersion")),
        text(map.get("kind")),
        text(meta.and_then(|m| m.get("namespace"))),
        text(meta.and_then(|m| m.get("name"))),
        inferred,
    )
}
