//! Shared vocabulary and data model of terway-hybrid (docs/contracts.md).
//!
//! Everything here is plain data: the agent fills it from the kernel, the
//! controller and the CLI read it, and the JSON spellings are the contract.
#![forbid(unsafe_code)]

pub mod check;
pub mod crd;
pub mod cross_site;
pub mod detection;
pub mod http;
pub mod kernel;
pub mod names;
pub mod report;
pub mod rollout;
pub mod snapshot;
pub mod text;
pub mod vocabulary;

pub use check::{CheckName, CheckResult, CheckStatus, Severity};
pub use cross_site::{CloudNetwork, CrossSite, ProbePath, ProbeResult, ProbeTarget};
pub use detection::{BgpPeer, Detection, Evidence, NodeDetection};
pub use report::{NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus};
pub use rollout::{TerwayRollout, TerwayRolloutSpec, TerwayRolloutStatus};
pub use snapshot::NodeSnapshot;
pub use vocabulary::{role_of, Confidence, Plugin, Role, Scenario};
