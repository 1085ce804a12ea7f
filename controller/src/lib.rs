//! terway-hybrid-controller and the `terway-hybrid` CLI.
//!
//! - [`view`]: the ClusterView, everything decisions are made on.
//! - [`scheduling`]: would a DaemonSet's pods land on a node (selector,
//!   required node affinity, taints), evaluated as the scheduler does.
//! - [`affinity`]: the safe on-prem CNI affinity fix, and its verification.
//! - [`dump`]: `--from-dump` files into a ClusterView.
//! - [`cluster`]: indexes over a view (roles, reports, DaemonSets, pods).
//! - [`checks`]: the cluster checks, pure; [`address_plan`] is `CIDROverlap`.
//! - [`cross_site`]: the cross-site checks and the `gateWaves` verdict, pure.
//! - [`plan`]: the pure core: view in, checks, labels, gates, status out.
//! - [`webhook`], [`certs`]: the Terway gate at admission, and its TLS.
#![forbid(unsafe_code)]

pub mod actions;
pub mod address_plan;
pub mod affinity;
pub mod apply;
pub mod certs;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod cni_fix;
pub mod controller_args;
pub mod cross_site;
pub mod dump;
pub mod fetch;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod plan;
pub mod probe_plan;
pub mod reconcile;
pub mod run;
pub mod scheduling;
pub mod scope;
#[cfg(test)]
mod test_builders;
pub mod view;
pub mod watch;
pub mod webhook;
