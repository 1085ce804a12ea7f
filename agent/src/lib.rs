//! terway-hybrid-agent: reads one node's network state and says which
//! container-network scenario it is in, and why.
//!
//! - [`collect`] is the I/O edge: netlink dumps, files under the host root,
//!   BIRD's socket. It produces a [`NodeSnapshot`](terway_hybrid_api::NodeSnapshot).
//! - [`classify`] is pure: snapshot in, detection out.
//! - [`checks`] turns a detection into node checks.
//! - [`output`] renders them for people and scripts.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod checks;
pub mod classify;
pub mod cli;
pub mod collect;
pub mod ecs;
pub mod http;
pub mod metrics;
pub mod mtu;
pub mod output;
pub mod probe;
pub mod report;
pub mod run;
pub mod targets;
pub mod text;
pub mod watch;
pub mod writer;

pub use classify::classify;

use checks::NodeContext;
use terway_hybrid_api::{NodeDetection, NodeSnapshot, Role};

/// What the agent learns on top of the snapshot: on a cloud node, the ECS
/// metadata service (instance ID, VPC and vSwitch CIDRs), within its 1 s.
pub fn node_context(role: Option<Role>, ecs_metadata_url: &str) -> NodeContext {
    if role != Some(Role::Cloud) {
        return NodeContext { role, ..NodeContext::default() };
    }
    let ecs::EcsMetadata { instance, cloud_network } = ecs::metadata(ecs_metadata_url, ecs::TIMEOUT);
    NodeContext { role, ecs_metadata: Some(instance), cloud_network }
}

/// Classifies a snapshot and runs the node checks on it.
pub fn detect(snapshot: &NodeSnapshot, ctx: &NodeContext) -> NodeDetection {
    let detection = classify(snapshot);
    NodeDetection {
        checks: checks::node_checks(snapshot, &detection, ctx),
        pod_mtu: mtu::pod_mtu(snapshot, detection.plugin),
        detection,
        kernel_version: snapshot.kernel_version.clone(),
        bgp_peers: snapshot.bird.bgp_peers(),
        cloud_network: ctx.cloud_network.clone(),
    }
}
