//! The paths the agent and the controller serve on `--metrics-addr`
//! (docs/contracts.md §8): their routers and the deploy manifests' probes
//! and ServiceMonitors name the same ones, and the manifests' tests take
//! them from here.

/// The Prometheus text exposition.
pub const METRICS_PATH: &str = "/metrics";
/// The liveness probe's path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The readiness probe's path.
pub const READYZ_PATH: &str = "/readyz";
