//! Shared vocabulary and data model of terway-hybrid (DESIGN.md §3).
//!
//! Everything here is plain data: the agent fills it from the kernel, the
//! controller and the CLI read it, and the JSON spellings are the contract.
#![forbid(unsafe_code)]

pub mod check;
pub mod detection;
pub mod kernel;
pub mod report;
pub mod rollout;
pub mod snapshot;
pub mod vocabulary;

pub use check::{CheckName, CheckResult, CheckStatus, Severity};
pub use detection::{Detection, Evidence, NodeDetection};
pub use report::{NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus};
pub use rollout::{TerwayRollout, TerwayRolloutSpec, TerwayRolloutStatus};
pub use snapshot::NodeSnapshot;
pub use vocabulary::{Confidence, Plugin, Role, Scenario};
