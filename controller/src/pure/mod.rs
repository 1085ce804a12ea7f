//! The pure core: decisions over a [`view::ClusterView`], no I/O. The same
//! view always gives the same answer, so every rule here is tested as a
//! function (unit, property and example tests) without a cluster.
//!
//! - [`view`]: the ClusterView, everything decisions are made on; [`scope`]:
//!   which objects belong in it.
//! - [`cluster`]: indexes over a view (roles, reports, DaemonSets, pods).
//! - [`scheduling`]: would a DaemonSet's pods land on a node (selector,
//!   required node affinity, taints), evaluated as the scheduler does.
//! - [`affinity`], [`cni_fix`]: the safe on-prem CNI affinity fix, and its
//!   verification.
//! - [`checks`]: the cluster checks; [`address_plan`] is `CIDROverlap`;
//!   [`cross_site`]: the cross-site checks and the `gateWaves` verdict.
//! - [`plan`]: view in; checks, labels, gates, status out.
//! - [`probe_plan`]: which peers each node probes; [`actions`]: the writes a
//!   plan asks for.

pub mod actions;
pub mod address_plan;
pub mod affinity;
pub mod checks;
pub mod cluster;
pub mod cni_fix;
pub mod cross_site;
pub mod plan;
pub mod pod;
pub mod probe_plan;
pub mod scheduling;
pub mod scope;
#[cfg(test)]
mod test_builders;
pub mod view;
